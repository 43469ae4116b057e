"""A short content hash of a model's frozen weights (which base checkpoint an adapter was trained on).

Hashing every byte of an SDXL UNet (5 GB) would cost seconds at every load; instead each
tensor contributes its name, shape, dtype and a fixed strided sample of its values. Two
different fine-tunes of one architecture differ in (practically) every tensor, so the sample
tells them apart; the same weights always give the same hash on any device.
"""

from __future__ import annotations

import hashlib

import torch

SAMPLES_PER_TENSOR = 256


def _base_name(name: str) -> str | None:
    """Parameter name without peft's wrapping; None for LoRA parameters (not base weights)."""
    if "lora_" in name:
        return None
    return name.replace(".base_layer.", ".")


@torch.no_grad()
def weights_hash(module: torch.nn.Module, length: int = 12) -> str:
    h = hashlib.sha256()
    for name, p in sorted(module.state_dict().items()):
        base = _base_name(name)
        if base is None or p.device.type == "meta":
            continue
        flat = p.detach().reshape(-1)
        step = max(1, flat.numel() // SAMPLES_PER_TENSOR)
        sample = flat[::step][:SAMPLES_PER_TENSOR].float().cpu()
        h.update(f"{base}|{tuple(p.shape)}|".encode())
        h.update(sample.numpy().tobytes())
    return h.hexdigest()[:length]
