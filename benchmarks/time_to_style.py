"""Time to style: the studio (``tiny-cpu``, ``stop=learned``) against diffusers' public
``train_text_to_image_lora.py`` on the tiny model, same images, resolution and batch (issue 16).

    python benchmarks/time_to_style.py compare --example /tmp/train_text_to_image_lora.py \\
        [--styles neon,pastel,stripes,sepia,halftone] [--lrs 1e-4,1e-3] [--steps 300] [--every 25]
    python benchmarks/time_to_style.py sweep [--styles neon,sepia] [--variant "lr_unet=2e-3" ...]

``compare``, per style, back to back on the same machine: the example at each learning rate for
``--steps`` steps with a checkpoint every ``--every`` steps (``diffusers_example.run_example``: its
own process, timed off its own output), then ``studio train`` with the preset as shipped. Every
checkpoint of both (the example's ``checkpoint-N`` files through the studio's import, the studio's
judged rounds through "Use this checkpoint") is then judged by ONE common judge that neither trainer
used: ``--judge-prompts`` of the set's captions (held-out first) at fixed seeds, drawn with the same
sampler, against the base model's images. Two scores per checkpoint from the same drawn images:

* the style meter's **style %** (``studio.judge``), and
* an **independent distance** from pixels only (``style_meter.independent``: palette and
  background distance to the training images plus the gap in fine detail; no VAE).

Target = the best the example reaches in its run (the better learning rate; highest style %,
lowest distance). Example time = the wall time, from its process start, at which the example first
wrote a checkpoint reaching it. Studio time = the same for the studio's judged rounds, and the
studio's whole run (it stops by itself). Goal: studio time <= 0.5 x example time.

``sweep``: the studio alone with preset variants (``--set`` overrides, one variant per ``--variant``),
judged the same way: how many seconds until the plateau, and the plateau's height.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import record  # noqa: E402
from diffusers_example import ensure_dataset, import_checkpoints, run_example, run_studio  # noqa: E402

from studio.config import TrainSettings  # noqa: E402
from studio.paths import Workspace  # noqa: E402


# ----------------------------------------------------------------- one judge for every checkpoint
class CommonJudge:
    """The set's captions at fixed seeds; the base model's images drawn once."""

    def __init__(self, ws: Workspace, dataset: str, prompts: int, seed: int, steps: int):
        from PIL import Image

        from studio.config import GenerateSettings
        from studio.data import manifest as mf
        from studio.generate import Engine
        from studio.judge.session import from_dataset
        from studio.adapters.library import Library
        from studio.models.loading import load_model

        self.engine = Engine(load_model("tiny", device="cpu"), library=Library(ws))
        m = mf.load(dataset, ws)
        root = mf.dataset_dir(dataset, ws)
        res = self.engine.model.resolution
        self.judge = from_dataset(self.engine.model.pipe.vae, m, root, res, prompts, 1, seed,
                                   TrainSettings.copy_threshold)
        self.gs = GenerateSettings(seed=seed, steps=steps, width=res, height=res)
        self.reference = []
        for item in m.train:
            with Image.open(root / item.file) as im:
                self.reference.append(im.convert("RGB").resize((res, res)))
        self.judge.set_before(self.judge.draw(self._drawer([])))

    def _drawer(self, loras):
        return lambda prompts, seeds: self.engine.generate_batch(self.gs, prompts, seeds, loras=loras, batch=8)

    def score(self, adapter: str) -> tuple[float, float]:
        """(style %, independent distance) of one library adapter at weight 1."""
        from style_meter import independent

        from studio.generate.tags import LoraWeight

        after = self.judge.draw(self._drawer([LoraWeight(adapter)]))
        self.engine.unload(adapter)
        return self.judge.row(0, after).style, independent(after.styled, self.reference)

    def base_distance(self) -> float:
        from style_meter import independent

        return independent(self.judge.before.styled, self.reference)


def studio_rounds_as_adapters(name: str, ws: Workspace, rounds: list[dict]) -> list[dict]:
    """Each judged round of studio run ``name`` becomes library adapter ``name-sN`` (judged by the common judge)."""
    from studio.judge.use import use_checkpoint

    out = []
    for r in rounds:
        if r.get("checkpoint"):
            out.append({**r, "adapter": use_checkpoint(name, r["step"], f"{name}-s{r['step']}", ws)})
    return out


def first_reaching(points: list[dict], key: str, target: float, higher: bool) -> dict | None:
    """The earliest (by wall time) checkpoint whose ``key`` reaches ``target``."""
    ok = [p for p in points if (p[key] >= target - 1e-9 if higher else p[key] <= target + 1e-9)]
    return min(ok, key=lambda p: p["wall_s"]) if ok else None


def _fmt(p: dict | None) -> str:
    return f"step {p['step']} at {p['wall_s']:.0f} s" if p else "never"


def _ratio(studio: dict | None, example: dict | None, key: str = "wall_s") -> str:
    if studio is None or example is None or not studio.get(key) or not example.get(key):
        return "–"
    return f"{studio[key] / example[key]:.2f}x"


# ----------------------------------------------------------------- compare
def compare_style(a, style: str, ws: Workspace, log: Path) -> dict:
    dataset = ensure_dataset(style, ws)
    stamp = time.strftime("%H%M%S")
    examples = []
    studio = None
    lrs = [float(x) for x in a.lrs.split(",")]
    order = [("example", lrs[0]), ("studio", None), *[("example", lr) for lr in lrs[1:]]]  # interleaved
    for kind, lr in order:
        t0 = time.time()
        if kind == "studio":
            name = f"tts-{style}-{stamp}"
            studio = run_studio(dataset, name, ws, a.studio_steps, a.preset, a.set, nice=0)
            if studio["returncode"] != 0:
                raise SystemExit(f"studio train failed: {studio['stderr_tail']}")
            studio["name"] = name
            studio["rounds"] = studio_rounds_as_adapters(name, ws, studio["rounds"])
        else:
            run, tmp = run_example(Path(a.example), dataset, ws, lr, a.steps, a.every, nice=0)
            if run.returncode != 0:
                raise SystemExit(f"the example failed (exit {run.returncode}); see {tmp / 'example.log'}")
            import_checkpoints(run, tmp / "out", ws, replace=True)
            shutil.rmtree(tmp, ignore_errors=True)
            examples.append(asdict(run))
        print(f"[{style}] {kind} {lr or ''} done in {time.time() - t0:.0f} s (load {os.getloadavg()[0]:.1f})",
              flush=True)
    judge = CommonJudge(ws, dataset, a.judge_prompts, a.seed, a.judge_steps)
    for ex in examples:
        for ck in ex["checkpoints"]:
            ck["style"], ck["distance"] = judge.score(ck["adapter"])
    for r in studio["rounds"]:
        r["style"], r["distance"] = judge.score(r["adapter"])
    final = studio["name"]
    studio["final_style"], studio["final_distance"] = judge.score(final)
    result = {"style": style, "examples": examples, "studio": studio, "base_distance": judge.base_distance()}
    log.write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    return result


def summarise(res: dict) -> tuple[str, str]:
    exs, st = res["examples"], res["studio"]
    rows = []
    for key, higher, label in (("style", True, "style meter (style %)"), ("distance", False, "independent distance")):
        best_of = max if higher else min
        if not any(math.isfinite(c[key]) for e in exs for c in e["checkpoints"]):  # halftone: the meter cannot tell
            rows.append(f"| {res['style']} | {label} | cannot tell (the base model's images already match the "
                        "set's statistics) | – | – | – | – | – | – |")
            continue
        per_lr = [(ex, best_of((c for c in ex["checkpoints"] if math.isfinite(c[key])), key=lambda c: c[key]))
                  for ex in exs]
        ex, best = best_of(per_lr, key=lambda t: t[1][key])
        target = best[key]
        ex_first = first_reaching(ex["checkpoints"], key, target, higher)
        st_first = first_reaching(st["rounds"], key, target, higher)
        per_lr_text = ", ".join(f"{e['lr']:g}: {b[key]:.3g}" for e, b in per_lr)
        final_ok = st[f"final_{key}"] >= target - 1e-9 if higher else st[f"final_{key}"] <= target + 1e-9
        rows.append(f"| {res['style']} | {label} | {target:.3g} (lr {ex['lr']:g}, {_fmt(ex_first)}) | "
                    f"{per_lr_text} | "
                    f"{_fmt(st_first)} | {_ratio(st_first, ex_first)} | {_ratio(st_first, ex_first, 'cpu_s')} | "
                    f"{st[f'final_{key}']:.3g} ({'reaches' if final_ok else 'below'}) after {st['wall_s']:.0f} s | "
                    f"{_ratio(st, ex_first)} |")
    detail = (f"{res['style']}: studio rounds " + ", ".join(f"{r['step']}@{r['wall_s']:.0f}s={r['style']:.0f}%/"
                                                            f"{r['distance']:.3f}" for r in st["rounds"]) +
              "; " + "; ".join(f"example lr {e['lr']:g} " + ", ".join(
                  f"{c['step']}@{c['wall_s']:.0f}s={c['style']:.0f}%/{c['distance']:.3f}" for c in e["checkpoints"])
                  for e in exs) + f"; base distance {res['base_distance']:.3f}")
    return "\n".join(rows), detail


def compare(a) -> None:
    ws = Workspace(Path(a.outputs))
    logs = ws.root / "bench" / "time_to_style"
    logs.mkdir(parents=True, exist_ok=True)
    rows, details = [], []
    for style in a.styles.split(","):
        log = logs / f"{style}.json"
        res = json.loads(log.read_text()) if a.reuse and log.is_file() else compare_style(a, style, ws, log)
        r, d = summarise(res)
        rows.append(r)
        details.append(d)
        print(r, flush=True)
    head = ("| style | measure | target: the example's best (lr, first reached) | example's best per lr | "
            "studio first reaches it | studio ÷ example (wall) | studio ÷ example (CPU s) | "
            "studio's final adapter (stop=learned), whole run | whole studio run ÷ example time |\n"
            "|---|---|---|---|---|---|---|---|---|\n")
    note = (f"\n\nExample: diffusers `train_text_to_image_lora.py` (blob d33908b2, diffusers 58eb52c0), "
            f"{a.steps} steps, lr {a.lrs}, a checkpoint every {a.every} steps; studio: preset {a.preset}"
            f"{' ' + ' '.join(a.set) if a.set else ''} (stop=learned). Times are wall seconds from each "
            f"process's start (model loading included), run back to back; CPU s = the process's own CPU "
            f"seconds at that moment (less sensitive to other jobs on the machine than wall time); load average at the end "
            f"{os.getloadavg()[0]:.1f}. Common judge: {a.judge_prompts} captions + 1 without the trigger, "
            f"seed {a.seed}, {a.judge_steps} sampler steps. Per checkpoint (step@wall=style %/distance):\n\n"
            + "\n".join(f"- {d}" for d in details))
    record("Time to style: studio (stop=learned) vs diffusers example", head + "\n".join(rows) + note)


# ----------------------------------------------------------------- sweep
def sweep(a) -> None:
    ws = Workspace(Path(a.outputs))
    lines = []
    for style in a.styles.split(","):
        dataset = ensure_dataset(style, ws)
        judge = None
        for variant in a.variant or [""]:
            sets = [*a.set, *variant.split()]
            name = f"sweep-{style}-{time.strftime('%H%M%S')}"
            st = run_studio(dataset, name, ws, a.studio_steps, a.preset, sets, nice=0)
            if st["returncode"] != 0:
                lines.append(f"| {style} | {variant or '(preset)'} | failed: {st['stderr_tail'][-200:]} |")
                continue
            rounds = studio_rounds_as_adapters(name, ws, st["rounds"])
            judge = judge or CommonJudge(ws, dataset, a.judge_prompts, a.seed, a.judge_steps)
            for r in rounds:
                r["style"], r["distance"] = judge.score(r["adapter"])
            best = max(r["style"] for r in rounds)
            near = min((r for r in rounds if r["style"] >= best - 5), key=lambda r: r["wall_s"])
            lines.append(f"| {style} | {variant or '(preset)'} | {st['wall_s']:.0f} | {st['steps']} | "
                         f"{best:.0f} | {near['step']} at {near['wall_s']:.0f} s | "
                         f"{min(r['distance'] for r in rounds):.3f} | "
                         + " ".join(f"{r['step']}:{r['style']:.0f}" for r in rounds) + " |")
            print(lines[-1], flush=True)
    head = ("| style | overrides on the preset | whole run (s, stops by itself) | steps run | best style % | "
            "first within 5 points of it | lowest independent distance | style % per round |\n"
            "|---|---|---|---|---|---|---|---|\n")
    record(f"Preset sweep: time to the style plateau ({a.preset})", head + "\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("part", choices=["compare", "sweep"])
    ap.add_argument("--example", default="/tmp/train_text_to_image_lora.py")
    ap.add_argument("--styles", default="neon,pastel,stripes,sepia,halftone")
    ap.add_argument("--lrs", default="1e-4,1e-3")
    ap.add_argument("--steps", type=int, default=300, help="the example's steps")
    ap.add_argument("--every", type=int, default=25, help="the example's checkpoint interval")
    ap.add_argument("--studio-steps", type=int, default=300, help="the studio's step cap (it stops by itself)")
    ap.add_argument("--preset", default="tiny-cpu")
    ap.add_argument("--set", action="append", default=[], help="override on the studio preset")
    ap.add_argument("--variant", action="append", help="sweep: space-separated overrides of one variant")
    ap.add_argument("--judge-prompts", type=int, default=6)
    ap.add_argument("--judge-steps", type=int, default=12)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--outputs", default=str(Path(tempfile.gettempdir()) / "time-to-style"))
    ap.add_argument("--reuse", action="store_true", help="compare: summarise the saved per-style results again")
    a = ap.parse_args()
    compare(a) if a.part == "compare" else sweep(a)


if __name__ == "__main__":
    main()
