"""The style meter's cost and validity on the tiny model (issue 16).

    python benchmarks/style_meter.py cost [--set key=value ...]
    python benchmarks/style_meter.py validity [--styles neon,pastel,stripes,sepia,halftone] [--steps 200]
                                              [--every 25] [--overcook] [--memorise] [--set ...]
    python benchmarks/style_meter.py copy [--styles ...] [--steps 200] [--every 25] [--set ...]
    python benchmarks/style_meter.py leak [--steps 80]

cost: one training with the tiny-cpu preset's defaults; the meter's share of the wall time
(drawing the before/after previews and judging them, over the whole run).

validity: trainings on each style (the three sample styles and the two of ``style_sets.py``:
``sepia``, a photographic colour grade of ordinary product photos, and ``halftone``, a print
texture of dots); optionally an overcooked run (learning rate x10) and a 3-image set trained far too long.
For every judged checkpoint an *independent* measure is computed on the same drawn images, from
pixels only (no VAE): the palette distance and background colour distance of
``studio.models.tiny.quality.style_distance`` plus the gap in fine-detail energy (mean absolute
Laplacian), all against the training images. The meter's ranking of a run's checkpoints should
agree with the independent one (Spearman >= 0.8); the copy meter should fire on the memorising
run only.

copy: per style, a 3-image set trained far too long (3 x ``--steps`` steps at batch 3, a high
learning rate): the copy figure per checkpoint, its lowest value and where the copy warning fired
at the threshold in use (``--set copy_threshold=...`` to try another).

leak: three neon adapters trained alike (batch 8, lr 1e-3, rank 4) on 8 neon photos captioned with
the trigger ("typical"), the same beside 8 plain photos of the same products captioned without it
("prior preservation"), and the neon photos captioned without any trigger word ("no trigger"), at 5
steps (nothing learned yet) and ``--steps``; each judged like ``studio judge NAME --dataset`` on the
prior-preservation set (6 captions, each also without the trigger). The leak meter as shipped (how
far trigger-free images move *toward* the style) beside the size of any change to them, the
measure it replaced.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
import style_sets  # noqa: E402
from common import record  # noqa: E402
from PIL import Image, ImageFilter  # noqa: E402

from studio import events as ev  # noqa: E402
from studio.data.ingest import ingest  # noqa: E402
from studio.judge.scorecard import shown  # noqa: E402
from studio.judge.session import saved_afters  # noqa: E402
from studio.models.loading import load_model  # noqa: E402
from studio.models.tiny import quality  # noqa: E402
from studio.models.tiny.sample_data import write_style_set  # noqa: E402
from studio.overlay import apply_sets  # noqa: E402
from studio.paths import Workspace  # noqa: E402
from studio.train.loop import Trainer  # noqa: E402
from studio.train.presets import load_preset  # noqa: E402


def write_set(folder: Path, style: str, count: int) -> None:
    """A sample style (neon, pastel, stripes) or one of style_sets.py's own (sepia, halftone)."""
    if style in style_sets.EXTRA_STYLES:
        style_sets.write_style_set(folder, style, count)
    else:
        write_style_set(folder, style, count)


def train(root: Path, style: str, count: int, sets: list[str], name: str):
    ws = Workspace(root / "outputs")
    write_set(root / name, style, count)
    ingest(name, [root / name], ws=ws)
    sink = ev.ListSink()
    trainer = Trainer(name, name, load_model("tiny", device="cpu"), apply_sets(load_preset("tiny-cpu"), sets), sink,
                      ws=ws)
    t0 = time.perf_counter()
    result = trainer.run()
    return trainer, result, sink, time.perf_counter() - t0


# ---------------------------------------------------------------- independent measure
def _detail(images) -> float:
    return float(np.mean([np.abs(np.asarray(im.convert("L").filter(ImageFilter.FIND_EDGES), dtype=np.float32))
                          .mean() for im in images])) / 255


def independent(images, reference) -> float:
    """Pixel statistics only: palette + background distance, plus the fine-detail gap."""
    return quality.style_distance(images, reference) + abs(_detail(images) - _detail(reference))


def spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    if np.std(ra) == 0 or np.std(rb) == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


class TimedSink(ev.ListSink):
    """Events with the time they arrived (step times between rounds, round times)."""

    def __init__(self):
        super().__init__()
        self.times: list[float] = []

    def emit(self, e) -> None:
        super().emit(e)
        self.times.append(time.perf_counter())


def _step_seconds(sink: TimedSink) -> float:
    """Median time between consecutive progress events with nothing else in between."""
    gaps = [t1 - t0 for (e0, t0), (e1, t1) in zip(zip(sink.events, sink.times), zip(sink.events[1:], sink.times[1:]))
            if isinstance(e0, ev.Progress) and isinstance(e1, ev.Progress)]
    return float(np.median(gaps))


