"""Foreign modules -> the canonical kohya dict of one base family, with key and shape checks.

Family detection: the first family (tiny, sd1, sd2, sdxl) whose meta-device models have every
module of the file with matching shapes wins; a file that fits none is refused with the closest
family's first mismatch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models.family import FAMILIES
from . import kohya
from .foreign import Parts
from .structure import Module, family_table, prefix_of

FAMILY_LABEL = {"tiny": "the tiny model", "sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL"}


@dataclass(frozen=True)
class Fit:
    family: str
    problems: list[str]  # empty when every module fits


def _plain(component: str, path: str) -> str:
    # transformers 5 dropped CLIPTextModel's ``text_model.`` level but CLIPTextModelWithProjection
    # (SDXL's second encoder) keeps it; the file format always names it: compare without it
    return path if component == "unet" else path.removeprefix("text_model.")


def _index(table: dict[str, Module]) -> dict[tuple[str, str], Module]:
    return {(m.component, _plain(m.component, m.path)): m for m in table.values()}


def shape_problem(m: Module, down: torch.Tensor, up: torch.Tensor) -> str | None:
    out_f, in_f, *kernel = m.shape
    r = down.shape[0] if down.ndim else -1
    ok = (down.ndim == len(m.shape) and up.ndim == len(m.shape) and down.shape[1] == in_f
          and list(down.shape[2:]) == kernel and up.shape[0] == out_f and up.shape[1] == r
          and all(d == 1 for d in up.shape[2:]))
    if ok:
        return None
    return f"{m.component}.{m.path}: down {tuple(down.shape)}, up {tuple(up.shape)} do not fit weight {m.shape}"


def fit(parts: Parts, table: dict[str, Module], family: str) -> Fit:
    index, problems = _index(table), []
    for (component, path), p in parts.items():
        m = index.get((component, _plain(component, path)))
        if m is None:
            problems.append(f"{component}.{path} does not exist in {FAMILY_LABEL.get(family, family)}")
            continue
        why = shape_problem(m, p["down"], p["up"])
        if why:
            problems.append(why)
    return Fit(family, problems)


def detect(parts: Parts, families=FAMILIES) -> Fit:
    """The first family every module fits; else the one with the fewest problems."""
    fits = [fit(parts, family_table(f), f) for f in families]
    return next((f for f in fits if not f.problems), min(fits, key=lambda f: len(f.problems)))


def to_canonical(parts: Parts, n_text_encoders: int) -> dict[str, torch.Tensor]:
    sd: dict[str, torch.Tensor] = {}
    for (component, path), p in sorted(parts.items()):
        sd.update(kohya.pack(prefix_of(component, n_text_encoders), path, p["down"].contiguous(),
                             p["up"].contiguous(), p["alpha"]))
    return sd
