"""Resize a LoRA by SVD of each module's full delta ``up @ down * alpha/rank`` (like kohya's
``resize_lora.py``), to a fixed rank or to the smallest rank keeping a share of the singular-value
energy (``sv_fro``). Pure dict -> dict; the delta is never formed at full size: with
``up = Qu Ru`` and ``down^T = Qd Rd`` the delta is ``Qu (Ru Rd^T) Qd^T``, so only an r x r SVD runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import kohya


@dataclass(frozen=True)
class ModuleError:
    key: str
    rank_before: int
    rank_after: int
    rel_error: float  # ||delta - delta_R||_F / ||delta||_F


@dataclass(frozen=True)
class ResizeReport:
    modules: list[ModuleError]
    overall: float  # sqrt(sum of squared errors) / sqrt(sum of squared norms), over all modules

    @property
    def reduced(self) -> int:
        """How many modules lost rank (0: the asked rank is at or above every module's own)."""
        return sum(m.rank_after < m.rank_before for m in self.modules)

    def format(self, per_module: bool = True) -> str:
        def span(ranks):
            ranks = sorted(set(ranks))
            return f"{ranks[0]}" + (f"-{ranks[-1]}" if len(ranks) > 1 else "")

        if self.modules and not self.reduced:
            return (f"no module was above the asked rank: all {len(self.modules)} keep their own rank "
                    f"{span(m.rank_before for m in self.modules)}: the same adapter")
        lines = [f"  {m.key}: rank {m.rank_before} -> {m.rank_after}, relative Frobenius error {m.rel_error:.2e}"
                 for m in self.modules] if per_module else []
        lines.append(f"resized {self.reduced} of {len(self.modules)} modules to rank "
                     f"{span(m.rank_after for m in self.modules)}; the weight change differs from the original by "
                     f"{self.overall:.2%} (overall relative Frobenius error {self.overall:.2e})")
        return "\n".join(lines)


def _factors(down: torch.Tensor, up: torch.Tensor, scale: float):
    """U, S, Vh of the module delta (2-D, in = in_features * kernel), from an r x r SVD."""
    d = down.double().reshape(down.shape[0], -1)
    u = up.double().reshape(up.shape[0], -1) * scale
    qu, ru = torch.linalg.qr(u)
    qd, rd = torch.linalg.qr(d.T)
    a, s, bh = torch.linalg.svd(ru @ rd.T)
    return qu @ a, s, bh @ qd.T


def keep_rank(s: torch.Tensor, keep: float) -> int:
    """Smallest rank whose singular values hold ``keep`` of the Frobenius norm (sv_fro)."""
    total = float((s ** 2).sum())
    if total == 0:
        return 1
    energy = torch.cumsum(s ** 2, 0) / total
    return int(torch.searchsorted(energy, torch.tensor(keep ** 2, dtype=energy.dtype)).item()) + 1


def resize(sd: dict, rank: int = 0, keep: float = 0.0) -> tuple[dict, ResizeReport]:
    """New canonical dict with every module at ``rank`` (capped by its own rank) or by ``keep``."""
    out, errs, num, den = {}, [], 0.0, 0.0
    for key, p in kohya.modules(sd).items():
        r = p["down"].shape[0]
        alpha = float(p["alpha"]) if "alpha" in p else float(r)
        scale = alpha / r if alpha else 1.0
        u, s, vh = _factors(p["down"], p["up"], alpha / r)
        new = min(keep_rank(s, keep) if keep else rank, r, len(s))
        sq = torch.sqrt(s[:new] / scale)  # keep the module's alpha/rank ratio, as kohya does
        down = (sq[:, None] * vh[:new]).reshape(new, *p["down"].shape[1:])
        up = (u[:, :new] * sq[None]).reshape(p["up"].shape[0], new, *p["up"].shape[2:])
        dt = p["down"].dtype
        out.update({f"{key}.lora_down.weight": down.to(dt).contiguous(), f"{key}.lora_up.weight": up.to(dt).contiguous(),
                    f"{key}.alpha": torch.tensor(scale * new, dtype=torch.float32)})
        tail, full = float((s[new:] ** 2).sum()), float((s ** 2).sum())
        num, den = num + tail, den + full
        errs.append(ModuleError(key, r, new, math.sqrt(tail / full) if full else 0.0))
    return out, ResizeReport(errs, math.sqrt(num / den) if den else 0.0)
