"""Measure the activation model behind the VRAM preflight (studio/train/preflight.py).

One real forward pass of a full-size UNet (random bf16 weights from the shipped configs,
LoRA on the attention projections, as trained) on the CPU at a 32x32 latent, recording
the bytes autograd keeps for backward, deduplicated by storage and excluding the weights.
CPU SDPA uses a flash-attention kernel as CUDA does, so these bytes grow linearly with
pixels and the per-latent-pixel figure scales to any resolution. With gradient
checkpointing only the inputs of each checkpointed unit (resnet / transformer layer) are
kept; the recompute peak adds the largest unit.

    python benchmarks/activation_model.py [sd1 sd2 sdxl tiny]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel
from peft import LoraConfig

sys.path.insert(0, str(Path(__file__).parent))
from common import record  # noqa: E402

from studio.models.loading import CONFIG_DIR, TINY_DIR  # noqa: E402

LATENT = 32
CROSS = {"sd1": 768, "sd2": 1024, "sdxl": 2048, "tiny": 64}


def build(family: str) -> UNet2DConditionModel:
    path = (TINY_DIR if family == "tiny" else CONFIG_DIR / family) / "unet"
    torch.set_default_dtype(torch.bfloat16)
    try:
        u = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(path))
    finally:
        torch.set_default_dtype(torch.float32)
    u.requires_grad_(False)
    u.add_adapter(LoraConfig(r=8, lora_alpha=8, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    for n, p in u.named_parameters():
        p.requires_grad_("lora_" in n)
    return u.train()


class Saved:
    """saved_tensors_hooks that count distinct non-weight storages."""

    def __init__(self, exclude: set[int]):
        self.exclude, self.seen, self.bytes = exclude, set(), 0

    def pack(self, t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in self.exclude and ptr not in self.seen:
            self.seen.add(ptr)
            self.bytes += t.untyped_storage().nbytes()
        return t


def inputs(family: str):
    x = torch.randn(1, 4, LATENT, LATENT, dtype=torch.bfloat16)
    h = torch.randn(1, 77, CROSS[family], dtype=torch.bfloat16)
    kw = {}
    if family == "sdxl":
        kw["added_cond_kwargs"] = {"text_embeds": torch.randn(1, 1280, dtype=torch.bfloat16),
                                   "time_ids": torch.randn(1, 6, dtype=torch.bfloat16)}
    return x, h, kw


def measure(u, family: str, checkpointing: bool) -> tuple[int, int]:
    """(bytes kept for backward, largest block's recompute bytes)."""
    weights = {p.untyped_storage().data_ptr() for p in u.parameters()}
    x, h, kw = inputs(family)
    u.enable_gradient_checkpointing() if checkpointing else u.disable_gradient_checkpointing()
    kept = Saved(weights)
    # diffusers checkpoints each resnet and each transformer layer separately: those are
    # the recompute units whose activations come back during backward
    blocks = [m for m in u.modules() if type(m).__name__ in ("BasicTransformerBlock", "ResnetBlock2D")]
    per_block = [Saved(weights) for _ in blocks]
    hooks = []
    if not checkpointing:  # measure each block's own activations in the same pass
        for blk, s in zip(blocks, per_block):
            hooks.append(blk.register_forward_pre_hook(lambda m, a, s=s: s.__setattr__("on", True)))
            hooks.append(blk.register_forward_hook(lambda m, a, o, s=s: s.__setattr__("on", False)))

    def pack(t):
        kept.pack(t)
        for s in per_block:
            if getattr(s, "on", False):
                s.pack(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        u(x, torch.tensor([500]), h, **kw)
    for hk in hooks:
        hk.remove()
    return kept.bytes, max(s.bytes for s in per_block)


def main() -> None:
    families = sys.argv[1:] or ["sd1", "sdxl"]
    px = LATENT * LATENT
    rows = ["| family | full: bytes / latent px | checkpointed: bytes / latent px | largest unit: bytes / latent px | s |",
            "|---|---|---|---|---|"]
    for fam in families:
        t0 = time.time()
        u = build(fam)
        full, block = measure(u, fam, False)
        ckpt, _ = measure(u, fam, True)
        rows.append(f"| {fam} | {full / px:.0f} | {ckpt / px:.0f} | {block / px:.0f} | {time.time() - t0:.0f} |")
        del u
    record("Activation model for the VRAM preflight (bf16 bytes kept for backward, batch 1)", "\n".join(rows))


if __name__ == "__main__":
    main()
