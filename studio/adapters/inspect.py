"""What a canonical (kohya-layout) adapter file holds: layer types, ranks, alphas, metadata.

Reads the safetensors header for names and shapes and only the scalar ``.alpha`` tensors.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..errors import StudioError
from . import kohya

_VERSION_TO_FAMILY = {v: k for k, v in kohya.BASE_VERSION.items()}


def layer_type(module_key: str) -> str:
    """unet_attention | unet_ff | unet_conv | unet_other | te | te1 | te2 for a kohya module key."""
    for prefix in ("lora_te1_", "lora_te2_", "lora_te_"):
        if module_key.startswith(prefix):
            return prefix[len("lora_"):-1]
    if "_ff_net_" in module_key:
        return "unet_ff"
    if any(module_key.endswith(s) for s in ("_to_q", "_to_k", "_to_v", "_to_out_0")):
        return "unet_attention"
    if "resnets" in module_key and module_key.endswith(("_conv1", "_conv2")):
        return "unet_conv"
    return "unet_other"


@dataclass(frozen=True)
class HeaderSummary:
    family: str
    layers: dict  # layer type -> records.LayerGroup
    metadata: dict[str, str]


def read_header_summary(file: Path) -> HeaderSummary:
    from safetensors import safe_open

    from .records import LayerGroup

    try:
        with safe_open(str(file), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            ranks: dict[str, list[tuple[int, float]]] = {}
            keys = set(f.keys())
            for name in sorted(keys):
                if not name.endswith(".lora_down.weight"):
                    continue
                key = name[: -len(".lora_down.weight")]
                rank = int(f.get_slice(name).get_shape()[0])
                alpha = float(f.get_tensor(f"{key}.alpha")) if f"{key}.alpha" in keys else float(rank)
                ranks.setdefault(layer_type(key), []).append((rank, alpha))
    except Exception as e:  # noqa: BLE001 - damaged library file (SafetensorError is none of the usual kinds)
        raise StudioError(f"Adapter file {file} cannot be read ({e}).",
                          "Delete the adapter or import the original file again.") from None
    layers = {t: LayerGroup(len(v), *Counter(v).most_common(1)[0][0]) for t, v in sorted(ranks.items())}
    family = _VERSION_TO_FAMILY.get(metadata.get("ss_base_model_version", ""), "")
    if not family and ("te1" in layers or "te2" in layers):
        family = "sdxl"
    return HeaderSummary(family, layers, metadata)
