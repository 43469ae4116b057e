"""The point of the product: a style LoRA trained with the default tiny-cpu preset moves
generations toward the style, and the exported file works in plain diffusers.

Style statistic (studio.models.tiny.quality.style_distance): the mean of the background
colour distance and the coarse-palette distance between a set of generated images and
the style set. Same prompts and seeds with and without the adapter; the adapter must
remove at least half of the distance.
"""

import pytest
import torch
from diffusers import StableDiffusionPipeline

from studio import events as ev
from studio.data.ingest import ingest
from studio.models.loading import TINY_DIR, load_model
from studio.models.tiny import quality
from studio.models.tiny.sample_data import write_style_set
from studio.paths import Workspace
from studio.train.loop import Trainer
from studio.train.presets import load_preset


def _plain_pipe():
    pipe = StableDiffusionPipeline.from_pretrained(TINY_DIR)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _gen(pipe):
    def generate(prompt, seed):
        g = torch.Generator().manual_seed(seed)
        return pipe(prompt, num_inference_steps=25, guidance_scale=6.0, generator=g).images[0]
    return generate


@pytest.mark.slow
def test_tiny_cpu_preset_learns_the_neon_style(tmp_path):
    write_style_set(tmp_path / "neon", "neon", 16)
    ws = Workspace(tmp_path / "outputs")
    ingest("neon", [tmp_path / "neon"], ws=ws)
    result = Trainer("neon", "neon", load_model("tiny", device="cpu"), load_preset("tiny-cpu"),
                     ev.ListSink(), ws=ws).run()
    styled = _plain_pipe()
    styled.load_lora_weights(str(result.adapter), adapter_name="neon")  # diffusers' own loader
    base_d, styled_d = quality.style_shift(_gen(_plain_pipe()), _gen(styled), "neon")
    print(f"style distance: base {base_d:.3f} -> with adapter {styled_d:.3f}")
    assert styled_d <= 0.5 * base_d
