"""How long a training will take, said before Start: from the step rates of past finished runs
on the same device and base model (their events files), else a short figure measured once.

Per-step time grows with the batch, so rates are kept per image (seconds per step / batch size).
The estimate counts the start-up (loading the model, caching the images) and the previews, which
pause training; the page shows it as "about N min" and says when the first preview comes.
"""

from __future__ import annotations

import json
import logging
import statistics
from dataclasses import dataclass
from pathlib import Path

from ..config import TrainSettings, apply_sets
from ..paths import Workspace
from . import records as rr

log = logging.getLogger(__name__)

# Measured on this project's 2-core CPU with the tiny model, idle (benchmarks/RESULTS.md, "Tiny-model
# step time": 0.33 s per step at batch 8): used until this machine has a finished run of its own.
FALLBACK = {("tiny", "cpu"): (0.045, 8.0)}  # (seconds per step per image, start-up seconds)
RECENT = 5  # the newest finished runs that count


@dataclass(frozen=True)
class Rate:
    per_image_s: float  # seconds per training step per image in the batch
    startup_s: float  # from the process start to the first step
    source: str  # "past runs on this machine" | "a typical figure"
    runs: int = 0


@dataclass(frozen=True)
class Estimate:
    total_s: float
    first_preview_s: float | None  # None when previews are off
    rate: Rate


def measured_rate(ws: Workspace, model: str, device: str) -> Rate | None:
    """Median rate of the newest finished runs of ``model`` on ``device`` (None if there are none)."""
    per_image, startups = [], []
    for folder in _finished(ws, model, device)[:RECENT]:
        got = _run_rate(folder)
        if got:
            per_image.append(got[0])
            startups.append(got[1])
    if not per_image:
        return None
    return Rate(statistics.median(per_image), statistics.median(startups), "past runs on this machine", len(per_image))


def rate_for(ws: Workspace, model: str, device: str, family: str) -> Rate | None:
    got = measured_rate(ws, model, device)
    if got is not None:
        return got
    slot = "cpu" if not device.startswith("cuda") else "cuda"
    fb = FALLBACK.get((family, slot))
    return Rate(fb[0], fb[1], "a typical figure") if fb else None


def estimate(s: TrainSettings, rate: Rate | None) -> Estimate | None:
    """Expected wall time of a run with settings ``s`` (previews included)."""
    if rate is None:
        return None
    step = rate.per_image_s * s.batch_size * s.grad_accum
    # a preview draws each prompt for sample_steps steps, two UNet passes each (guidance), about
    # two thirds of what one training image costs (forward + backward)
    preview = rate.per_image_s * s.sample_steps * len(s.sample_prompts) * 2 / 3
    previews = s.steps // s.sample_every if s.sample_every else 0
    total = rate.startup_s + step * s.steps + preview * previews
    first = rate.startup_s + step * s.sample_every + preview if s.sample_every and s.sample_every <= s.steps else None
    return Estimate(total, first, rate)


def _finished(ws: Workspace, model: str, device: str) -> list[Path]:
    """Run folders of finished runs of ``model`` on ``device``, newest first."""
    out = []
    for folder in ws.runs.iterdir() if ws.runs.is_dir() else []:
        try:
            rec = json.loads((folder / rr.RECORD).read_text())
        except (OSError, ValueError):
            continue
        req = rec.get("request") or {}
        if rec.get("status") == "finished" and rec.get("device") == device and req.get("model") == model:
            out.append((rec.get("created") or 0, folder))
    return [f for _, f in sorted(out, key=lambda x: x[0], reverse=True)]


def _run_rate(folder: Path) -> tuple[float, float] | None:
    """(seconds per step per image, start-up seconds) from one run's events and record."""
    rec = json.loads((folder / rr.RECORD).read_text())
    progress, samples = [], []
    try:
        lines = (folder / rr.EVENTS).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("type") == "progress":
            progress.append((e["t"], e["step"]))
        elif e.get("type") == "sample":
            samples.append(e["t"])
    # training time only: intervals between two progress events with a preview in them are left out
    spent, steps = 0.0, 0
    for (ta, sa), (tb, sb) in zip(progress, progress[1:]):
        if sb > sa and not any(ta < t <= tb for t in samples):
            spent, steps = spent + (tb - ta), steps + (sb - sa)
    if steps < 2:
        return None
    per_step = spent / steps
    t0, s0 = progress[0]
    batch = _batch(rec)
    startup = max(0.0, t0 - (rec.get("started") or t0) - per_step * s0)
    return per_step / batch, startup


def _batch(rec: dict) -> int:
    from ..train import presets

    req = rec.get("request") or {}
    try:
        s = presets.load_preset(req.get("preset") or presets.DEFAULT_FOR_FAMILY["tiny"])
        s = apply_sets(s, list(req.get("sets") or ()))
        return max(1, s.batch_size * s.grad_accum)
    except Exception:  # noqa: BLE001 - an old or odd record: count it as batch 1
        return 1
