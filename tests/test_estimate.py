"""The time estimate before Start: step rates from past finished runs' events files (previews
left out), the fallback figure, and what the estimate adds up."""

import json

from studio.config import TrainSettings
from studio.jobs import estimate as est
from studio.overlay import apply_sets
from studio.paths import Workspace
from studio.train.presets import load_preset


def _run(ws: Workspace, run_id: str, status: str, device: str, events: list[dict], batch: int = 2,
         created: float = 0.0, started: float = 100.0, dataset: str = "shop", sets: tuple = ()) -> None:
    folder = ws.runs / run_id
    folder.mkdir(parents=True)
    rec = {"id": run_id, "status": status, "device": device, "created": created, "started": started,
           "request": {"model": "tiny", "preset": "tiny-cpu", "dataset": dataset,
                       "sets": [f"batch_size={batch}", *sets]}}
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


def test_a_batch_run_before_is_the_rate_for_that_batch(tmp_path):
    """A step has a fixed part: 1.2 s at batch 4 and 1.6 s at batch 8 (0.3 and 0.2 s per image). A new
    batch-4 run takes the batch-4 run's rate; a batch none ran before takes the median per image."""
    ws = Workspace(tmp_path)
    _run(ws, "b4", "finished", "cpu", [_progress(110 + 1.2 * k, k) for k in range(1, 20)], batch=4, created=1)
    _run(ws, "b8", "finished", "cpu", [_progress(110 + 1.6 * k, k) for k in range(1, 20)], batch=8, created=2)
    assert abs(est.measured_rate(ws, "tiny", "cpu", batch=4).per_image_s - 0.3) < 1e-6
    assert abs(est.measured_rate(ws, "tiny", "cpu", batch=8).per_image_s - 0.2) < 1e-6
    assert abs(est.measured_rate(ws, "tiny", "cpu", batch=2).per_image_s - 0.25) < 1e-6
    assert abs(est.rate_for(ws, "tiny", "cpu", "tiny", 4).per_image_s - 0.3) < 1e-6


def test_estimate_adds_startup_steps_and_meter_rounds():
    rate = est.Rate(per_image_s=0.5, startup_s=10.0, source="test", draw_s=0.1)
    s = TrainSettings(steps=100, batch_size=2, sample_every=50, sample_steps=6, judge_first=20, judge_prompts=3,
                      judge_free=1, sample_prompts=(), stop="steps")
    assert est.rounds(s) == [20, 50, 100]
    e = est.estimate(s, rate)
    one_round, base = 0.1 * 6 * 4, 0.1 * 6 * 4  # 3 captions + 1 without the trigger; the base images once
    assert abs(e.total_s - (10 + 100 * 1.0 + 3 * one_round + base)) < 1e-6
    assert abs(e.first_preview_s - (10 + 20 * 1.0 + one_round + base)) < 1e-6
    assert not e.may_stop_early
    assert est.estimate(TrainSettings(steps=10, sample_every=50, judge_first=0), rate).first_preview_s is None
    assert est.estimate(TrainSettings(steps=100, sample_every=50, stop="learned"), rate).may_stop_early


def test_round_cost_is_measured_from_past_runs(tmp_path):
    ws = Workspace(tmp_path)
    # 1 s per step; rounds after steps 4 and 8: the first (with the base images) 20 s, the second 10 s
    s = apply_sets(load_preset("tiny-cpu"), ["batch_size=2"])  # what _run's record asks for
    each, once = est.drawn_per_round(s)
    events = [_progress(110 + k, k) for k in range(1, 5)]
    events += [{"type": "sample", "t": 130.0, "step": 4, "prompts": [], "paths": []}, _progress(135, 5)]
    events += [_progress(135 + k - 5, k) for k in range(6, 9)]
    events += [{"type": "sample", "t": 145.0, "step": 8, "prompts": [], "paths": []}, _progress(149, 9)]
    events += [_progress(149 + k - 9, k) for k in range(10, 13)]
    _run(ws, "a", "finished", "cpu", events)
    rate = est.measured_rate(ws, "tiny", "cpu")
    assert abs(rate.per_image_s - 1.0 / 2) < 1e-6
    # the second round: 11 s between steps 8 and 9, minus the one step -> 10 s
    assert abs(rate.draw_s - 10.0 / (each * s.sample_steps)) < 1e-6


def test_without_past_runs_a_typical_figure_or_nothing(tmp_path):
    ws = Workspace(tmp_path)
    assert est.rate_for(ws, "tiny", "cpu", "tiny").source == "a typical figure"
    assert est.rate_for(ws, "/models/sdxl", "cpu", "sdxl") is None
    assert est.estimate(TrainSettings(), None) is None


