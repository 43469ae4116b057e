"""Style statistics that do not depend on what is drawn, and a content vector for the copy meter.

Style: per image, in groups (each group weighs the same in a distance):
- ``colour``: mean and standard deviation of R, G, B and their 3x3 covariance (palette, contrast);
- ``tone``: a 16-bin histogram of luminance (brightness distribution);
- ``texture_k``: the Gram matrix (channel x channel correlations, spatially pooled, so the layout
  of the picture drops out) of the features after the VAE encoder's ``conv_in`` and each down block.
  The encoder is the base model's own (no download); Gram matrices of encoder features are the
  classic style representation (Gatys et al.), here from the model that paints the images.
Content: the image at 32x32 RGB, values in [0, 1] (for "is this a copy of that photo").
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

MAX_SIDE = 256  # bigger images are judged downscaled: style statistics need no more, and it stays cheap
CONTENT_SIDE = 32


def _tensor(images: list[Image.Image]) -> torch.Tensor:
    side = min(MAX_SIDE, max(min(im.size) for im in images))
    side -= side % 8
    arrs = [np.asarray(im.convert("RGB").resize((side, side), Image.Resampling.BICUBIC), dtype=np.float32)
            for im in images]
    return torch.from_numpy(np.stack(arrs) / 127.5 - 1.0).permute(0, 3, 1, 2)


def _gram(f: torch.Tensor) -> torch.Tensor:
    n, c, h, w = f.shape
    x = f.reshape(n, c, h * w)
    g = x @ x.transpose(1, 2) / (h * w)
    iu = torch.triu_indices(c, c)
    return g[:, iu[0], iu[1]]


def _colour(x: torch.Tensor) -> dict[str, np.ndarray]:
    rgb = (x + 1) / 2  # [n, 3, h, w] in [0, 1]
    flat = rgb.flatten(2)
    mean, std = flat.mean(-1), flat.std(-1)
    centred = flat - mean[..., None]
    cov = centred @ centred.transpose(1, 2) / flat.shape[-1]
    iu = torch.triu_indices(3, 3)
    luma = (0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]).flatten(1)
    tone = torch.stack([torch.histc(row, bins=16, min=0.0, max=1.0) for row in luma]) / luma.shape[1]
    colour = torch.cat([mean, std, cov[:, iu[0], iu[1]]], 1)
    return {"colour": colour.numpy(), "tone": tone.numpy()}


class StyleFeatures:
    """Computes every image's statistics in one batch through ``vae.encoder``."""

    def __init__(self, vae):
        self.vae = vae

    @torch.no_grad()
    def style(self, images: list[Image.Image]) -> dict[str, np.ndarray]:
        """{group: [n, d]} for ``images`` (any sizes; judged at one common size)."""
        x = _tensor(images)
        out = _colour(x)
        enc = self.vae.encoder
        p = next(enc.parameters())
        h = enc.conv_in(x.to(p.device, p.dtype))
        out["texture_0"] = _gram(h.float()).cpu().numpy()
        for k, block in enumerate(enc.down_blocks, 1):
            h = block(h)
            out[f"texture_{k}"] = _gram(h.float()).cpu().numpy()
        return out


def content(images: list[Image.Image]) -> np.ndarray:
    """[n, 32*32*3] small RGB copies in [0, 1]: near-identical images are near in this space."""
    return np.stack([np.asarray(im.convert("RGB").resize((CONTENT_SIDE, CONTENT_SIDE), Image.Resampling.BOX),
                                dtype=np.float32).ravel() / 255.0 for im in images])
