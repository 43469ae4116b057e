"""Library adapters for tests: peft LoRA on a model, random nonzero up-weights, written like the trainer."""

import numpy as np
import torch

from studio.adapters import kohya
from studio.adapters.library import Library
from studio.config import LoraSettings
from studio.lora import state as lora_state
from studio.lora.inject import inject

LOCON = LoraSettings(rank=4, alpha=2.0, ff_rank=4, ff_alpha=8.0, conv_rank=2, conv_alpha=3.0, te_rank=2, te_alpha=1.0)


def text_encoders(pipe):
    return [t for t in (pipe.text_encoder, getattr(pipe, "text_encoder_2", None)) if t is not None]


def randomize(modules, seed, std=0.05):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in modules:
            for n, p in m.named_parameters():
                if "lora_B" in n:
                    p.copy_(torch.randn(p.shape, generator=g) * std)


def lora_dict(model, settings=LOCON, seed=0):
    """Canonical kohya dict of a random (nonzero) LoRA; ``model`` is left with the LoRA injected."""
    pipe = model.pipe
    inject(pipe.unet, text_encoders(pipe), settings)
    randomize([pipe.unet, *text_encoders(pipe)], seed)
    return lora_state.extract(pipe.unet, text_encoders(pipe))


def add_to_library(ws, name, sd, family, trigger="neon"):
    meta = kohya.metadata(family, name, {"lora": {"rank": 4, "alpha": 2.0}}, 3, trigger, 64)
    info = {"family": family, "source": "trained", "steps": 3, "trigger": trigger, "base": "test"}
    Library(ws).add(name, sd, meta, info)
    return Library(ws).get(name)


def image(pipe, seed=0, steps=3, prompt="a red mug, neon style"):
    g = torch.Generator().manual_seed(seed)
    kw = {"height": 32, "width": 32} if hasattr(pipe, "text_encoder_2") else {}
    with torch.no_grad():
        return pipe(prompt, num_inference_steps=steps, generator=g, output_type="np", **kw).images[0]


def with_lora(pipe, file, name="x"):
    """``pipe`` with ``file`` loaded by diffusers' own ``load_lora_weights``; the image; then unloaded."""
    pipe.load_lora_weights(str(file), adapter_name=name)
    out = image(pipe)
    pipe.unload_lora_weights()
    return out


def diff(a, b):
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())
