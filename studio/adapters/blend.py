"""Blend several adapters into one: exact by concatenating ranks, or compressed to rank R by SVD.

For module m with parts i (weight w_i, scale s_i = alpha_i / r_i) the blended delta is
``sum_i w_i s_i up_i @ down_i = [w_1 s_1 up_1 | w_2 s_2 up_2 | ...] @ [down_1; down_2; ...]``,
so concatenating along the rank axis with alpha = total rank (scale 1) is exact. Ranks may differ
per part and per layer type; a module present in only some parts takes only those.
"""

from __future__ import annotations

import torch

from . import kohya


def concat(parts: list[tuple[dict, float]]) -> dict[str, torch.Tensor]:
    """[(canonical dict, weight), ...] -> one canonical dict (fp32) giving the weighted sum exactly."""
    grouped: dict[str, list[tuple[dict, float]]] = {}
    for sd, w in parts:
        for key, p in kohya.modules(sd).items():
            grouped.setdefault(key, []).append((p, w))
    out: dict[str, torch.Tensor] = {}
    for key, items in grouped.items():
        downs, ups = [], []
        for p, w in items:
            r = p["down"].shape[0]
            scale = float(p["alpha"]) / r if "alpha" in p else 1.0
            downs.append(p["down"].float())
            ups.append(p["up"].float() * (w * scale))
        shapes = {(d.shape[1:], u.shape[0], u.shape[2:]) for d, u in zip(downs, ups)}
        if len(shapes) > 1:
            raise ValueError(f"{key} has different shapes in the blended adapters")
        down, up = torch.cat(downs, 0), torch.cat(ups, 1)
        out.update({f"{key}.lora_down.weight": down, f"{key}.lora_up.weight": up,
                    f"{key}.alpha": torch.tensor(float(down.shape[0]))})
    return out


# ---------------------------------------------------------------- into the library
from dataclasses import dataclass  # noqa: E402


@dataclass(frozen=True)
class BlendReport:
    name: str
    family: str
    parts: list[tuple[str, float]]
    modules: int
    rank: str  # "exact (sum of ranks)" or "R"
    path: object
    resize: object = None  # ResizeReport when compressed

    def format(self) -> str:
        text = ", ".join(f"{n} x {w:g}" for n, w in self.parts)
        line = f"blended {text} into {self.name} ({self.family}, {self.modules} modules, rank {self.rank}) -> {self.path}"
        return line + ("\n" + self.resize.format(per_module=False) if self.resize else "")


def parse_part(spec: str) -> tuple[str, float]:
    """'NAME:0.7' -> ('NAME', 0.7); 'NAME' alone has weight 1."""
    from ..errors import StudioError

    name, sep, w = spec.rpartition(":") if ":" in spec else (spec, "", "1")
    try:
        weight = float(w)
    except ValueError:
        raise StudioError(f"{spec!r} is not NAME:WEIGHT.", "Write e.g. neon:0.7") from None
    return name, check_weight(name, weight)


def check_weight(name: str, weight: float) -> float:
    import math

    from ..errors import StudioError

    if not math.isfinite(weight):
        raise StudioError(f"Blend weight {weight} for {name[:80]!r} is not a finite number.",
                          "Use a number such as 0.7 (nan and inf would fill the adapter with NaN).")
    return weight


def blend(lib, new: str, parts: list[tuple[str, float]], rank: int = 0):
    """Blend library adapters into a new library adapter ``new`` (exact, or SVD to ``rank``)."""
    import json
    import time

    from ..errors import StudioError
    from . import kohya
    from .library import check_name
    from .resize import resize

    check_name(new)
    parts = [(n, check_weight(n, float(w))) for n, w in parts]
    if len(parts) < 1:
        raise StudioError("Nothing to blend.", "Name at least one adapter, e.g. studio blend NEW a:0.7 b:0.3")
    records = [lib.get(n) for n, _ in parts]
    families = {r.family for r in records}
    if len(families) > 1:
        raise StudioError(f"These adapters are for different base models ({', '.join(sorted(families))}).",
                          "Blend only adapters of one base family.")
    try:
        sd = concat([(lib.read(n)[0], w) for n, w in parts])
    except ValueError as e:
        raise StudioError(f"The adapters do not fit together: {e}.") from None
    report = None
    if rank:
        sd, report = resize(sd, rank=rank)
    from .validate import check_finite

    check_finite(sd, f"The blend {new!r} was not written")  # e.g. huge weights overflow; lib.add checks again
    family = records[0].family
    meta = {"ss_network_module": "networks.lora", "ss_base_model_version": kohya.BASE_VERSION.get(family, ""),
            "modelspec.architecture": kohya.ARCHITECTURE.get(family, ""), "modelspec.sai_model_spec": "1.0.0",
            "studio_blend": json.dumps([{"name": n, "weight": w} for n, w in parts]), "studio_source": "blended"}
    info = {"family": family, "source": "blended", "parts": [{"name": n, "weight": w} for n, w in parts],
            "base": records[0].base, "base_hash": records[0].base_hash if len({r.base_hash for r in records}) == 1 else "",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "trigger": ", ".join(dict.fromkeys(r.trigger for r in records if r.trigger))}  # once each: neon + neon-v2
    path = lib.add(new, sd, meta, info)
    return BlendReport(new, family, parts, len(kohya.modules(sd)), str(rank) if rank else "exact (sum of ranks)",
                       path, report)
