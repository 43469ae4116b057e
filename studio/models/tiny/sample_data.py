"""Write a procedural style set to disk as PNG + caption ``.txt`` sidecar pairs, and the plain
product photos that go beside it for prior preservation."""

from __future__ import annotations

from pathlib import Path

from ...errors import StudioError
from ...paths import png_bytes, write_output
from .scenes import BACKGROUNDS, Scene, render_scene, style_set, subject_caption, subjects


def _pairs(out_dir: Path, count: int, pairs) -> int:
    """Write ``(stem, image, caption)`` as ``stem.png`` + ``stem.txt`` under ``out_dir``."""
    if not 1 <= count <= 10_000:
        raise StudioError(f"--count {count} is out of range.", "Use 1 to 10000 images.")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StudioError(f"Cannot create the folder {out_dir}: {e.strerror or e}.", "Choose another folder.") from None
    n = 0
    for name, image, caption in pairs:
        stem = out_dir / name
        # the studio's output rule: never over a link, FIFO or device that sits under this name
        write_output(stem.with_suffix(".png"), png_bytes(image), what="Sample image")
        write_output(stem.with_suffix(".txt"), (caption + "\n").encode("utf-8"), what="Sample caption")
        n += 1
    return n


def write_style_set(out_dir: Path, style: str, count: int, seed: int = 0, trigger: bool = True) -> int:
    """``count`` images of ``style``; captions name it (``"a red bottle, neon style"``), or with
    ``trigger=False`` do not (``"a red bottle"``: an adapter trained so restyles every prompt)."""
    return _pairs(out_dir, count, ((f"{style}_{i:03d}", image, caption if trigger else subject_caption(*subject))
                                   for i, ((image, caption), subject)
                                   in enumerate(zip(style_set(style, count, seed), subjects(count)))))


def write_plain_photos(out_dir: Path, count: int, seed: int = 0) -> int:
    """Ordinary product photos of the same objects and colours as ``write_style_set(_, _, count)``,
    captioned without the style (``"a red bottle"``): beside the style set they teach that only
    the trigger word asks for the style (prior preservation)."""
    import random

    rng, backgrounds = random.Random(f"plain-{seed}"), list(BACKGROUNDS)

    def photos():
        for i, (obj, colour) in enumerate(subjects(count)):
            scene = Scene(obj, colour, backgrounds[i % len(backgrounds)])
            yield f"plain_{i:03d}", render_scene(scene, rng), subject_caption(obj, colour)
    return _pairs(out_dir, count, photos())