def _overrides(a) -> str:
    """The --set overrides as a title suffix: a run with them keeps its own RESULTS section."""
    return f", {' '.join(a.set)}" if a.set else ""


def cost(a) -> None:
    """Measured share of one run; with --extrapolate, the share at the tiny-cpu defaults (300 steps,
    rounds at 20, 50, 100, ... 300) from this run's median step time and mean round time."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ws = Workspace(root / "outputs")
        write_set(root / "neon", "neon", 16)
        ingest("neon", [root / "neon"], ws=ws)
        sink = TimedSink()
        trainer = Trainer("neon", "neon", load_model("tiny", device="cpu"),
                          apply_sets(load_preset("tiny-cpu"), a.set), sink, ws=ws)
        t0 = time.perf_counter()
        result = trainer.run()
        seconds = time.perf_counter() - t0
    rounds, spent = len(sink.of(ev.Judged)), trainer.rounds.seconds
    base_s, confirm_s = trainer.rounds.base_seconds, trainer.rounds.confirm_seconds
    step_s, round_s = _step_seconds(sink), (spent - base_s - confirm_s) / max(rounds, 1)
    defaults = load_preset("tiny-cpu")
    n_rounds = len({defaults.judge_first, *range(defaults.sample_every, defaults.steps + 1, defaults.sample_every)})
    meter = n_rounds * round_s + base_s + confirm_s
    est = meter / (defaults.steps * step_s + meter)
    table = ("| run | steps | rounds | wall time (s) | meter + previews (s) | share (measured) | median step (s) | "
             "mean round (s) + base once (s) + second look (s) | share at 300 steps, %d rounds (estimated) | goal |\n"
             "|---|---|---|---|---|---|---|---|---|---|\n" % n_rounds +
             f"| tiny-cpu{' ' + ' '.join(a.set) if a.set else ''}, neon 16 images | {result.steps} | {rounds} | "
             f"{seconds:.0f} | {spent:.1f} | {100 * spent / seconds:.1f} % | {step_s:.2f} | "
             f"{round_s:.1f} + {base_s:.1f} + {confirm_s:.1f} | {100 * est:.1f} % | <= 15 % |")
    record(f"Style meter: cost (tiny-cpu preset{_overrides(a)})", table)


def validity(a) -> None:
    runs = [(s, 16, [], s) for s in a.styles.split(",")]
    if a.overcook:
        runs.append(("neon", 16, ["lr_unet=1e-2", "lr_text=5e-3"], "neon-overcooked"))
    if a.memorise:
        runs.append(("neon", 3, memorise(a.steps), "neon-3-images"))
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for style, count, extra, name in runs:
            sets = [f"steps={a.steps}", f"sample_every={a.every}", "stop=steps", "checkpoint_every=0", *a.set, *extra]
            trainer, result, sink, seconds = train(Path(tmp), style, count, sets, name)
            rows = sink.of(ev.Judged)
            ref_dir = Path(tmp) / name
            reference = [Image.open(p).convert("RGB") for p in sorted(ref_dir.glob("*.png"))]
            n = len(trainer.rounds.judge.prompts.styled)
            indep = [independent(saved_afters(result.adapter.parent, r.step, n), reference) for r in rows]
            seen = [(r.style, -d) for r, d in zip(rows, indep) if np.isfinite(r.style)]  # NaN: the meter cannot tell
            rho = spearman(*zip(*seen)) if len(seen) > 2 else float("nan")
            fired = [r.step for r in rows if r.copying]
            lines.append(f"| {name} | {count} | {' '.join(extra) or '-'} | {len(rows)} | "
                         f"{' '.join(shown(r.style, '.0f') for r in rows)} | {' '.join(f'{d:.3f}' for d in indep)} | "
                         f"{shown(rho, '.2f')} | {min(r.copy for r in rows):.2f} | {fired or 'no'} | {seconds:.0f} |")
            print(lines[-1], flush=True)
    head = ("| run | images | overrides | checkpoints | style % per checkpoint | independent distance | "
            "Spearman (meter vs independent) | lowest copy | copy fired at | wall (s) |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n")
    record(f"Style meter: validity ({a.steps} steps, a round every {a.every}{_overrides(a)})", head + "\n".join(lines))


def memorise(steps: int) -> list[str]:
    """A 3-image set trained far too long: batch 3, a high learning rate, 3 x ``steps`` steps."""
    return ["batch_size=3", "lr_unet=3e-3", f"steps={3 * steps}", "stop=steps"]


def copy(a) -> None:
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for style in a.styles.split(","):
            name = f"{style}-3-images"
            sets = [f"sample_every={a.every}", "checkpoint_every=0", *a.set, *memorise(a.steps)]
            trainer, _, sink, seconds = train(Path(tmp), style, 3, sets, name)
            rows = sink.of(ev.Judged)
            fired = [r.step for r in rows if r.copying]
            lines.append(f"| {name} | {trainer.s.copy_threshold:g} | {len(rows)} | "
                         f"{' '.join(shown(r.copy, '.2f') for r in rows)} | {min(r.copy for r in rows):.2f} | "
                         f"{fired[0] if fired else 'no'} | {seconds:.0f} |")
            print(lines[-1], flush=True)
    head = ("| run | copy threshold | checkpoints | copy per checkpoint (1.0 = as close as a held-out photo) | "
            "lowest | warning first fired at step | wall (s) |\n|---|---|---|---|---|---|---|\n")
    record(f"Style meter: copy on 3-image sets trained far too long ({3 * a.steps} steps)", head + "\n".join(lines))


def _any_change(judge, base_free, after_free) -> float:
    """The replaced leak measure: the mean scaled distance between paired trigger-free images."""
    from studio.judge import meters

    ref, f = judge.ref, judge.features
    a, b = f.style(base_free), f.style(after_free)
    sq = [(((b[g] - a[g]) / ref.scale[g]) ** 2).sum(1) for g in ref.train]
    return 100.0 * float(np.sqrt(np.mean(sq, axis=0)).mean()) / meters.room(ref, f.style(judge.before.styled))


def leak(a) -> None:
    from studio.adapters.library import Library
    from studio.config import GenerateSettings, IngestSettings, TrainSettings
    from studio.data import manifest as mf
    from studio.generate import Engine
    from studio.generate.tags import LoraWeight
    from studio.judge.session import from_dataset
    from studio.models.tiny.sample_data import write_plain_photos

    sets = {"typical": ("neon", "trigger in every caption"),
            "prior preservation": ("mixed", "+ 8 plain photos captioned without it"),
            "no trigger": ("everywhere", "no trigger word in any caption")}
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ws = Workspace(root / "outputs")
        write_style_set(root / "neon", "neon", 8)
        write_style_set(root / "mixed", "neon", 8)
        write_plain_photos(root / "mixed", 8)
        write_style_set(root / "everywhere", "neon", 8, trigger=False)
        for folder, _ in sets.values():
            ingest(folder, [root / folder], IngestSettings(trigger="neon"), ws=ws)
        for steps in (5, a.steps):
            plain = ["batch_size=8", "optimizer=adamw", "lr_unet=1e-3", "lr_text=1e-3", "lora.rank=4",
                     "lora.alpha=4", f"steps={steps}", "sample_every=0", "validate_every=0", "checkpoint_every=0",
                     "stop=steps", "final=last"]
            for folder, _ in sets.values():
                Trainer(f"{folder}-{steps}", folder, load_model("tiny", device="cpu"),
                        apply_sets(TrainSettings(), plain), ev.ListSink(), ws=ws).run()
        engine = Engine(load_model("tiny", device="cpu"), library=Library(ws))
        gs = GenerateSettings(seed=5, steps=6)
        judge = from_dataset(engine.model.pipe.vae, mf.load("mixed", ws), mf.dataset_dir("mixed", ws), 64, 6, 6, 5, 0.5)

        def drawer(*names):
            return lambda p, s: engine.generate_batch(gs, p, s, loras=[LoraWeight(n) for n in names])
        judge.set_before(judge.draw(drawer()))
        for steps in (5, a.steps):
            for label, (folder, how) in sets.items():
                after = judge.draw(drawer(f"{folder}-{steps}"))
                row = judge.row(steps, after)
                lines.append(f"| {label} ({how}) | {steps} | {row.style:.0f} | {row.leak:.0f} | "
                             f"{_any_change(judge, judge.before.free, after.free):.0f} |")
                print(lines[-1], flush=True)
    head = ("| adapter (8 neon photos) | steps | style % | leak %: toward the style (shipped) | "
            "size of any change, same scale (replaced) |\n|---|---|---|---|---|\n")
    record(f"Style meter: leak on trigger-bound and unbound adapters ({a.steps} steps)", head + "\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("part", choices=["cost", "validity", "copy", "leak"])
    ap.add_argument("--styles", default="neon,pastel,stripes,sepia,halftone")
    ap.add_argument("--steps", type=int, default=None, help="default 200 (leak: 80)")
    ap.add_argument("--every", type=int, default=25)
    ap.add_argument("--overcook", action="store_true")
    ap.add_argument("--memorise", action="store_true")
    ap.add_argument("--set", action="append", default=[])
    a = ap.parse_args()
    a.steps = a.steps or (80 if a.part == "leak" else 200)
    {"cost": cost, "validity": validity, "copy": copy, "leak": leak}[a.part](a)


if __name__ == "__main__":
    main()
