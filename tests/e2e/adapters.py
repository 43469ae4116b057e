"""Small kohya adapters for the tiny model, written straight into a workspace (no training run).

Random LoRA weights large enough to change the image; the file, ``adapter.json`` and
``preview.png`` look like what the trainer writes, so the library lists them as trained adapters.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import save_file

from studio.adapters import kohya
from studio.config import GenerateSettings, LoraSettings, TrainSettings
from studio.lora import inject, state


def write_adapter(model, root: Path, name: str, seed: int, scale: float = 0.05, trigger: str | None = None) -> Path:
    """``root/adapters/<name>/<name>.safetensors`` (+ record and preview) for the tiny ``model``."""
    import copy

    unet = copy.deepcopy(model.pipe.unet)
    te = copy.deepcopy(model.pipe.text_encoder)
    settings = TrainSettings(lora=LoraSettings(rank=4, alpha=4.0))
    params = inject.inject(unet, [te], settings.lora)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.copy_(torch.randn(p.shape, generator=gen) * scale)
    sd = state.extract(unet, [te])
    folder = root / "adapters" / name
    folder.mkdir(parents=True, exist_ok=True)
    meta = kohya.metadata(model.family, name, asdict(settings), 10, name, model.resolution)
    file = folder / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(file), metadata=meta)
    info = {"name": name, "steps": 10, "family": model.family, "base": model.ref.location,
            "base_hash": model.base_hash, "created": "2026-11-24T12:00:00+0000", "source": "trained",
            "trigger": trigger or name, "best_val": 0.1234}
    (folder / "adapter.json").write_text(json.dumps(info))
    _preview(model, unet, te, folder / "preview.png")
    return file


def _preview(model, unet, te, path: Path) -> None:
    pipe = model.pipe
    base_unet, base_te = pipe.unet, pipe.text_encoder
    pipe.unet, pipe.text_encoder = unet, te
    try:
        s = GenerateSettings()
        image = pipe(prompt=s.prompt, num_inference_steps=4, generator=torch.Generator().manual_seed(0)).images[0]
    finally:
        pipe.unet, pipe.text_encoder = base_unet, base_te
    image.save(path)
