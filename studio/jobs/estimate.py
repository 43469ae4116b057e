"""How long a training will take, said before Start: from the step rates of past finished runs
on the same device and base model (their events files), else a short figure measured once.

Per-step time grows with the batch, so rates are kept per image (seconds per step / batch size).
The estimate counts the start-up (loading the model, caching the images) and the style-meter rounds,
which pause training (each draws the judged prompts, the base model's images once, any extra preview
prompts) and final=recommended's second look; the page shows it as "about N min" and says when the
first preview comes. With ``stop=learned`` a run ends once the style is learned: the figure is then
for the step at which past runs on the same image set with the same schedule stopped (a style is
learned sooner or later by its images, not by the settings: runs on other sets say little),
and the longest it can take beside it; with no such run, only the longest. The figures
assume the machine is the training's own: the page adds when a training already running comes
first, or when other programs keep the CPU busy (:func:`machine_busy`).
"""

from __future__ import annotations

import json
import logging
import os
import statistics
from dataclasses import dataclass
from pathlib import Path

from ..config import TrainSettings
from ..overlay import apply_sets
from ..paths import Workspace
from . import records as rr

log = logging.getLogger(__name__)

# Measured on this project's 2-core CPU with the tiny model, idle (benchmarks/RESULTS.md, "Train-tab
# time estimate", 2026-12-04: the rate its runs left behind): used until this machine has a finished
# run of its own. (The figure before, 0.045 / 8.0 / 0.05, was from a machine half as fast: +132 %.)
FALLBACK = {("tiny", "cpu"): (0.022, 5.3, 0.016)}  # (s per step per image, start-up s, s per drawn image step)
RECENT = 5  # the newest finished runs that count
FALLBACK_DRAW_S = FALLBACK[("tiny", "cpu")][2]


@dataclass(frozen=True)
class Rate:
    per_image_s: float  # seconds per training step per image in the batch
    startup_s: float  # from the process start to the first step
    source: str  # "past runs on this machine" | "a typical figure"
    runs: int = 0
    draw_s: float = FALLBACK_DRAW_S  # a round's seconds per drawn image per sampler step (drawing + judging)


@dataclass(frozen=True)
class Stop:
    """Where past stop=learned runs on the same image set with the same round schedule stopped."""
    step: int  # their median stop, at a round (a run stops only at one)
    runs: int


@dataclass(frozen=True)
class Estimate:
    total_s: float  # expected: to ``stop.step`` when past runs say where it stops, else all steps
    first_preview_s: float | None  # None when previews are off
    rate: Rate
    may_stop_early: bool = False  # stop=learned: the run ends once the style is learned
    longest_s: float = 0.0  # all ``steps``
    stop: Stop | None = None  # stop=learned: where runs like it stopped (None: no such run yet)


def measured_rate(ws: Workspace, model: str, device: str, batch: int | None = None) -> Rate | None:
    """Median rate of the newest finished runs of ``model`` on ``device`` (None if there are none).
    With ``batch`` (images per step), the step rate comes from past runs of that batch when there are
    any: a step has a fixed part, so a per-image rate measured at batch 8 makes batch 4 look cheaper
    than it is (benchmarks/RESULTS.md, "Train-tab time estimate": -24 %)."""
    got = [r for r in (_run_rate(f, rec) for f, rec in _finished(ws, model, device)[:RECENT]) if r]
    if not got:
        return None
    same = [r for r in got if r[3] == batch]
    draws = [r[2] for r in got if r[2] is not None]
    return Rate(statistics.median(r[0] for r in same or got), statistics.median(r[1] for r in got),
                "past runs on this machine", len(got), statistics.median(draws) if draws else FALLBACK_DRAW_S)


def rate_for(ws: Workspace, model: str, device: str, family: str, batch: int | None = None) -> Rate | None:
    got = measured_rate(ws, model, device, batch)
    if got is not None:
        return got
    slot = "cpu" if not device.startswith("cuda") else "cuda"
    fb = FALLBACK.get((family, slot))
    return Rate(fb[0], fb[1], "a typical figure", 0, fb[2]) if fb else None


def rounds(s: TrainSettings) -> list[int]:
    """The steps at which a run draws a style-meter round (as ``train.judging.is_round``)."""
    every = range(s.sample_every, s.steps + 1, s.sample_every) if s.sample_every else []
    first = [s.judge_first] if s.judge_first and s.judge_first <= s.steps else []
    return sorted({*first, *every})


def drawn_per_round(s: TrainSettings) -> tuple[int, int]:
    """(images drawn each round, images drawn once: the base model's "before" column)."""
    judged = s.judge_prompts + s.judge_free
    return judged + len(s.sample_prompts), judged


def second_look_images(s: TrainSettings) -> int:
    """Images final=recommended's second look draws when there are close calls: the captions past
    the rounds' own, for the base model and each of the (at most 2) close calls."""
    from ..judge.scorecard import CLOSE_CALLS

    if s.final != "recommended" or not s.judge_confirm or not (s.sample_every or s.judge_first):
        return 0
    return max(0, s.judge_confirm - s.judge_prompts) * (1 + CLOSE_CALLS)


def estimate(s: TrainSettings, rate: Rate | None, stop: Stop | None = None) -> Estimate | None:
    """Expected wall time of a run with settings ``s`` (style-meter rounds and the second look
    included); with ``stop`` (stop=learned: where runs like it stopped) up to that step."""
    if rate is None:
        return None
    step = rate.per_image_s * s.batch_size * s.grad_accum
    at = rounds(s)
    each, once = drawn_per_round(s)
    one_round = rate.draw_s * s.sample_steps * each
    base = rate.draw_s * s.sample_steps * once if at else 0.0
    second = rate.draw_s * s.sample_steps * second_look_images(s)

    def upto(steps: int) -> float:
        n = len([a for a in at if a <= steps]) + (steps not in at and bool(at))  # the last weights judged too
        return rate.startup_s + step * steps + one_round * n + base + second

    learned = s.stop == "learned" and bool(at)
    stop = stop if learned and stop and stop.step < s.steps else None
    first = rate.startup_s + step * at[0] + one_round + base if at else None
    return Estimate(upto(stop.step if stop else s.steps), first, rate, learned, upto(s.steps), stop)


