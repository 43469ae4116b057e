"""Write a procedural style set to disk as PNG + caption ``.txt`` sidecar pairs."""

from __future__ import annotations

from pathlib import Path

from ...errors import StudioError
from ...paths import atomic_save_image, atomic_write_bytes
from .scenes import style_set


def write_style_set(out_dir: Path, style: str, count: int, seed: int = 0) -> int:
    if not 1 <= count <= 10_000:
        raise StudioError(f"--count {count} is out of range.", "Use 1 to 10000 images.")
    out_dir.mkdir(parents=True, exist_ok=True)
    n = 0
    for i, (image, caption) in enumerate(style_set(style, count, seed)):
        stem = out_dir / f"{style}_{i:03d}"
        atomic_save_image(stem.with_suffix(".png"), image)
        atomic_write_bytes(stem.with_suffix(".txt"), (caption + "\n").encode("utf-8"))
        n += 1
    return n
