"""Deterministic hold-out split for validation."""

from __future__ import annotations

import hashlib


def holdout_count(n: int, fraction: float) -> int:
    """``fraction`` of ``n`` rounded, at least one when there are 5 or more images."""
    if n < 2 or fraction <= 0:
        return 0
    k = round(n * fraction)
    return min(n - 1, max(k, 1 if n >= 5 else 0))


def assign_splits(hashes: list[str], fraction: float, seed: int = 0) -> list[str]:
    """``"val"`` / ``"train"`` per image; depends only on the content hashes and seed, so
    adding images never reshuffles by file order."""
    k = holdout_count(len(hashes), fraction)
    order = sorted(range(len(hashes)),
                   key=lambda i: hashlib.sha256(f"{seed}:{hashes[i]}".encode()).hexdigest())
    val = set(order[:k])
    return ["val" if i in val else "train" for i in range(len(hashes))]
