"""The three meters, from features (:mod:`studio.judge.features`); numpy only, no drawing.

- **style %**: how far the adapter's images moved from the base model's images (same prompts,
  same seeds) toward the training set's style statistics: 0 % = the base, 100 % = as close as
  the set's own held-out images are to its training images. Each image's distance is to the
  mean statistics of the training images, every statistic group scaled by the training set's
  own spread, so colour, tone and each texture layer weigh the same.
- **copy**: the median distance from a drawn image to its nearest training image, divided by the
  same for held-out images (1.0 = as close as unseen photos of the set come; near 0 = a copy).
- **leak %**: how far the adapter moves images whose prompt lacks the trigger word toward the
  style, as a share of the whole way from the base model's images to the style (0 % = bound to
  the trigger; from about half the style score up = it restyles everything: an adapter trained
  with no trigger word at all read 40 % at style 60 %, its trigger-free prompts' base images
  starting nearer the style than the triggered ones).
  Measured like style % (the change of the mean distance to the style), not as the size of any
  change: an adapter changes the details of every image it touches, and that churn alone read
  15-16 % on adapters that had learned nothing yet (benchmarks/RESULTS.md, "Style meter: leak").
Without held-out images the training images stand in, each compared with the others (leave one out).

When the base model's own images are already about as close to the set's statistics as the set's
held-out images are (less than ``MIN_ROOM`` x the held-out distance farther), the statistics cannot
see the style: style % and leak % are NaN ("cannot tell") instead of a ratio of two noise-sized
numbers (a halftone-dot set measured 530 %, -49 %, 317 % on one run: benchmarks/RESULTS.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Groups = dict[str, np.ndarray]


def _scale(train: Groups) -> dict[str, float]:
    out = {}
    for g, f in train.items():
        spread = float(np.sqrt(((f - f.mean(0)) ** 2).sum(1).mean())) if len(f) > 1 else 0.0
        out[g] = max(spread, 1e-3 * float(np.linalg.norm(f.mean(0))), 1e-8)
    return out


@dataclass
class Reference:
    """The training set's statistics: what "the style" and "the training photos" are."""
    train: Groups
    held_out: Groups | None
    train_content: np.ndarray
    held_out_content: np.ndarray | None

    def __post_init__(self) -> None:
        self.scale = _scale(self.train)
        self.mean = {g: f.mean(0) for g, f in self.train.items()}
        self.level = self._held_out_level()
        self.copy_ref = self._copy_reference()

    def distances(self, feats: Groups, mean: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Per image: RMS over groups of the scaled distance to the training mean statistics."""
        mean = mean or self.mean
        sq = [(((feats[g] - mean[g]) / self.scale[g]) ** 2).sum(1) for g in self.train]
        return np.sqrt(np.mean(sq, axis=0))

    def _held_out_level(self) -> float:
        if self.held_out is not None and len(next(iter(self.held_out.values()))):
            return float(self.distances(self.held_out).mean())
        n = len(next(iter(self.train.values())))
        if n < 2:
            return 0.0
        loo = []
        for k in range(n):
            rest = {g: np.delete(f, k, 0).mean(0) for g, f in self.train.items()}
            loo.append(self.distances({g: f[k:k + 1] for g, f in self.train.items()}, rest)[0])
        return float(np.mean(loo))

    def _copy_reference(self) -> float:
        t = self.train_content
        if self.held_out_content is not None and len(self.held_out_content):
            return float(np.median(nearest(self.held_out_content, t)))
        if len(t) < 2:
            return float("nan")
        return float(np.median(nearest(t, t, skip_self=True)))


def nearest(x: np.ndarray, ref: np.ndarray, skip_self: bool = False) -> np.ndarray:
    """RMS pixel distance from each row of ``x`` to its nearest row of ``ref``."""
    d = np.sqrt(((x[:, None, :] - ref[None, :, :]) ** 2).mean(-1))
    if skip_self:
        np.fill_diagonal(d, np.inf)
    return d.min(1)


MIN_ROOM = 1.0  # the base model's images must be at least twice as far from the style as held-out photos


def room(ref: Reference, base: Groups) -> float:
    """How much farther the base model's images are from the style than the set's held-out images;
    NaN when that is within ``MIN_ROOM`` x the held-out distance (the meter cannot tell)."""
    r = float(ref.distances(base).mean()) - ref.level
    return r if r > max(MIN_ROOM * ref.level, 1e-9) else math.nan


def style_percent(ref: Reference, base: Groups, adapted: Groups) -> float:
    """0 for the base's own images; 100 when as close to the style as the held-out images; NaN
    when the base model's images are already too close to the style to tell (see :func:`room`)."""
    return 100.0 * toward(ref, base, adapted) / room(ref, base)


def toward(ref: Reference, before: Groups, after: Groups) -> float:
    """How much closer to the style's statistics ``after`` is than ``before``, on average."""
    return float(ref.distances(before).mean()) - float(ref.distances(after).mean())


def copy_ratio(ref: Reference, adapted_content: np.ndarray) -> float:
    """Median nearest-training-image distance of drawn images over that of held-out images."""
    if not np.isfinite(ref.copy_ref) or ref.copy_ref <= 0:
        return float("nan")
    return float(np.median(nearest(adapted_content, ref.train_content))) / ref.copy_ref


def leak_percent(ref: Reference, base: Groups, base_free: Groups, adapted_free: Groups) -> float:
    """How far trigger-free images moved toward the style (same prompts and seeds, with vs without
    the adapter), as a share of the whole way from the base model's images to the style: ~0 = bound
    to the trigger, half the style score and more = it restyles everything."""
    return 100.0 * toward(ref, base_free, adapted_free) / room(ref, base)


def take(feats: Groups, idx) -> Groups:
    return {g: f[idx] for g, f in feats.items()}
