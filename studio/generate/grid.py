"""Compare grid (like A1111's X/Y plot): prompts (rows) × adapter sets (columns) at one seed.

Each cell is drawn once through the engine; the cells are assembled into one PNG with row
labels (prompts) and column labels (adapter sets). Small cells (the tiny model's 64 px) are
enlarged with nearest-neighbour resampling so labels stay readable and pixels stay honest.
"""

from __future__ import annotations

import dataclasses
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ..config import GenerateSettings
from ..paths import atomic_save_image
from .tags import LoraWeight

MIN_CELL = 256
PAD = 8


@dataclass(frozen=True)
class GridResult:
    image: Image.Image  # the labelled grid
    cells: tuple[tuple[Image.Image, ...], ...]  # [row][column], as drawn
    row_labels: tuple[str, ...]
    col_labels: tuple[str, ...]
    seed: int
    seconds: float
    warnings: tuple[str, ...] = ()


def set_label(loras: list[LoraWeight]) -> str:
    return " + ".join(lw.label for lw in loras) or "no adapter"


def draw_grid(engine, prompts: list[str], sets: list[list[LoraWeight]], s: GenerateSettings,
              fuse: bool = False, col_labels: list[str] | None = None) -> GridResult:
    """``col_labels`` names the columns (default: each set's tags, e.g. "neon 0.8")."""
    t0, warnings = time.perf_counter(), []
    rows, labels = [], []
    for prompt in prompts:
        row = []
        for loras in sets:
            r = engine.generate(dataclasses.replace(s, prompt=prompt, count=1), loras=loras, fuse=fuse)
            row.append(r.image)
            warnings += [w for w in r.warnings if w not in warnings]
        rows.append(tuple(row))
        labels.append(r.settings.prompt)  # without its tags
    cols = tuple(col_labels) if col_labels else tuple(set_label(x) for x in sets)
    image = compose(rows, labels, list(cols))
    return GridResult(image, tuple(rows), tuple(labels), cols, s.seed, time.perf_counter() - t0, tuple(warnings))


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: fixed bitmap font
        return ImageFont.load_default()


def compose(rows, row_labels: list[str], col_labels: list[str], min_cell: int = MIN_CELL) -> Image.Image:
    """One labelled PNG from ``rows[r][c]`` images (all the same size)."""
    w0, h0 = rows[0][0].size
    k = max(1, -(-min_cell // max(w0, h0)))  # integer upscale so 64 px cells become >= min_cell
    cw, ch = w0 * k, h0 * k
    font = _font(max(12, min(cw, ch) // 10))  # readable when the page shows the grid scaled down
    wrap = max(8, cw // max(6, font.size * 6 // 10))
    col_text = [textwrap.wrap(t, wrap)[:3] or [""] for t in col_labels]
    row_text = [textwrap.wrap(t, wrap)[:6] or [""] for t in row_labels]
    line = font.size + 4
    top = PAD * 2 + line * max(len(t) for t in col_text)
    left = cw + PAD
    grid = Image.new("RGB", (left + len(col_labels) * (cw + PAD), top + len(rows) * (ch + PAD)), "white")
    draw = ImageDraw.Draw(grid)
    for c, text in enumerate(col_text):
        for i, t in enumerate(text):
            draw.text((left + c * (cw + PAD), PAD + i * line), t, fill="black", font=font)
    for r, row in enumerate(rows):
        y = top + r * (ch + PAD)
        for i, t in enumerate(row_text[r]):
            draw.text((PAD, y + i * line), t, fill="black", font=font)
        for c, img in enumerate(row):
            grid.paste(img.convert("RGB").resize((cw, ch), Image.NEAREST), (left + c * (cw + PAD), y))
    return grid


def save(result: GridResult, out: Path) -> list[Path]:
    """Write the grid to ``out`` and each cell beside it as ``<stem>-r<row>-c<col>.png``."""
    out = Path(out)
    atomic_save_image(out, result.image)
    paths = [out]
    for r, row in enumerate(result.cells):
        for c, img in enumerate(row):
            p = out.with_name(f"{out.stem}-r{r}-c{c}.png")
            atomic_save_image(p, img)
            paths.append(p)
    return paths
