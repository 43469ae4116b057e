"""Foreign LoRA layouts -> {(component, module path): down, up, alpha}, through diffusers' own conversion.

diffusers' ``lora_state_dict`` reads kohya/A1111 files (SD 1/2, SDXL with diffusers *or* SGM
block names), the old attention-processor format (``…processor.to_q_lora.down.weight``) and
PEFT files; ``convert_*_state_dict_to_peft`` then gives ``<path>.lora_A/B`` names. The studio
adds no key table of its own for these.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from .diffusers_format import adapter_configs, alpha_for
from .structure import COMPONENTS

Parts = dict[tuple[str, str], dict]  # (component, path) -> {"down", "up", "alpha"}


def _with_component_prefix(sd: dict) -> dict:
    sd = {k.removeprefix("base_model.model."): v for k, v in sd.items()}  # PEFT save_pretrained
    if any(k.startswith(("lora_unet_", "lora_te")) for k in sd):
        return sd
    if not any(k.split(".")[0] in COMPONENTS for k in sd):
        return {f"unet.{k}": v for k, v in sd.items()}  # bare UNet PEFT/processor keys
    return sd


def _to_peft(component: str, sd: dict) -> dict:
    from diffusers.utils import convert_state_dict_to_peft, convert_unet_state_dict_to_peft

    if all(".lora_A." in k or ".lora_B." in k for k in sd):
        return sd  # already PEFT
    if component == "unet":
        return convert_unet_state_dict_to_peft(sd)
    from diffusers.utils.state_dict_utils import StateDictType

    out = {}
    for k, v in sd.items():  # per key: one file may mix the old (to_q_lora) and newer (lora_linear_layer) names
        if ".lora_A." in k or ".lora_B." in k:
            out[k] = v
            continue
        # kohya text-encoder MLP keys (mlp.fc1/fc2) come out of diffusers' conversion as
        # ``….lora_linear_layer.down/up.weight``: the DIFFUSERS names, not the old ones
        kind = StateDictType.DIFFUSERS if "lora_linear_layer" in k else StateDictType.DIFFUSERS_OLD
        out.update(convert_state_dict_to_peft({k: v}, original_type=kind))
    return out


def _path(component: str, name: str) -> str:
    path = name.rsplit(".lora_", 1)[0]
    return path.removeprefix("text_model.") if component != "unet" else path


class MixedLayout(ValueError):
    """A file whose keys follow two layouts: diffusers would read one and silently drop the other."""


KOHYA = ("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")
SGM_BLOCKS, DIFFUSERS_BLOCKS = ("input_blocks", "middle_block", "output_blocks"), ("down_blocks", "mid_block", "up_blocks")


def layout_of(key: str) -> str:
    """kohya | peft | diffusers (processor / lora_linear_layer names) for one key."""
    if key.removeprefix("base_model.model.").startswith(KOHYA):
        return "kohya"
    return "peft" if ".lora_A." in key or ".lora_B." in key else "diffusers"


def check_one_layout(keys) -> None:
    """Refuse a file that mixes kohya keys with PEFT/diffusers keys, or kohya UNet keys in both the SGM
    (``input_blocks``) and diffusers (``down_blocks``) block names: diffusers' loader reads only
    one of the two and drops the rest without a word."""
    keys = list(keys)
    kinds: dict[str, str] = {}
    for k in keys:
        kinds.setdefault(layout_of(k), k)
    if "kohya" in kinds and len(kinds) > 1:
        other = next(k for kind, k in kinds.items() if kind != "kohya")
        raise MixedLayout(f"it mixes two layouts: kohya keys ({kinds['kohya'][:80]}) and PEFT/diffusers keys "
                          f"({other[:80]}); diffusers would read one and drop the other")
    unet = [k for k in keys if k.startswith("lora_unet_")]
    sgm = next((k for k in unet if any(b in k for b in SGM_BLOCKS)), None)
    plain = next((k for k in unet if any(b in k for b in DIFFUSERS_BLOCKS)), None)
    if sgm and plain:
        raise MixedLayout(f"it mixes SGM block names ({sgm[:80]}) and diffusers block names ({plain[:80]}); "
                          "diffusers would drop the SGM ones")


def is_down(key: str) -> bool:
    """A LoRA down matrix in any layout (kohya lora_down, PEFT lora_A, diffusers …down.weight)."""
    return ".lora_A." in key or key.endswith((".lora_down.weight", ".down.weight"))


def parts(sd: dict, unet_config: dict, metadata: dict[str, str]) -> Parts:
    """Every LoRA module of a foreign state dict; raises ValueError for layouts diffusers cannot read,
    :class:`MixedLayout` for files in two layouts, and ValueError when any module of the file would
    be left out (never half-read)."""
    check_one_layout(sd)
    out = _convert(sd, unet_config, metadata)
    wanted = sum(1 for k in sd if is_down(k))
    if len(out) != wanted:
        raise ValueError(f"{wanted - len(out)} of its {wanted} LoRA modules would be left out by the conversion "
                         "(names no base model component has, or a module given twice)")
    return out


def _convert(sd: dict, unet_config: dict, metadata: dict[str, str]) -> Parts:
    from diffusers import StableDiffusionXLPipeline

    state, alphas = StableDiffusionXLPipeline.lora_state_dict(
        _with_component_prefix(dict(sd)), unet_config=SimpleNamespace(**unet_config))
    configs = adapter_configs(metadata)
    out: Parts = {}
    for component in COMPONENTS:
        sub = {k[len(component) + 1:]: v for k, v in state.items() if k.startswith(component + ".")}
        if not sub:
            continue
        for name, t in _to_peft(component, sub).items():
            part = "down" if ".lora_A." in name else "up" if ".lora_B." in name else None
            if part is None:
                raise ValueError(f"unexpected tensor {component}.{name}")
            out.setdefault((component, _path(component, name)), {})[part] = t
        for name, a in _alphas(component, alphas or {}).items():
            if (component, name) in out:
                out[(component, name)]["alpha"] = a
    for (component, path), p in out.items():
        if "down" not in p or "up" not in p:
            raise ValueError(f"{component}.{path} has only one of its two LoRA matrices")
        p.setdefault("alpha", alpha_for(configs.get(component, {}), path, p["down"].shape[0]))
    return out


def _alphas(component: str, alphas: dict) -> dict[str, float]:
    """diffusers' network_alphas ('<component>.<old key>.alpha') -> {module path: alpha}."""
    mine = {k[len(component) + 1:-len(".alpha")]: float(v) for k, v in alphas.items()
            if k.startswith(component + ".") and k.endswith(".alpha")}
    out = {}
    for old, a in mine.items():
        probe = old if old.endswith((".down.weight", ".lora_A.weight")) else old + ".lora.down.weight"
        for name in _to_peft(component, {probe: torch.zeros(1)}):
            out[_path(component, name)] = a
    return out
