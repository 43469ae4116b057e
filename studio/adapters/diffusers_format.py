"""The diffusers / PEFT LoRA layout, as pure functions over dicts.

Keys are what ``save_lora_weights`` writes: ``unet.<path>.lora_A.weight`` (= kohya ``lora_down``),
``unet.<path>.lora_B.weight`` (= ``lora_up``), ``text_encoder.text_model.<path>…``,
``text_encoder_2.…``. PEFT files carry no per-module alpha tensor; the studio keeps alpha two
ways and the export picks one (``ExportSettings.fold_alpha``):

* folded (default): ``lora_B`` is multiplied by alpha/rank, so scale = 1 in *every* loader
  (diffusers, ComfyUI, PEFT, anything that ignores alpha). The header still carries
  ``lora_adapter_metadata`` with alpha = rank, which diffusers' ``load_lora_weights`` reads.
* not folded: weights bit-identical to the library file; the alphas live only in
  ``lora_adapter_metadata`` (per-module ``alpha_pattern``/``rank_pattern``) — exact in diffusers,
  but a loader that ignores that header applies scale 1.
"""

from __future__ import annotations

import json
from collections import Counter

import torch

from . import kohya
from .structure import Module

METADATA_KEY = "lora_adapter_metadata"  # diffusers.loaders.lora_base.LORA_ADAPTER_METADATA_KEY


def _file_path(m: Module) -> str:
    # Diffusers strips 'text_model.' when the text encoder lacks it (transformers >= 5) and older
    # diffusers/transformers need it: writing it loads in both.
    return "text_model." + m.path if m.component != "unet" and not m.path.startswith("text_model.") else m.path


def to_peft(sd: dict, table: dict[str, Module], fold_alpha: bool = True) -> tuple[dict, dict[str, str]]:
    """Canonical kohya dict -> (PEFT-keyed dict, safetensors metadata with lora_adapter_metadata)."""
    out: dict[str, torch.Tensor] = {}
    configs: dict[str, dict] = {}
    for key, parts in kohya.modules(sd).items():
        m = table[key]
        rank = parts["down"].shape[0]
        alpha = float(parts["alpha"]) if "alpha" in parts else float(rank)
        up = parts["up"]
        if fold_alpha:
            up = (up.float() * (alpha / rank)).to(up.dtype)
            alpha = float(rank)
        name = f"{m.component}.{_file_path(m)}"
        out[f"{name}.lora_A.weight"], out[f"{name}.lora_B.weight"] = parts["down"], up
        c = configs.setdefault(m.component, {"ranks": {}, "alphas": {}})
        c["ranks"][m.path], c["alphas"][m.path] = rank, alpha
    meta: dict = {}
    for component, c in configs.items():
        r, a = Counter(zip(c["ranks"].values(), c["alphas"].values())).most_common(1)[0][0]
        cfg = {"r": r, "lora_alpha": a, "target_modules": sorted(c["ranks"]), "init_lora_weights": True,
               "rank_pattern": {p: v for p, v in c["ranks"].items() if v != r},
               "alpha_pattern": {p: v for p, v in c["alphas"].items() if v != a}}
        meta.update({f"{component}.{k}": v for k, v in cfg.items()})
    return out, {"format": "pt", METADATA_KEY: json.dumps(meta, indent=2, sort_keys=True)}


def adapter_configs(metadata: dict[str, str]) -> dict[str, dict]:
    """Per-component LoraConfig dicts from a file's ``lora_adapter_metadata`` ({} when absent/bad)."""
    try:
        raw = json.loads(metadata.get(METADATA_KEY, "{}"))
    except ValueError:
        return {}
    out: dict[str, dict] = {}
    if isinstance(raw, dict):
        for k, v in raw.items():
            component, _, field = str(k).partition(".")
            out.setdefault(component, {})[field] = v
    return out


def alpha_for(config: dict, path: str, rank: int) -> float:
    """The alpha PEFT would use for module ``path`` under ``config`` (alpha = rank without config)."""
    from peft.utils.other import get_pattern_key

    if not config:
        return float(rank)
    pattern = config.get("alpha_pattern") or {}
    key = get_pattern_key(list(pattern), path)
    value = pattern.get(key, config.get("lora_alpha", rank))
    return float(value if value is not None else rank)
