"""Two style sets "of our own making" beside the three sample styles (neon, pastel, stripes).

* **sepia** — a photographic colour grade: the plain product scene (same objects, colours
  and light backgrounds the tiny model was pretrained on) turned into one brown tone ramp,
  with a soft dark vignette. Colour is gone; only brightness survives.
* **halftone** — a print texture: the scene re-drawn as an axis-aligned grid of round dots
  (one dot per ``HALFTONE_PERIOD`` px cell) on off-white paper; a dot's area follows its
  cell's darkness and its ink is the cell's colour, so the object stays recognisable.

The scenes come from the tiny model's own generator (``studio.models.tiny.scenes``), drawn
from a seeded ``random.Random``, so a set is the same bit for bit on every machine. Files
are written as ``write_style_set`` writes the sample sets: ``<style>_NNN.png`` plus a
``.txt`` caption ``a red mug, sepia style`` (trigger word = style name = the dataset name
``studio dataset add`` would give a folder named after the style).

    python benchmarks/style_sets.py OUT_DIR [--style sepia|halftone|all] [--count 16] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from studio.models.tiny import scenes
from studio.paths import atomic_save_image, atomic_write_bytes

EXTRA_STYLES = ("sepia", "halftone")
HALFTONE_PERIOD = 8  # px between dot centres at 64 px: 8 dots across, 2 latent pixels per dot
PAPER = (246, 242, 230)
SEPIA_DARK, SEPIA_LIGHT = (38, 24, 12), (255, 236, 196)  # the tone ramp's ends


def plain_scene(obj: str, colour: str, rng: random.Random, size: int = scenes.SIZE) -> Image.Image:
    """The unstyled product photo a style is applied to (a pretraining-like scene)."""
    background = rng.choice(sorted(scenes.BACKGROUNDS))
    return scenes.render_scene(scenes.Scene(obj, colour, background), rng, size)


def sepia(img: Image.Image) -> Image.Image:
    """Luminance mapped onto a brown tone ramp, then a radial vignette darkens the corners."""
    toned = ImageOps.colorize(ImageOps.autocontrast(img.convert("L"), cutoff=1), SEPIA_DARK, SEPIA_LIGHT)
    w, h = toned.size
    y, x = np.mgrid[0:h, 0:w]
    r = np.hypot((x - (w - 1) / 2) / (w / 2), (y - (h - 1) / 2) / (h / 2))
    shade = 1.0 - 0.35 * np.clip(r - 0.55, 0.0, None) ** 1.5
    return Image.fromarray(np.clip(np.asarray(toned, dtype=float) * shade[..., None], 0, 255).astype(np.uint8))


def halftone(img: Image.Image, period: int = HALFTONE_PERIOD, ss: int = scenes.SS) -> Image.Image:
    """One round dot per ``period`` cell, area ∝ darkness, ink = the cell's colour darkened."""
    arr = np.asarray(img.convert("RGB"), dtype=float)
    h, w = arr.shape[:2]
    canvas = Image.new("RGB", (w * ss, h * ss), PAPER)
    draw = ImageDraw.Draw(canvas)
    for cy in range(0, h, period):
        for cx in range(0, w, period):
            cell = arr[cy:cy + period, cx:cx + period].reshape(-1, 3).mean(0)
            darkness = 1.0 - float(cell @ (0.299, 0.587, 0.114)) / 255.0
            radius = period * ss * 0.5 * min(1.0, 0.25 + 1.1 * darkness ** 0.5)
            ink = tuple(int(v * 0.8) for v in cell)
            mx, my = (cx + period / 2) * ss, (cy + period / 2) * ss
            draw.ellipse([mx - radius, my - radius, mx + radius, my + radius], fill=ink)
    return canvas.resize((w, h), Image.Resampling.BOX)


_GRADES = {"sepia": sepia, "halftone": halftone}


def render(style: str, obj: str, colour: str, rng: random.Random, size: int = scenes.SIZE) -> Image.Image:
    try:
        grade = _GRADES[style]
    except KeyError:
        raise ValueError(f"unknown style {style!r}; choose one of {', '.join(EXTRA_STYLES)}") from None
    return grade(plain_scene(obj, colour, rng, size))


def style_set(style: str, count: int, seed: int = 0, size: int = scenes.SIZE,
              plain: bool = False) -> Iterator[tuple[Image.Image, str]]:
    """``(image, caption)`` pairs cycling objects and colours as the sample sets do.
    ``plain=True`` yields the same scenes without the style (for comparisons)."""
    rng = random.Random(f"{style}-{seed}")
    colours = list(scenes.COLOURS)
    for i in range(count):
        obj = scenes.OBJECTS[i % len(scenes.OBJECTS)]
        colour = colours[(i * 5 + i // len(scenes.OBJECTS)) % len(colours)]
        if plain:
            image = plain_scene(obj, colour, rng, size)
        else:
            image = render(style, obj, colour, rng, size)
        yield image, scenes.style_caption(style, obj, colour)


def write_style_set(out_dir: Path, style: str, count: int = 16, seed: int = 0) -> int:
    """PNG + caption ``.txt`` pairs, named like ``studio sample-data`` names its files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    n = 0
    for i, (image, caption) in enumerate(style_set(style, count, seed)):
        stem = out_dir / f"{style}_{i:03d}"
        atomic_save_image(stem.with_suffix(".png"), image)
        atomic_write_bytes(stem.with_suffix(".txt"), (caption + "\n").encode("utf-8"))
        n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out_dir", help="folder to write into (one sub-folder per style with --style all)")
    p.add_argument("--style", choices=[*EXTRA_STYLES, "all"], default="all")
    p.add_argument("--count", type=int, default=16, help="images per style (default: 16, as sample-data)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    styles = EXTRA_STYLES if a.style == "all" else (a.style,)
    for style in styles:
        target = Path(a.out_dir) / style if len(styles) > 1 else Path(a.out_dir)
        print(f"wrote {write_style_set(target, style, a.count, a.seed)} {style} images + captions to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
