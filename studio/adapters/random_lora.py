"""Random kohya-layout LoRA files built from a pipeline's module names (tests and benchmarks).

Real adapters come from training or import; these exist so the engine can be tested and
measured with several visibly different adapters without training each one.
"""

from __future__ import annotations

import torch

from ..paths import Workspace
from . import kohya

UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
TEXT_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")


def _linears(model: torch.nn.Module, targets: tuple[str, ...]) -> dict[str, torch.nn.Linear]:
    out = {}
    for path, m in model.named_modules():
        path = path.replace(".base_layer", "")
        if isinstance(m, torch.nn.Linear) and path.endswith(targets) and "lora_" not in path:
            out[path] = m
    return out


def random_kohya(pipe, rank: int = 4, alpha: float = 4.0, seed: int = 0, std: float = 0.05,
                 text_encoder: bool = True) -> dict[str, torch.Tensor]:
    """A kohya dict with random down and up weights on the UNet (and text-encoder) attention."""
    g = torch.Generator().manual_seed(seed)
    encoders = [e for e in (getattr(pipe, "text_encoder", None), getattr(pipe, "text_encoder_2", None)) if e]
    parts = [(kohya.UNET_PREFIX, pipe.unet, UNET_TARGETS)]
    if text_encoder:
        parts += [(p, e, TEXT_TARGETS) for p, e in zip(kohya.TE_PREFIXES[len(encoders)], encoders)]
    sd: dict[str, torch.Tensor] = {}
    for prefix, model, targets in parts:
        for path, lin in sorted(_linears(model, targets).items()):
            down = torch.randn(rank, lin.in_features, generator=g) / lin.in_features ** 0.5
            up = torch.randn(lin.out_features, rank, generator=g) * std
            sd.update(kohya.pack(prefix, path, down, up, alpha))
    return sd


def write_adapter(ws: Workspace, name: str, sd: dict[str, torch.Tensor], family: str, base_hash: str = "") -> None:
    """Store ``sd`` as library adapter ``name`` (file + adapter.json), like a trained one."""
    from safetensors.torch import save

    from .library import write_pair

    folder = ws.adapters / name
    meta = {"ss_network_module": "networks.lora", "ss_base_model_version": kohya.BASE_VERSION[family],
            "ss_output_name": name, "studio_base_hash": base_hash}
    record = {"name": name, "family": family, "base_hash": base_hash, "source": "random"}
    write_pair(folder, name, save({k: v.contiguous() for k, v in sd.items()}, metadata=meta), record)
