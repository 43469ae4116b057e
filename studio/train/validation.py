"""Deterministic held-out validation loss, and the overfitting signal."""

from __future__ import annotations

import torch

from .loss import diffusion_loss, target

TIMESTEP_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)


class Validator:
    """Fixed noise and timesteps per held-out latent, so losses compare across steps."""

    def __init__(self, latents: list[torch.Tensor], captions: list[str], scheduler, seed: int, vae_factor: int):
        self.latents, self.captions, self.scheduler, self.vae_factor = latents, captions, scheduler, vae_factor
        gen = torch.Generator().manual_seed(seed + 7919)
        T = scheduler.config.num_train_timesteps
        self.timesteps = torch.tensor([int(T * f) for f in TIMESTEP_FRACTIONS])
        self.noise = [torch.randn((len(self.timesteps), *lat.shape), generator=gen) for lat in latents]
        self.history: list[float] = []

    def __bool__(self) -> bool:
        return bool(self.latents)

    @torch.no_grad()
    def loss(self, unet, condition, device, dtype) -> float:
        total = 0.0
        for lat, cap, noise in zip(self.latents, self.captions, self.noise):
            k = len(self.timesteps)
            x0 = lat[None].expand(k, *lat.shape).to(device, dtype)
            n = noise.to(device, dtype)
            t = self.timesteps.to(device)
            noisy = self.scheduler.add_noise(x0, n, t)
            kwargs = condition([cap] * k, device, lat.shape[-2] * self.vae_factor, lat.shape[-1] * self.vae_factor)
            pred = unet(noisy, t, **kwargs).sample
            total += diffusion_loss(pred, target(self.scheduler, x0, n, t), self.scheduler, t).item()
        value = total / len(self.latents)
        self.history.append(value)
        return value


def overfitting(val: list[float], train_ema: list[float]) -> bool:
    """Validation rose twice in a row while the training loss kept falling."""
    if len(val) < 3 or len(train_ema) < 3:
        return False
    return val[-1] > val[-2] > val[-3] and train_ema[-1] < train_ema[-3]
