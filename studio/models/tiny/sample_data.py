"""Write a procedural style set to disk as PNG + caption ``.txt`` sidecar pairs."""

from __future__ import annotations

from pathlib import Path

from ...errors import StudioError
from ...paths import png_bytes, write_output
from .scenes import style_set


def write_style_set(out_dir: Path, style: str, count: int, seed: int = 0) -> int:
    if not 1 <= count <= 10_000:
        raise StudioError(f"--count {count} is out of range.", "Use 1 to 10000 images.")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StudioError(f"Cannot create the folder {out_dir}: {e.strerror or e}.", "Choose another folder.") from None
    n = 0
    for i, (image, caption) in enumerate(style_set(style, count, seed)):
        stem = out_dir / f"{style}_{i:03d}"
        # the studio's output rule: never over a link, FIFO or device that sits under this name
        write_output(stem.with_suffix(".png"), png_bytes(image), what="Sample image")
        write_output(stem.with_suffix(".txt"), (caption + "\n").encode("utf-8"), what="Sample caption")
        n += 1
    return n
