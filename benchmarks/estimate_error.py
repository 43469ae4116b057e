"""How far the Train tab's time estimate (studio/jobs/estimate.py) is from the real time.

On a scratch workspace with a sample style set, through the job runner (as the page starts runs):
run A (the first run: estimated from the typical figure), run B with other steps, batch and
meter settings (estimated from run A's events), run C, the preset as shipped (stop=learned; no
stop=learned run before it: the estimate is the longest it may take), D (B again: its batch now has
a rate of its own), E (C again: estimated to where C stopped) and F (the preset on another image
set, stripes: no run on it yet, the longest), and compare each estimate with the
run's real time from Start to its finished record.

    python benchmarks/estimate_error.py [STEPS_A] [STEPS_B]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import record  # noqa: E402

from studio.jobs import JobRunner, TrainRequest  # noqa: E402
from studio.jobs import estimate as est  # noqa: E402
from studio.overlay import apply_sets  # noqa: E402
from studio.paths import Workspace  # noqa: E402
from studio.train import presets  # noqa: E402

PRESET = "tiny-cpu"


def run(runner: JobRunner, ws: Workspace, name: str, sets: list[str], dataset: str) -> tuple[float, float, str]:
    """(estimated s, real s, where the estimate came from) for one run, estimated as the page does."""
    s = apply_sets(presets.load_preset(PRESET), sets)
    rate = est.rate_for(ws, "tiny", "cpu", "tiny", s.batch_size * s.grad_accum)
    stop = est.usual_stop(ws, "tiny", "cpu", s, dataset)
    guess = est.estimate(s, rate, stop)
    source = rate.source + (f"; stops at step {stop.step} (runs on this set)"
                            if stop else "; stop=learned, no such run yet: the longest" if guess.may_stop_early else "")
    t0 = time.time()
    snap = runner.start(TrainRequest(adapter=name, dataset=dataset, preset=PRESET, sets=tuple(sets), device="cpu"))
    while True:
        snap = runner.snapshot(snap.id)
        if snap.status not in ("queued", "running"):
            break
        time.sleep(1)
    if snap.status != "finished":
        raise SystemExit(f"run {name} ended {snap.status}: {snap.error}")
    return guess.total_s, (snap.ended or time.time()) - t0, f"{source}; ran {snap.step} steps"


def main() -> None:
    from studio.data.ingest import ingest
    from studio.models.tiny.sample_data import write_style_set

    a_steps, b_steps = (int(x) for x in (sys.argv[1:] + ["120", "200"])[:2])
    rows = []
    with tempfile.TemporaryDirectory(prefix="estimate-") as tmp:
        ws = Workspace(Path(tmp) / "outputs")
        write_style_set(Path(tmp) / "photos", "neon", 8, seed=1)
        ingest("shop", [Path(tmp) / "photos"], ws=ws)
        write_style_set(Path(tmp) / "lines", "stripes", 8, seed=2)
        ingest("lines", [Path(tmp) / "lines"], ws=ws)
        runner = JobRunner(ws)
        b = [f"steps={b_steps}", "batch_size=4", f"sample_every={b_steps // 3}", "judge_prompts=2", "stop=steps"]
        # d repeats b: its batch (4) now has a run of its own to take the rate from; e repeats c
        plan = (("a", [f"steps={a_steps}", "stop=steps"], "shop"), ("b", b, "shop"), ("c", [], "shop"),
                ("d", b, "shop"), ("e", [], "shop"), ("f", [], "lines"))
        for name, sets, dataset in plan:
            guess, real, source = run(runner, ws, name, sets, dataset)
            rows.append((name, f"{dataset}: " + (" ".join(sets) or "(tiny-cpu as shipped: stop=learned)"), source,
                         guess, real))
            print(rows[-1], flush=True)
        rate = est.measured_rate(ws, "tiny", "cpu")
    table = "| run | settings | estimate from | estimated s | real s | error |\n|---|---|---|---|---|---|\n"
    table += "\n".join(f"| {n} | `{s}` | {src} | {g:.0f} | {r:.0f} | {100 * (g - r) / r:+.0f}% |"
                       for n, s, src, g, r in rows)
    import os

    table += (f"\n\nRate measured by these runs: {rate.per_image_s:.4f} s per step per image, start-up "
              f"{rate.startup_s:.1f} s, {rate.draw_s:.4f} s per drawn image per sampler step in a meter round "
              f"(the typical figure used before any run: {est.FALLBACK[('tiny', 'cpu')]}). Load average at the "
              f"end (shared machine): {os.getloadavg()[0]:.1f}.")
    record("Train-tab time estimate against the real time (tiny, CPU)", table)


if __name__ == "__main__":
    main()
