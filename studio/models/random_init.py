"""Full-size SD pipelines with random weights, built from the shipped configs.

Memory and speed do not depend on weight values, so benchmarks (and a GPU smoke test)
can measure the real architectures without downloading a checkpoint.
"""

from __future__ import annotations

import torch

from .loading import CONFIG_DIR, LoadedModel, ModelRef


def random_model(family: str, device: str = "cpu", dtype: torch.dtype = torch.float32) -> LoadedModel:
    from diffusers import (AutoencoderKL, DPMSolverMultistepScheduler, StableDiffusionPipeline,
                           StableDiffusionXLPipeline, UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from .tokenizers import clip_tokenizer

    root = CONFIG_DIR / family
    torch.manual_seed(0)
    parts = dict(
        unet=UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(root / "unet")),
        vae=AutoencoderKL.from_config(AutoencoderKL.load_config(root / "vae")),
        text_encoder=CLIPTextModel(CLIPTextConfig.from_pretrained(root / "text_encoder")),
        tokenizer=clip_tokenizer("!" if family == "sd2" else "<|endoftext|>"),
        scheduler=DPMSolverMultistepScheduler.from_config(
            DPMSolverMultistepScheduler.load_config(root / "scheduler")),
    )
    if family == "sdxl":
        parts["text_encoder_2"] = CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(root / "text_encoder_2"))
        parts["tokenizer_2"] = clip_tokenizer("!")
        pipe = StableDiffusionXLPipeline(**parts)
    else:
        pipe = StableDiffusionPipeline(**parts, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
    pipe = pipe.to(device, dtype)
    if family == "sdxl":
        pipe.vae.to(torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return LoadedModel(pipe, family, ModelRef("random", f"random {family}"), torch.device(device), dtype)
