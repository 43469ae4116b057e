"""Diffusion loss: noise + timesteps, epsilon or v-prediction targets, min-SNR-gamma."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sample_noise(latents: torch.Tensor, gen: torch.Generator, noise_offset: float) -> torch.Tensor:
    """Gaussian noise drawn on the CPU generator (same numbers on every device)."""
    noise = torch.randn(latents.shape, generator=gen)
    if noise_offset:  # shifts per-channel means: lets the model learn very dark / bright images
        noise += noise_offset * torch.randn(latents.shape[0], latents.shape[1], 1, 1, generator=gen)
    return noise.to(latents.device, latents.dtype)


def sample_timesteps(n: int, scheduler, gen: torch.Generator, device) -> torch.Tensor:
    return torch.randint(0, scheduler.config.num_train_timesteps, (n,), generator=gen).to(device)


def target(scheduler, latents, noise, timesteps) -> torch.Tensor:
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    raise ValueError(f"unsupported prediction type {kind}")


def snr(scheduler, timesteps: torch.Tensor) -> torch.Tensor:
    ac = scheduler.alphas_cumprod.to(timesteps.device)[timesteps].float()
    return ac / (1 - ac)


def diffusion_loss(pred, tgt, scheduler, timesteps, min_snr_gamma: float = 0.0) -> torch.Tensor:
    """Per-sample MSE, optionally weighted by min(SNR, gamma)/SNR (Hang et al. 2023;
    /(SNR+1) for v-prediction)."""
    per = F.mse_loss(pred.float(), tgt.float(), reduction="none").mean(dim=(1, 2, 3))
    if min_snr_gamma:
        s = snr(scheduler, timesteps)
        w = torch.clamp(s, max=min_snr_gamma)
        w = w / (s + 1) if scheduler.config.prediction_type == "v_prediction" else w / s
        per = per * w
    return per.mean()
