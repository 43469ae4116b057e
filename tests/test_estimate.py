"""The time estimate before Start: step rates from past finished runs' events files (previews
left out), the fallback figure, and what the estimate adds up."""

import json

from studio.config import TrainSettings
from studio.jobs import estimate as est
from studio.paths import Workspace


def _run(ws: Workspace, run_id: str, status: str, device: str, events: list[dict], batch: int = 2,
         created: float = 0.0, started: float = 100.0) -> None:
    folder = ws.runs / run_id
    folder.mkdir(parents=True)
    rec = {"id": run_id, "status": status, "device": device, "created": created, "started": started,
           "request": {"model": "tiny", "preset": "tiny-cpu", "sets": [f"batch_size={batch}"]}}
    (folder / "run.json").write_text(json.dumps(rec))
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


def _progress(t: float, step: int) -> dict:
    return {"type": "progress", "t": t, "step": step, "total": 100, "loss": 0.1, "lr": 1e-4,
            "it_per_s": 1.0, "eta_s": 1.0}


def test_rate_comes_from_finished_runs_and_leaves_previews_out(tmp_path):
    ws = Workspace(tmp_path)
    # 1 s per step with batch 2 (0.5 s per image); a 30 s preview between steps 10 and 11
    events = [_progress(110 + s, s) for s in range(1, 11)]
    events += [{"type": "sample", "t": 145.0, "step": 10, "prompts": [], "paths": []}]
    events += [_progress(150 + s - 11, s) for s in range(11, 21)]
    _run(ws, "a", "finished", "cpu", events)
    _run(ws, "b", "failed", "cpu", [_progress(110 + 9 * s, s) for s in range(1, 20)])  # not finished: ignored
    _run(ws, "c", "finished", "cuda:0", [_progress(110 + 0.01 * s, s) for s in range(1, 20)])  # other device
    rate = est.measured_rate(ws, "tiny", "cpu")
    assert rate is not None and rate.runs == 1
    assert abs(rate.per_image_s - 0.5) < 1e-6
    assert abs(rate.startup_s - 10.0) < 1e-6  # started at 100; step 1 (one 1-s step) ended at 111


def test_estimate_adds_startup_steps_and_previews():
    rate = est.Rate(per_image_s=0.5, startup_s=10.0, source="test")
    s = TrainSettings(steps=100, batch_size=2, sample_every=50, sample_steps=6)
    e = est.estimate(s, rate)
    preview = 0.5 * 6 * len(s.sample_prompts) * 2 / 3
    assert abs(e.total_s - (10 + 100 * 1.0 + 2 * preview)) < 1e-6
    assert abs(e.first_preview_s - (10 + 50 * 1.0 + preview)) < 1e-6
    assert est.estimate(TrainSettings(steps=10, sample_every=50), rate).first_preview_s is None


def test_without_past_runs_a_typical_figure_or_nothing(tmp_path):
    ws = Workspace(tmp_path)
    assert est.rate_for(ws, "tiny", "cpu", "tiny").source == "a typical figure"
    assert est.rate_for(ws, "/models/sdxl", "cpu", "sdxl") is None
    assert est.estimate(TrainSettings(), None) is None
