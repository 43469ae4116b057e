"""How far the Train tab's time estimate (studio/jobs/estimate.py) is from the real time.

On a scratch workspace with a sample style set, through the job runner (as the page starts runs):
run A (the first run: estimated from the typical figure), run B with other steps, batch and
meter settings (estimated from run A's events), and run C, the preset as shipped (stop=learned:
the estimate is the longest it may take), and compare each estimate with the run's real time from
Start to its finished record.

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


def run(runner: JobRunner, ws: Workspace, name: str, sets: list[str]) -> tuple[float, float, str]:
    """(estimated s, real s, rate source) for one run."""
    s = apply_sets(presets.load_preset(PRESET), sets)
    rate = est.rate_for(ws, "tiny", "cpu", "tiny", s.batch_size * s.grad_accum)
    guess = est.estimate(s, rate)
    t0 = time.time()
    snap = runner.start(TrainRequest(adapter=name, dataset="shop", preset=PRESET, sets=tuple(sets), device="cpu"))
    while True:
        snap = runner.snapshot(snap.id)
        if snap.status not in ("queued", "running"):
            break
        time.sleep(1)
    if snap.status != "finished":
        raise SystemExit(f"run {name} ended {snap.status}: {snap.error}")
    return guess.total_s, (snap.ended or time.time()) - t0, rate.source


def main() -> None:
    from studio.data.ingest import ingest
    from studio.models.tiny.sample_data import write_style_set

    a_steps, b_steps = (int(x) for x in (sys.argv[1:] + ["120", "200"])[:2])
    rows = []
    with tempfile.TemporaryDirectory(prefix="estimate-") as tmp:
        ws = Workspace(Path(tmp) / "outputs")
        write_style_set(Path(tmp) / "photos", "neon", 8, seed=1)
        ingest("shop", [Path(tmp) / "photos"], ws=ws)
        runner = JobRunner(ws)
        b = [f"steps={b_steps}", "batch_size=4", f"sample_every={b_steps // 3}", "judge_prompts=2", "stop=steps"]
        # d repeats b: its batch (4) now has a run of its own to take the rate from
        for name, sets in (("a", [f"steps={a_steps}", "stop=steps"]), ("b", b), ("c", []), ("d", b)):
            guess, real, source = run(runner, ws, name, sets)
            rows.append((name, " ".join(sets) or "(tiny-cpu as shipped: stop=learned)", source, guess, real))
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
