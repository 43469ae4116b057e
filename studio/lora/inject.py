"""Put LoRA adapters on the UNet and text encoder with peft; nothing else trains.

A per-layer-type rank map (attention / feed-forward / resnet convs, i.e. LoCon) becomes
peft ``rank_pattern`` / ``alpha_pattern``; alpha != rank is honoured everywhere.
"""

from __future__ import annotations

import torch
from peft import LoraConfig

from ..config import LoraSettings

ADAPTER = "default"
UNET_ATTENTION = ("to_q", "to_k", "to_v", "to_out.0")
UNET_FEED_FORWARD = ("ff.net.0.proj", "ff.net.2")
UNET_CONV = ("conv1", "conv2")  # resnet 3x3 convs: LoCon
TEXT_ATTENTION = ("q_proj", "k_proj", "v_proj", "out_proj")


def _pattern(names, value) -> dict[str, float]:
    # peft matches these as regexes against the module path's end.
    return {rf".*\.{n.replace('.', chr(92) + '.')}$": value for n in names}


def unet_config(s: LoraSettings) -> LoraConfig:
    targets = list(UNET_ATTENTION)
    ranks, alphas = {}, {}
    for names, rank, alpha in ((UNET_FEED_FORWARD, s.ff_rank, s.ff_alpha), (UNET_CONV, s.conv_rank, s.conv_alpha)):
        if rank:
            targets += names
            ranks.update(_pattern(names, rank))
            alphas.update(_pattern(names, alpha or float(rank)))
    return LoraConfig(r=s.rank, lora_alpha=s.alpha, lora_dropout=s.dropout, init_lora_weights=True,
                      target_modules=targets, rank_pattern=ranks, alpha_pattern=alphas)


def text_config(s: LoraSettings) -> LoraConfig:
    return LoraConfig(r=s.te_rank or s.rank, lora_alpha=s.te_alpha or s.alpha, lora_dropout=s.dropout,
                      init_lora_weights=True, target_modules=list(TEXT_ATTENTION))


def inject(unet, text_encoders: list, s: LoraSettings) -> list[torch.nn.Parameter]:
    """Freeze everything, add LoRA, return the trainable (LoRA-only) parameters."""
    for m in [unet, *text_encoders]:
        m.requires_grad_(False)
    unet.add_adapter(unet_config(s), adapter_name=ADAPTER)
    if s.text_encoder:
        for te in text_encoders:
            te.add_adapter(text_config(s), adapter_name=ADAPTER)
    params = [p for m in [unet, *text_encoders] for p in lora_parameters(m)]
    for p in params:
        p.requires_grad_(True)
    return params


def lora_parameters(module) -> list[torch.nn.Parameter]:
    return [p for n, p in module.named_parameters() if "lora_" in n]
