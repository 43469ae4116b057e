"""The memory recipe: precision, optimizer (8-bit AdamW by default), LR schedule,
gradient checkpointing, and QLoRA quantization of the frozen weights."""

from __future__ import annotations

import logging

import torch

from ..config import TrainSettings
from ..errors import StudioError

log = logging.getLogger(__name__)


HALF = {torch.bfloat16: "bf16", torch.float16: "fp16"}


def mixed_precision(s: TrainSettings, device: torch.device, weights: torch.dtype = torch.float32) -> str:
    """accelerate's mixed_precision string for ``auto``: the weights' half dtype when they are
    bf16/fp16 (LoRA weights stay fp32, so autocast must bridge them), else bf16 where the GPU
    has it, fp16 on older GPUs (with loss scaling), and full fp32 on CPU."""
    if s.mixed_precision != "auto":
        return s.mixed_precision
    if weights in HALF:
        return HALF[weights]
    if device.type != "cuda":
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def make_optimizer(s: TrainSettings, unet_params, text_params) -> torch.optim.Optimizer:
    groups = [{"params": list(unet_params), "lr": s.lr_unet}]
    if text_params:
        groups.append({"params": list(text_params), "lr": s.lr_text})
    if s.optimizer == "adamw8bit":
        try:
            import bitsandbytes as bnb
        except ImportError as e:  # pragma: no cover - bnb is a hard dependency
            raise StudioError("bitsandbytes is not installed.", "pip install bitsandbytes>=0.50, "
                              "or train with --set optimizer=adamw.") from e
        return bnb.optim.AdamW8bit(groups, lr=s.lr_unet, weight_decay=s.weight_decay)
    return torch.optim.AdamW(groups, lr=s.lr_unet, weight_decay=s.weight_decay)


def make_scheduler(s: TrainSettings, optimizer):
    from diffusers.optimization import get_scheduler

    return get_scheduler(s.lr_scheduler, optimizer, num_warmup_steps=s.warmup_steps,
                         num_training_steps=s.steps)


def enable_checkpointing(unet, text_encoders: list, train_text: bool) -> None:
    unet.enable_gradient_checkpointing()
    if train_text:
        for te in text_encoders:
            te.gradient_checkpointing_enable()


def quantize_frozen(model: torch.nn.Module, mode: str, compute_dtype: torch.dtype) -> int:
    """QLoRA: swap every ``nn.Linear`` of a frozen model for a bitsandbytes 8-bit or NF4
    layer (LoRA is added on top afterwards). Returns the number of layers quantized."""
    import bitsandbytes as bnb

    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is not torch.nn.Linear:
                continue
            w, b = child.weight.data, child.bias
            if mode == "nf4":
                q = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=b is not None,
                                      compute_dtype=compute_dtype, quant_type="nf4")
                q.weight = bnb.nn.Params4bit(w.to(torch.float32).contiguous(), requires_grad=False,
                                             quant_type="nf4")
            else:
                q = bnb.nn.Linear8bitLt(child.in_features, child.out_features, bias=b is not None,
                                        has_fp16_weights=False, threshold=6.0)
                q.weight = bnb.nn.Int8Params(w.to(torch.float16).contiguous(), requires_grad=False,
                                             has_fp16_weights=False)
            if b is not None:
                q.bias = torch.nn.Parameter(b.data.clone(), requires_grad=False)
            q = q.to(w.device)  # quantizes
            setattr(parent, name, q)
            count += 1
    return count
