"""One judging session: the training set's reference, the base model's images (drawn once: the
"before" column) and, each round, the adapter's images at the same prompts and seeds -> a Row.

Drawing is passed in as ``draw(prompts, seeds) -> images`` so the trainer (its own adapter,
switched off for the base images) and the CLI (a library adapter by name) share this code.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from . import meters
from .features import StyleFeatures, content
from .prompts import JudgePrompts, judge_prompts, without_trigger
from .scorecard import Row, copies

Draw = Callable[[list[str], list[int]], list[Image.Image]]


@dataclass
class Drawn:
    styled: list[Image.Image]
    free: list[Image.Image]


class Judge:
    def __init__(self, vae, prompts: JudgePrompts, train: list[Image.Image], held_out: list[Image.Image],
                 copy_threshold: float):
        self.features, self.prompts, self.threshold = StyleFeatures(vae), prompts, copy_threshold
        both = self.features.style(train + held_out)  # one batch
        n = len(train)
        self.ref = meters.Reference(meters.take(both, slice(0, n)),
                                    meters.take(both, slice(n, None)) if held_out else None,
                                    content(train), content(held_out) if held_out else None)
        self.before: Drawn | None = None
        self._before_feats = None

    def draw(self, draw: Draw) -> Drawn:
        p = self.prompts
        images = draw([*p.styled, *p.free], [*p.seeds, *p.seeds[:len(p.free)]])
        return Drawn(images[:len(p.styled)], images[len(p.styled):])

    def set_before(self, drawn: Drawn) -> None:
        self.before = drawn
        self._before_feats = self.features.style(drawn.styled + drawn.free)

    def row(self, step: int, after: Drawn, val_loss: float | None = None, adapter: str = "") -> Row:
        assert self.before is not None, "draw the base model's images first (set_before)"
        n = len(after.styled)
        feats = self.features.style(after.styled + after.free)
        base, adapted = meters.take(self._before_feats, slice(0, n)), meters.take(feats, slice(0, n))
        style = meters.style_percent(self.ref, base, adapted)
        copy = meters.copy_ratio(self.ref, content(after.styled))
        leak = meters.leak_percent(self.ref, base, meters.take(self._before_feats, slice(n, None)),
                                   meters.take(feats, slice(n, None))) if after.free else math.nan  # not measured
        return Row(step, round(style, 2), round(copy, 4), round(leak, 2), val_loss,
                   copies(copy, self.threshold), adapter)

    def pairs(self, after: Drawn) -> list[tuple[str, Image.Image]]:
        """(prompt, before|after image) for every judged prompt, trigger-free ones last."""
        assert self.before is not None
        prompts = [*self.prompts.styled, *self.prompts.free]
        return [(p, pair(b, a)) for p, b, a in zip(prompts, self.before.styled + self.before.free,
                                                    after.styled + after.free)]


GAP = 2  # white pixels between the two halves of a before|after pair


def pair(before: Image.Image, after: Image.Image, gap: int = GAP) -> Image.Image:
    """The base model's image (left) beside the adapter's (right), same prompt and seed."""
    w, h = before.size
    out = Image.new("RGB", (2 * w + gap, h), (255, 255, 255))
    out.paste(before.convert("RGB"), (0, 0))
    out.paste(after.convert("RGB").resize((w, h)), (w + gap, 0))
    return out


def preview_path(out: Path, step: int, i: int) -> Path:
    """Round ``step``'s i-th before|after preview (judged captions first, trigger-free ones after)."""
    return out / "samples" / f"step-{step:07d}-{i}.png"


def after_half(pair_image: Image.Image, gap: int = GAP) -> Image.Image:
    """The adapter's image back out of a :func:`pair` (the right half)."""
    w = (pair_image.width - gap) // 2
    return pair_image.crop((w + gap, 0, 2 * w + gap, pair_image.height)).convert("RGB")


def saved_afters(out: Path, step: int, n: int) -> list[Image.Image]:
    """The adapter's images of round ``step``'s first ``n`` previews, read back from the saved
    before|after pairs (lossless PNG). OSError/ValueError when one is missing or unreadable."""
    out_images = []
    for i in range(n):
        with Image.open(preview_path(out, step, i)) as im:
            out_images.append(after_half(im))
    return out_images


def fitted(path: Path, res: int) -> Image.Image:
    with Image.open(path) as im:
        return ImageOps.fit(im.convert("RGB"), (res, res), Image.Resampling.BICUBIC)


def from_dataset(vae, manifest, data_root: Path, res: int, count: int, free: int, seed: int,
                 copy_threshold: float) -> Judge:
    """A judge for a dataset: its captions (held-out first) and its images at ``res`` pixels. In a
    set that mixes trigger-captioned images with plain ones (prior preservation), the style is what
    the trigger-captioned ones share: only they are the reference and the judged prompts."""
    val, train = manifest.val, manifest.train
    if any(names_trigger(i.caption, manifest.trigger) for i in train):
        val, train = ([i for i in items if names_trigger(i.caption, manifest.trigger)] for items in (val, train))
    prompts = judge_prompts([i.caption for i in val], [i.caption for i in train], manifest.trigger, count, free, seed)
    return Judge(vae, prompts, [fitted(data_root / i.file, res) for i in train],
                 [fitted(data_root / i.file, res) for i in val], copy_threshold)


def names_trigger(caption: str, trigger: str) -> bool:
    return bool(trigger) and without_trigger(caption, trigger) != caption.strip(" ,;")