def usual_stop(ws: Workspace, model: str, device: str, s: TrainSettings, dataset: str | None) -> Stop | None:
    """Where the newest finished stop=learned runs of ``model`` on ``device`` on image set ``dataset``
    with the same round schedule stopped (median, at a round). Runs on other sets are not used: on the
    same preset neon stops at step 100 and stripes runs all 300 (benchmarks/RESULTS.md, "Train-tab time
    estimate": -61 % when a stripes run was estimated from neon's)."""
    if s.stop != "learned" or not dataset:
        return None
    at = rounds(s)
    schedule = (at, s.plateau_rounds, s.plateau_delta)
    got = []
    for folder, rec in _finished(ws, model, device):
        past = _settings(rec)
        if (rec.get("request") or {}).get("dataset") != dataset or past is None or past.stop != "learned" \
                or (rounds(past), past.plateau_rounds, past.plateau_delta) != schedule:
            continue
        step = _finished_step(folder)
        if step is not None:
            got.append(step)
    got = got[:RECENT]
    if not got:
        return None
    middle = statistics.median(got)
    return Stop(min([a for a in at if a >= middle] or [s.steps]), len(got))


def machine_busy() -> tuple[float, int] | None:
    """(1-minute load average, CPU cores) when more work wants to run than there are cores: the
    figures above are for a machine the training has to itself (benchmarks/RESULTS.md measured a
    37 s estimate taking ~6 min beside a test run on 2 cores)."""
    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):  # not every OS tells
        return None
    cores = os.cpu_count() or 1
    return (load, cores) if load > cores else None


def _finished(ws: Workspace, model: str, device: str) -> list[tuple[Path, dict]]:
    """(run folder, its record) of finished runs of ``model`` on ``device``, newest first."""
    out = []
    for folder in ws.runs.iterdir() if ws.runs.is_dir() else []:
        try:
            rec = json.loads((folder / rr.RECORD).read_text())
        except (OSError, ValueError):
            continue
        req = rec.get("request") or {}
        if rec.get("status") == "finished" and rec.get("device") == device and req.get("model") == model:
            out.append((rec.get("created") or 0, folder, rec))
    return [(f, rec) for _, f, rec in sorted(out, key=lambda x: x[0], reverse=True)]


def _events(folder: Path) -> list[dict] | None:
    """A run's events as JSON objects with a numeric ``t`` and ``step`` (anything else in the file is
    skipped: a line cut short by a kill, or a file nobody here wrote); None when it cannot be read."""
    try:
        lines = (folder / rr.EVENTS).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    out = []
    for line in lines:
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if isinstance(e, dict) and all(isinstance(e.get(k), (int, float)) and not isinstance(e.get(k), bool)
                                       for k in ("t", "step")):
            out.append(e)
    return out


def _finished_step(folder: Path) -> int | None:
    """The step of a run's Finished event (None when its events file has none)."""
    done = [e for e in _events(folder) or [] if e.get("type") == "finished"]
    return int(done[-1]["step"]) if done else None


def _run_rate(folder: Path, rec: dict) -> tuple[float, float, float | None, int] | None:
    """(seconds per step per image, start-up seconds, round seconds per drawn image step, images per
    step) from one run's events and record; the third is None when the run drew no round."""
    progress, samples = [], []
    events = _events(folder)
    if events is None:
        return None
    for e in events:
        if e.get("type") == "progress":
            progress.append((e["t"], e["step"]))
        elif e.get("type") == "sample":
            samples.append(e["t"])
    # training time only: intervals between two progress events with a preview in them are left out
    spent, steps, with_round = 0.0, 0, []
    for (ta, sa), (tb, sb) in zip(progress, progress[1:]):
        if sb > sa and not any(ta < t <= tb for t in samples):
            spent, steps = spent + (tb - ta), steps + (sb - sa)
        elif sb > sa:
            with_round.append((tb - ta, sb - sa))
    if steps < 2:
        return None
    per_step = spent / steps
    t0, s0 = progress[0]
    settings = _settings(rec)
    batch = max(1, settings.batch_size * settings.grad_accum) if settings else 1
    startup = max(0.0, t0 - (rec.get("started") or t0) - per_step * s0)
    return per_step / batch, startup, _draw_rate(with_round, per_step, settings), batch


def _draw_rate(with_round: list[tuple[float, int]], per_step: float, s: TrainSettings | None) -> float | None:
    """A round's seconds per drawn image per sampler step: the rounds after the first (the first
    also draws the base model's images), else the first with those counted."""
    if not with_round or s is None or not s.sample_steps:
        return None
    each, once = drawn_per_round(s)
    spent = [max(0.0, dt - per_step * n) for dt, n in with_round]
    if len(spent) > 1:
        return statistics.median(spent[1:]) / (each * s.sample_steps)
    return spent[0] / ((each + once) * s.sample_steps)


def _settings(rec: dict) -> TrainSettings | None:
    from ..train import presets

    req = rec.get("request") or {}
    try:
        s = presets.load_preset(req.get("preset") or presets.DEFAULT_FOR_FAMILY["tiny"])
        return apply_sets(s, list(req.get("sets") or ()))
    except Exception:  # noqa: BLE001 - an old or odd record: its steps count as batch 1, rounds unknown
        return None
