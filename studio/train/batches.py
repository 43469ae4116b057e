"""Training batches of latents + captions, indexed by a global batch number.

Batch ``n`` is a pure function of (seed, n): resuming needs nothing but the counter.
With ``cache`` the VAE encodes every (image, flip) once up front — the biggest per-step
saving over a loop that re-encodes every step — and can then leave the GPU.
"""

from __future__ import annotations

import logging

import torch

from ..data.dataset import BucketBatchSampler, ImageDataset

log = logging.getLogger(__name__)


@torch.no_grad()
def encode(vae, pixels: torch.Tensor) -> torch.Tensor:
    """Pixels in [-1, 1] -> scaled latents (posterior mean), in the VAE's dtype/device."""
    p = pixels.to(vae.device, vae.dtype)
    lat = vae.encode(p).latent_dist.mean
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    return (lat - shift) * vae.config.scaling_factor


class LatentBatches:
    def __init__(self, dataset: ImageDataset, vae, batch_size: int, seed: int, cache: bool,
                 rank: int = 0, world: int = 1):
        self.ds, self.vae, self.cache_on = dataset, vae, cache
        self.sampler = BucketBatchSampler(dataset, batch_size, seed=seed)
        self.rank, self.world = rank, world
        self._epoch_batches: tuple[int, list[list[int]]] = (-1, [])
        self.per_epoch = len(self.sampler)
        self.cache: dict[tuple[int, bool], torch.Tensor] = {}
        if cache:
            self._fill_cache()

    def _fill_cache(self) -> None:
        flips = (False, True) if self.ds.aug.flip else (False,)
        for i in range(len(self.ds.items)):
            for flip in flips:
                self.cache[i, flip] = encode(self.vae, self.ds.load(i, flip)[None])[0].float().cpu()
        log.info("cached %d latents", len(self.cache))

    def _batches_of_epoch(self, epoch: int) -> list[list[int]]:
        if self._epoch_batches[0] != epoch:
            self.sampler.set_epoch(epoch)
            self._epoch_batches = (epoch, self.sampler._batches())
        return self._epoch_batches[1]

    def global_index(self, n: int) -> int:
        """This process's ``n``-th batch in the global sequence (data parallel: every
        process takes a different batch of the same sequence)."""
        return n * self.world + self.rank

    def indices(self, n: int) -> list[int]:
        """Dataset indices of this process's ``n``-th batch."""
        g = self.global_index(n)
        return self._batches_of_epoch(g // self.per_epoch)[g % self.per_epoch]

    def batch(self, n: int) -> tuple[torch.Tensor, list[str]]:
        idx = self.indices(n)
        caps = [self.ds.items[i % len(self.ds.items)].caption for i in idx]
        if self.cache_on:
            lat = torch.stack([self.cache[i % len(self.ds.items), self.ds.flipped(i)] for i in idx])
        else:
            pixels = torch.stack([self.ds[i]["pixels"] for i in idx])
            lat = encode(self.vae, pixels).float().cpu()
        return lat, caps
