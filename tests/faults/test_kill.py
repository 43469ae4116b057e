"""Kill -9 of a training process (issue 11, item 1).

A seeded, printed random plan of kill points across the life of
``studio train --images DIR --name style``: ingest writes, latent caching, a training step,
checkpoint writes, previews, the best-adapter write, checkpoint pruning, the final adapter
and its record, and random times. The runs form a chain: each run resumes the one killed
before it (``--resume`` once a checkpoint exists, else ingest + train again) and is itself
killed at the next point. After every kill everything on disk under a final name loads;
the last run finishes with exactly the adapter of one uninterrupted run (bit-equal tensors).
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from studio.adapters.library import Library
from studio.data import manifest as mf
from studio.models.tiny.sample_data import write_style_set
from studio.paths import Workspace
from studio.train import checkpoint as ckpt

ROOT = Path(__file__).resolve().parents[2]
KILLER = Path(__file__).with_name("killer.py")
SEED = int(os.environ.get("FAULTS_SEED", "11"))
STEPS, CKPT, SAMPLE, VAL, IMAGES = 8, 2, 4, 2, 6
SETS = [f"steps={STEPS}", "batch_size=2", f"checkpoint_every={CKPT}", f"sample_every={SAMPLE}",
        f"validate_every={VAL}", "sample_steps=1", "keep_checkpoints=2", "lora.rank=2", "lora.alpha=2",
        "lora.ff_rank=0", "lora.conv_rank=0", "warmup_steps=2"]
MID_LIFE = ["ingest", "cache", "step", "checkpoint", "preview", "best", "prune", "step", "checkpoint", "time", "time"]
AT_THE_END = ["adapter", "adapter_json"]


def _cmd(ws: Workspace, src: Path, resume: bool, kill: tuple[str, float] | None) -> list[str]:
    args = ["train", "--images", str(src), "--name", "style", "--device", "cpu"]
    args += [x for kv in SETS for x in ("--set", kv)] + (["--resume"] if resume else [])
    if kill:
        return [sys.executable, str(KILLER), kill[0], str(kill[1]), "--", *args]
    return [sys.executable, "-m", "studio", *args]


def _run(ws: Workspace, cmd: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "STUDIO_OUTPUTS": str(ws.root), "PYTHONPATH": str(ROOT)}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run: its adapter, its wall time and the steps where 'best' was written."""
    root = tmp_path_factory.mktemp("kill")
    src = root / "photos"
    write_style_set(src, "neon", IMAGES)
    ws = Workspace(root / "ref")
    t0 = time.perf_counter()
    r = _run(ws, _cmd(ws, src, False, None))
    assert r.returncode == 0, r.stderr[-3000:]
    best = [int(m) for m in re.findall(r"step (\d+): validation loss [\d.]+ \(best\)", r.stdout + r.stderr)]
    return {"root": root, "src": src, "adapter": load_file(str(ws.adapters / "style" / "style.safetensors")),
            "seconds": time.perf_counter() - t0, "best": best, "manifest": mf.load("style", ws)}


def _newest_step(ws: Workspace) -> int:
    found = ckpt.list_checkpoints(ws.adapters / "style" / "checkpoints")
    return int(found[-1].name.split("-")[1]) if found else 0


def _choose_n(phase: str, ws: Workspace, ref: dict, rng: random.Random) -> float | None:
    """How many occurrences of ``phase`` the next run will have, and a random one of them;
    None when the run will have none (e.g. no steps left)."""
    start = _newest_step(ws)
    span = range(start + 1, STEPS + 1)
    has_manifest = (ws.datasets / "style" / "manifest.json").is_file()
    on_disk = len(ckpt.list_checkpoints(ws.adapters / "style" / "checkpoints"))
    saves = len([s for s in span if s % CKPT == 0])
    counts = {"ingest": 1 if has_manifest else IMAGES + 1, "cache": IMAGES - 1, "step": len(span),
              "checkpoint": saves, "preview": 2 * len([s for s in span if s % SAMPLE == 0]),
              "best": len([s for s in ref["best"] if s in span]), "prune": max(0, on_disk + saves - 2),
              "adapter": 1, "adapter_json": 1}
    if phase == "time":
        return round(rng.uniform(2.0, 0.6 * ref["seconds"]), 1)
    return rng.randint(1, counts[phase]) if counts[phase] else None


