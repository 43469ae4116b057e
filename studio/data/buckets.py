"""Aspect-ratio buckets: train on each image at roughly its own shape, not a square crop.

Buckets have about the base model's pixel area (resolution^2), sides that are multiples
of ``step`` (what the UNet needs: 64 px for SD, 16 px for tiny) and an aspect ratio up to
``max_aspect``. An image goes to the bucket nearest its aspect ratio; with ``no_upscale``
a small image gets a smaller bucket of its own size instead of being blown up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Bucket:
    width: int
    height: int

    @property
    def aspect(self) -> float:
        return self.width / self.height


def make_buckets(resolution: int, step: int, max_aspect: float = 2.0) -> list[Bucket]:
    area = resolution * resolution
    out = set()
    w = step
    while w <= resolution * max_aspect:
        h = (area // w) // step * step
        if h >= step and max(w / h, h / w) <= max_aspect:
            out.add(Bucket(w, h))
            out.add(Bucket(h, w))
        w += step
    return sorted(out, key=lambda b: (b.aspect, b.width))


def assign(width: int, height: int, buckets: list[Bucket], step: int, no_upscale: bool = True) -> Bucket:
    """The bucket for a ``width`` x ``height`` image."""
    ar = width / height
    best = min(buckets, key=lambda b: (abs(math.log(b.aspect / ar)), -b.width * b.height))
    if no_upscale and width * height < best.width * best.height:
        scale = math.sqrt(width * height / (best.width * best.height))
        w = max(step, int(best.width * scale) // step * step)
        h = max(step, int(best.height * scale) // step * step)
        return Bucket(w, h)
    return best
