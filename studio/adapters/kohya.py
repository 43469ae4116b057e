"""The kohya / AUTOMATIC1111 / ComfyUI LoRA layout, as pure functions over dicts.

Key = prefix + module path with '.' -> '_'; per module ``.lora_down.weight`` [r, in],
``.lora_up.weight`` [out, r] and ``.alpha`` (scalar; scale = alpha / r). Alpha is always
written explicitly (never silently set to rank).
"""

from __future__ import annotations

import json

import torch

UNET_PREFIX = "lora_unet_"
TE_PREFIXES = {1: ("lora_te_",), 2: ("lora_te1_", "lora_te2_")}
BASE_VERSION = {"tiny": "studio_tiny", "sd1": "sd_v1", "sd2": "sd_v2", "sdxl": "sdxl_base_v1-0"}
ARCHITECTURE = {"tiny": "studio-tiny/lora", "sd1": "stable-diffusion-v1/lora",
                "sd2": "stable-diffusion-v2-768-v/lora", "sdxl": "stable-diffusion-xl-v1-base/lora"}


def module_key(prefix: str, module_path: str) -> str:
    if prefix.startswith("lora_te") and not module_path.startswith("text_model."):
        # transformers >= 5 dropped CLIPTextModel's ``text_model.`` level; the file
        # format (A1111, ComfyUI, kohya) still names it.
        module_path = "text_model." + module_path
    return prefix + module_path.replace(".", "_")


def pack(prefix: str, module_path: str, down: torch.Tensor, up: torch.Tensor, alpha: float) -> dict:
    k = module_key(prefix, module_path)
    return {f"{k}.lora_down.weight": down, f"{k}.lora_up.weight": up,
            f"{k}.alpha": torch.tensor(float(alpha), dtype=torch.float32)}


def modules(sd: dict) -> dict[str, dict[str, torch.Tensor]]:
    """Group a kohya dict by module key: {key: {"down", "up", "alpha"}}."""
    out: dict[str, dict[str, torch.Tensor]] = {}
    for name, t in sd.items():
        key, _, rest = name.partition(".")
        part = {"lora_down.weight": "down", "lora_up.weight": "up", "alpha": "alpha"}.get(rest)
        if part:
            out.setdefault(key, {})[part] = t
    return out


def scales(sd: dict) -> dict[str, float]:
    """Each module's ``alpha / rank`` (alpha missing = rank, scale 1)."""
    out = {}
    for key, p in modules(sd).items():
        r = p["down"].shape[0]
        out[key] = float(p["alpha"]) / r if "alpha" in p and r else 1.0
    return out


def alphas(sd: dict) -> set[float]:
    """The distinct module alphas (alpha missing = rank); ``down`` may be a meta tensor."""
    return {float(p["alpha"]) if "alpha" in p else float(p["down"].shape[0]) for p in modules(sd).values()}


def fold_mixed_alphas(sd: dict) -> dict | None:
    """For diffusers' loader: when modules carry different alphas (resized with ``--rank auto``,
    blends of parts with other ranks, dynamic-rank imports), diffusers 0.42 gives every module
    the most common alpha (its ``alpha_pattern`` keys never match the module names), so the
    others get the wrong strength. Then return the same LoRA with each module's ``alpha / rank``
    folded into ``up`` and no alpha keys (diffusers: alpha = rank, scale 1, which it handles per
    module). ``None`` when all modules share one alpha (the file loads as it is)."""
    if len(alphas(sd)) <= 1:
        return None
    s = scales(sd)
    out = {}
    for name, t in sd.items():
        key, _, rest = name.partition(".")
        if rest == "alpha" and key in s:
            continue
        # in fp32: an fp16 up times alpha/rank would round every weight (a 5e-4 relative error)
        out[name] = t.float() * s[key] if rest == "lora_up.weight" and key in s else t
    return out


def metadata(family: str, name: str, settings: dict, steps: int, trigger: str, resolution: int) -> dict[str, str]:
    """kohya ``ss_*`` and SAI ``modelspec.*`` metadata (all values are strings)."""
    lora = settings.get("lora", {})
    args = {k: str(v) for k, v in (("conv_dim", lora.get("conv_rank")), ("conv_alpha", lora.get("conv_alpha")))
            if v}
    return {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(lora.get("rank", "")),
        "ss_network_alpha": str(lora.get("alpha", "")),
        "ss_network_args": json.dumps(args),
        "ss_base_model_version": BASE_VERSION[family],
        "ss_v2": str(family == "sd2"),
        "ss_output_name": name,
        "ss_steps": str(steps),
        "ss_learning_rate": str(settings.get("lr_unet", "")),
        "ss_text_encoder_lr": str(settings.get("lr_text", "")),
        "ss_resolution": f"({resolution},{resolution})",
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": ARCHITECTURE[family],
        "modelspec.implementation": "https://github.com/huggingface/diffusers",
        "modelspec.title": name,
        "modelspec.resolution": f"{resolution}x{resolution}",
        "modelspec.trigger_phrase": trigger,
        "studio_settings": json.dumps(settings, default=str),
    }