def _check_everything_loads(ws: Workspace) -> dict:
    """Every file under a final (non-hidden) name loads; returns counts of what was checked."""
    seen = {"checked": 0, "bytes": 0, "stray_temp": 0}
    for p in sorted(ws.root.rglob("*")):
        if any(part.startswith(".") for part in p.relative_to(ws.root).parts):
            seen["stray_temp"] += p.is_file()
            continue
        if not p.is_file():
            continue
        if p.suffix == ".safetensors":
            load_file(str(p))
        elif p.suffix == ".json":
            json.loads(p.read_text(encoding="utf-8"))
        elif p.suffix == ".png":
            with Image.open(p) as im:
                im.load()
        elif p.suffix == ".pt":
            torch.load(p, map_location="cpu", weights_only=True)
        seen["checked"] += 1
        seen["bytes"] += p.stat().st_size
    if (ws.datasets / "style" / "manifest.json").is_file():
        m = mf.load("style", ws)
        for item in m.items:
            assert (mf.dataset_dir("style", ws) / item.file).is_file(), f"manifest names a missing {item.file}"
    for c in ckpt.list_checkpoints(ws.adapters / "style" / "checkpoints"):
        ckpt.load(c)
    for rec in Library(ws).list():
        load_file(str(rec.file))
    return seen


def _finish(ws: Workspace, reference: dict) -> tuple[bool, list[str]]:
    """Run a chain to its end without a kill: (its adapter is bit-equal to the uninterrupted run's,
    the images lost from its dataset)."""
    r = _run(ws, _cmd(ws, reference["src"], bool(_newest_step(ws)), None))
    assert r.returncode == 0, r.stderr[-3000:]
    got, want = load_file(str(ws.adapters / "style" / "style.safetensors")), reference["adapter"]
    equal = got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    lost = [it.file for it in reference["manifest"].items if it.file not in {j.file for j in mf.load("style", ws).items}]
    return equal, lost


def test_kill_nine_at_random_points_then_resume_is_bit_equal(reference, tally):
    """A chain of runs, each resuming the one killed before it. When the chain has no such point
    left for the next kill (an early kill late in the run, or a timed kill that came after the run
    had finished), the chain is finished, checked, and a new chain starts: every planned kill
    fires except timed ones that a fast run outlived, on a quiet machine or a loaded one."""
    rng = random.Random(SEED)
    plan = rng.sample(MID_LIFE, len(MID_LIFE)) + AT_THE_END
    chains = [Workspace(reference["root"] / "killed-0")]
    print(f"\nkill plan (FAULTS_SEED={SEED}): {plan}")
    fired, results = 0, []
    for i, phase in enumerate(plan):
        ws = chains[-1]
        n = _choose_n(phase, ws, reference, rng)
        if n is None and _newest_step(ws):  # this chain is used up: finish it, start another
            results.append(_finish(ws, reference))
            print(f"     chain {len(chains) - 1} finished: bit-equal {results[-1][0]}, lost {results[-1][1]}")
            chains.append(Workspace(reference["root"] / f"killed-{len(chains)}"))
            ws = chains[-1]
            n = _choose_n(phase, ws, reference, rng)
        if n is None:
            print(f"  {i:2d} {phase:12s} skipped: a fresh run has no such point")
            continue
        resume = bool(_newest_step(ws))
        r = _run(ws, _cmd(ws, reference["src"], resume, (phase, n)))
        killed = r.returncode == -9
        assert killed or r.returncode == 0, f"{phase} {n}: rc {r.returncode}\n{r.stderr[-3000:]}"
        assert "Traceback" not in r.stderr, r.stderr[-3000:]
        try:
            seen = _check_everything_loads(ws)
            survived = True
        except Exception as e:  # recorded, then failed below
            seen, survived = {"error": repr(e)}, False
        fired += killed
        print(f"  {i:2d} {phase:12s} n={n:<5} resume={resume!s:5} {'killed' if killed else 'finished'} "
              f"-> newest checkpoint {_newest_step(ws)}, {seen}")
        tally.record("kill -9", phase, f"{phase}@{n}", survived, fired=killed)
        assert survived, f"after a kill at {phase} {n}: {seen}"
    results.append(_finish(chains[-1], reference))
    equal = all(e for e, _ in results)
    lost = [f for _, ls in results for f in ls]
    tally.record("kill -9", "resume bit-equal", f"seed {SEED}", equal and not lost, fired=False)
    print(f"fired {fired} of {len(plan)} planned kills in {len(chains)} chain(s); "
          f"every resumed adapter bit-equal: {equal}")
    timed = plan.count("time")  # a timed kill may come after a short resumed run has finished
    assert fired >= len(plan) - timed, f"only {fired} of {len(plan)} kills fired ({timed} timed)"
    assert not lost, f"images lost from the dataset: {lost}"
    assert equal, "a resumed adapter differs from the uninterrupted run"
