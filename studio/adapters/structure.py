"""Which LoRA-able modules (and weight shapes) each base family has, from the meta-device models.

Built from the shipped configs (``studio/models/configs``, the tiny model's own configs) on the
``meta`` device: no memory, no download. Export and import use these tables to turn canonical
kohya keys into module paths and to check a foreign file's keys and shapes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from . import kohya

COMPONENTS = ("unet", "text_encoder", "text_encoder_2")


@dataclass(frozen=True)
class Module:
    component: str  # unet | text_encoder | text_encoder_2
    path: str  # module path inside that component (transformers 5: no ``text_model.`` level)
    shape: tuple[int, ...]  # weight shape [out, in] or [out, in, kh, kw]


def prefix_of(component: str, n_text_encoders: int) -> str:
    if component == "unet":
        return kohya.UNET_PREFIX
    return kohya.TE_PREFIXES[n_text_encoders][COMPONENTS.index(component) - 1]


def component_of(key: str) -> str:
    """The component a canonical kohya module key belongs to."""
    if key.startswith(kohya.UNET_PREFIX):
        return "unet"
    return "text_encoder_2" if key.startswith("lora_te2_") else "text_encoder"


def table_of(unet, text_encoders: list) -> dict[str, Module]:
    """canonical kohya module key -> Module, for every Linear / Conv2d of these models."""
    out: dict[str, Module] = {}
    for component, model in zip(COMPONENTS, [unet, *text_encoders]):
        prefix = prefix_of(component, len(text_encoders))
        for path, m in model.named_modules():
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)) and "lora_" not in path:
                path = path.replace(".base_layer", "")
                out[kohya.module_key(prefix, path)] = Module(component, path, tuple(m.weight.shape))
    return out


@functools.lru_cache(maxsize=None)
def unet_config(family: str) -> dict:
    from diffusers import UNet2DConditionModel

    return dict(UNet2DConditionModel.load_config(_config_dir(family) / "unet"))


def _config_dir(family: str):
    from ..models.loading import CONFIG_DIR, TINY_DIR

    return TINY_DIR if family == "tiny" else CONFIG_DIR / family


@functools.lru_cache(maxsize=None)
def family_table(family: str) -> dict[str, Module]:
    """The module table of a base family, built on the meta device (about a second for SDXL)."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    root = _config_dir(family)
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(unet_config(family))
        tes = [CLIPTextModel(CLIPTextConfig.from_pretrained(root / "text_encoder"))]
        if family == "sdxl":
            tes.append(CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(root / "text_encoder_2")))
    return table_of(unet, tes)
