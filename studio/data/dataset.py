"""The torch side of a dataset: bucketed resize/crop, flips, repeats, per-bucket batches."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .buckets import Bucket, assign, make_buckets
from .manifest import Item


@dataclass(frozen=True)
class AugmentSettings:
    resolution: int
    step: int  # bucket side multiple
    random_crop: bool = False
    flip: bool = False
    repeats: int = 1
    no_upscale: bool = True
    max_aspect: float = 2.0


def fit(image: Image.Image, bucket: Bucket, rng: random.Random | None) -> Image.Image:
    """Resize to cover ``bucket`` then crop to it: centred, or at a random offset."""
    w, h = image.size
    scale = max(bucket.width / w, bucket.height / h)
    rw, rh = max(bucket.width, round(w * scale)), max(bucket.height, round(h * scale))
    image = image.resize((rw, rh), Image.Resampling.LANCZOS)
    dx, dy = rw - bucket.width, rh - bucket.height
    x, y = (rng.randint(0, dx), rng.randint(0, dy)) if rng else (dx // 2, dy // 2)
    return image.crop((x, y, x + bucket.width, y + bucket.height))


def to_tensor(image: Image.Image) -> torch.Tensor:
    arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


class ImageDataset(torch.utils.data.Dataset):
    """One sample per (image, repeat); ``__getitem__`` returns pixels in [-1, 1] + caption."""

    def __init__(self, root: Path, items: list[Item], aug: AugmentSettings, seed: int = 0):
        self.root, self.items, self.aug = Path(root), list(items), aug
        buckets = make_buckets(aug.resolution, aug.step, aug.max_aspect)
        self.buckets = [assign(i.width, i.height, buckets, aug.step, aug.no_upscale) for i in self.items]
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.items) * self.aug.repeats

    def rng(self, index: int) -> random.Random:
        """Augmentation randomness of one sample in the current epoch (reproducible)."""
        return random.Random(f"{self.seed}:{self.epoch}:{index}")

    def flipped(self, index: int) -> bool:
        """Whether sample ``index`` is flipped this epoch (only for centred crops)."""
        return self.aug.flip and not self.aug.random_crop and self.rng(index).random() < 0.5

    def load(self, i: int, flip: bool = False, rng: random.Random | None = None) -> torch.Tensor:
        with Image.open(self.root / self.items[i].file) as im:
            image = fit(im.convert("RGB"), self.buckets[i], rng)
        if flip:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return to_tensor(image)

    def __getitem__(self, index: int) -> dict:
        i = index % len(self.items)
        if self.aug.random_crop:
            rng = self.rng(index)
            pixels = self.load(i, rng=rng, flip=False)
            if self.aug.flip and rng.random() < 0.5:
                pixels = pixels.flip(-1)
        else:
            pixels = self.load(i, flip=self.flipped(index))
        return {"pixels": pixels, "caption": self.items[i].caption, "index": i}


class BucketBatchSampler(torch.utils.data.Sampler):
    """Batches that never mix buckets (tensors in a batch must share a shape)."""

    def __init__(self, dataset: ImageDataset, batch_size: int, seed: int = 0, shuffle: bool = True):
        self.dataset, self.batch_size, self.seed, self.shuffle = dataset, batch_size, seed, shuffle
        self.epoch = 0

    def _batches(self) -> list[list[int]]:
        rng = random.Random(f"{self.seed}:{self.epoch}")
        groups: dict[Bucket, list[int]] = defaultdict(list)
        for idx in range(len(self.dataset)):
            groups[self.dataset.buckets[idx % len(self.dataset.items)]].append(idx)
        batches = []
        for b in sorted(groups, key=lambda b: (b.width, b.height)):
            idxs = groups[b]
            if self.shuffle:
                rng.shuffle(idxs)
            batches += [idxs[i:i + self.batch_size] for i in range(0, len(idxs), self.batch_size)]
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def __iter__(self):
        yield from self._batches()

    def __len__(self) -> int:
        return len(self._batches())

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.dataset.epoch = epoch