def test_the_page_says_what_comes_before_or_beside_the_run(tmp_path, monkeypatch):
    """A training already going comes first (with its time left); otherwise a CPU busy with other
    programs is named (load above the core count); an idle machine adds nothing."""
    from types import SimpleNamespace

    from studio.ui.train import time_text

    class Runner:
        live: list = []

        def runs(self):
            return [SimpleNamespace(live=True, **r) for r in self.live]

    runner = Runner()
    services = SimpleNamespace(ws=Workspace(tmp_path), model=SimpleNamespace(model="tiny"), device="cpu",
                               family="tiny", on_gpu=False, runner=runner)
    s = load_preset("tiny-cpu")
    monkeypatch.setattr(est.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(est.os, "getloadavg", lambda: (1.2, 1.0, 1.0))
    idle = time_text(services, s)
    assert "a typical figure" in idle and "busy" not in idle and "would wait" not in idle
    monkeypatch.setattr(est.os, "getloadavg", lambda: (6.6, 5.0, 4.0))
    assert "busy with other programs now (load 6.6 on 2 cores)" in time_text(services, s)
    runner.live = [dict(adapter="sepia-shop", status="running", eta_s=125.0, device="cpu")]
    said = time_text(services, s)
    assert "A run started now would first wait for the training of **sepia-shop** (running; its card shows the time left)." in said
    assert "busy" not in said  # that training is what keeps the CPU busy
    runner.live.append(dict(adapter="ink", status="queued", eta_s=None, device="cpu"))
    assert "(running; its card shows the time left) and 1 queued." in time_text(services, s)
    runner.live = [dict(adapter="ink", status="queued", eta_s=None, device="cpu")]
    assert "A run started now would first wait for 1 queued training." in time_text(services, s)
    runner.live = [dict(adapter="big", status="running", eta_s=60.0, device="cuda:1")]
    assert "would wait" not in time_text(services, s)  # another device's run does not delay this one
    services.on_gpu, runner.live = True, []
    assert "busy" not in time_text(services, s)  # on a GPU the CPU load is not the training's time


def _stopped_at(ws: Workspace, run_id: str, step: int, dataset: str, created: float, sets: tuple = ()) -> None:
    events = [_progress(110 + k, k) for k in range(1, step + 1)]
    events.append({"type": "finished", "t": 110.0 + step, "step": step, "adapter": "x", "chosen": "recommended",
                   "stopped_early": False, "seconds": float(step)})
    _run(ws, run_id, "finished", "cpu", events, created=created, dataset=dataset, sets=sets)


def test_stop_learned_is_estimated_to_where_runs_on_the_same_set_stopped(tmp_path):
    """tiny-cpu (stop=learned, rounds at 20, 50, 100, ... 300): a run on "shop" stopped at step 100,
    two on "ink" at 200 and 300. The estimate for "shop" runs to step 100, for "ink" to the median
    (250, a round), for a new set and for another round schedule to all steps."""
    ws = Workspace(tmp_path)
    # 3 captions a round (the preset's 6 leave the second look nothing new to draw): its cost counts too
    s = apply_sets(load_preset("tiny-cpu"), ["batch_size=2", "judge_prompts=3"])
    assert est.second_look_images(load_preset("tiny-cpu")) == 0
    assert est.usual_stop(ws, "tiny", "cpu", s, "shop") is None  # no run yet: only the longest
    _stopped_at(ws, "a", 100, "shop", 1)
    _stopped_at(ws, "b", 200, "ink", 2)
    _stopped_at(ws, "c", 300, "ink", 3)
    _stopped_at(ws, "d", 20, "shop", 4, sets=("sample_every=40",))  # another schedule: not counted
    assert est.usual_stop(ws, "tiny", "cpu", s, "shop") == est.Stop(100, 1)
    assert est.usual_stop(ws, "tiny", "cpu", s, "ink") == est.Stop(250, 2)
    assert est.usual_stop(ws, "tiny", "cpu", s, "new") is None  # another set's stop says little
    assert est.usual_stop(ws, "tiny", "cpu", apply_sets(s, ["stop=steps"]), "shop") is None
    rate = est.Rate(per_image_s=0.5, startup_s=10.0, source="test", draw_s=0.1)
    e = est.estimate(s, rate, est.usual_stop(ws, "tiny", "cpu", s, "shop"))
    each, once = est.drawn_per_round(s)
    second = 0.1 * s.sample_steps * est.second_look_images(s)
    assert est.second_look_images(s) == (6 - 3) * 3  # 3 captions past the rounds' 3, base + 2 close calls
    assert abs(e.total_s - (10 + 100 * 1.0 + 3 * 0.1 * s.sample_steps * each + 0.1 * s.sample_steps * once
                            + second)) < 1e-6  # rounds at 20, 50 and 100
    assert e.longest_s == est.estimate(s, rate).total_s > e.total_s and e.stop.step == 100 and e.may_stop_early
    assert est.estimate(s, rate, est.Stop(300, 1)).stop is None  # all the steps: nothing earlier to say


def test_the_page_says_where_runs_like_it_stopped(tmp_path):
    from types import SimpleNamespace

    from studio.ui.train import time_text

    ws = Workspace(tmp_path)
    services = SimpleNamespace(ws=ws, model=SimpleNamespace(model="tiny"), device="cpu", family="tiny",
                               on_gpu=True, runner=None)
    s = apply_sets(load_preset("tiny-cpu"), ["batch_size=2"])
    assert "up to about" in time_text(services, s, "shop")
    _stopped_at(ws, "a", 100, "shop", 1)
    said = time_text(services, s, "shop")
    assert "on this image set the last run stopped early, at step 100 (at most" in said, said
    assert "up to about" in time_text(services, s, "other")


def test_odd_lines_in_an_events_file_are_skipped_not_raised(tmp_path):
    """An events file cut short by a kill, or written by something else: lines that are not objects
    with a numeric time and step are skipped; the estimate still comes from the good ones."""
    ws = Workspace(tmp_path)
    good = [_progress(110 + k, k) for k in range(1, 11)]
    _stopped_at(ws, "a", 100, "shop", 1)
    _run(ws, "b", "finished", "cpu", good, created=2)
    with open(ws.runs / "b" / "events.jsonl", "a", encoding="utf-8") as f:
        f.write('[1, 2]\n"text"\n{"type": "finished", "t": 1, "step": "100"}\n{"type": "progress", "t": true, '
                '"step": 3}\n{"type": "progress"\n\xff\n')
    s = apply_sets(load_preset("tiny-cpu"), ["batch_size=2"])
    assert est.usual_stop(ws, "tiny", "cpu", s, "shop") == est.Stop(100, 1)  # b's "finished" has no numeric step
    assert abs(est.measured_rate(ws, "tiny", "cpu").per_image_s - 0.5) < 1e-6
