"""Which Stable Diffusion family a checkpoint or folder belongs to (tiny/sd1/sd2/sdxl).

Detection reads only key names or config files, never tensor data.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import StudioError

FAMILIES = ("tiny", "sd1", "sd2", "sdxl")
# Native training/generation resolution of each family, in pixels.
NATIVE_RESOLUTION = {"tiny": 64, "sd1": 512, "sd2": 768, "sdxl": 1024}

# Key prefixes of the original (LDM / A1111) single-file layout.
_KEY_MARKERS = (
    ("conditioner.embedders.1.", "sdxl"),
    ("cond_stage_model.model.", "sd2"),
    ("cond_stage_model.transformer.", "sd1"),
)


def family_from_keys(keys) -> str:
    keys = list(keys)
    for prefix, fam in _KEY_MARKERS:
        if any(k.startswith(prefix) for k in keys):
            return fam
    if any(k.startswith("model.diffusion_model.") for k in keys):
        raise StudioError("This checkpoint has a UNet but no text encoder the studio recognises.",
                          "Use a full SD 1.5, SD 2.x or SDXL checkpoint (not a UNet-only or LoRA file).")
    raise StudioError("This file is not a Stable Diffusion checkpoint (no UNet weights found).",
                      "If it is a LoRA, import it as an adapter instead of loading it as a base model.")


def family_from_folder(folder: Path) -> str:
    index = json.loads((folder / "model_index.json").read_text())
    cls = index.get("_class_name", "")
    if "XL" in cls:
        return "sdxl"
    if cls != "StableDiffusionPipeline":
        raise StudioError(f"{folder} holds a {cls or 'unknown pipeline'}, not Stable Diffusion 1.x/2.x/XL.")
    unet = json.loads((folder / "unet" / "config.json").read_text())
    cross = unet.get("cross_attention_dim")
    return {768: "sd1", 1024: "sd2"}.get(cross, "tiny" if cross and cross < 768 else "sd1")
