"""Read/write the LoRA weights of injected modules as the canonical (kohya) state dict."""

from __future__ import annotations

import torch

from ..adapters import kohya
from .inject import ADAPTER


def _lora_modules(model) -> dict[str, torch.nn.Module]:
    return {n: m for n, m in model.named_modules() if hasattr(m, "lora_A") and ADAPTER in m.lora_A}


def _parts(unet, text_encoders: list) -> list[tuple[str, torch.nn.Module]]:
    """(kohya prefix, model) pairs: lora_unet_, then lora_te_ or lora_te1_/lora_te2_."""
    return [(kohya.UNET_PREFIX, unet)] + list(zip(kohya.TE_PREFIXES[len(text_encoders)], text_encoders))


def extract(unet, text_encoders: list) -> dict[str, torch.Tensor]:
    """The current LoRA weights with explicit alphas, in kohya layout (fp32, CPU)."""
    sd: dict[str, torch.Tensor] = {}
    for prefix, model in _parts(unet, text_encoders):
        for path, m in _lora_modules(model).items():
            sd.update(kohya.pack(prefix, path, m.lora_A[ADAPTER].weight.detach().float().cpu().clone(),
                                 m.lora_B[ADAPTER].weight.detach().float().cpu().clone(), m.lora_alpha[ADAPTER]))
    return sd


@torch.no_grad()
def load(unet, text_encoders: list, sd: dict[str, torch.Tensor]) -> None:
    """Copy a canonical dict back into the injected modules (resume, best-checkpoint)."""
    grouped = kohya.modules(sd)
    seen = set()
    for prefix, model in _parts(unet, text_encoders):
        for path, m in _lora_modules(model).items():
            key = kohya.module_key(prefix, path)
            if key not in grouped:
                raise KeyError(f"LoRA weights for {key} missing")
            m.lora_A[ADAPTER].weight.copy_(grouped[key]["down"])
            m.lora_B[ADAPTER].weight.copy_(grouped[key]["up"])
            seen.add(key)
    extra = set(grouped) - seen
    if extra:
        raise KeyError(f"{len(extra)} LoRA modules do not exist in this model, e.g. {sorted(extra)[0]}")
