"""Generation engine: adapter switch vs rebuilding the pipeline, first load, fused/unfused
blend draw time vs the base, memory added per loaded adapter.

    python benchmarks/engine.py --family tiny --steps 25 --repeat 3
    python benchmarks/engine.py --family sd1 --steps 3 --repeat 1     # full-size SD 1.5, random weights, 512 px

Adapters are random kohya files (rank 8, UNet + text-encoder attention) written into a temporary
library; speed and memory do not depend on the weight values.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from studio import quiet  # noqa: E402

quiet.apply()
import psutil  # noqa: E402
import torch  # noqa: E402
from common import record  # noqa: E402

from studio.adapters.library import Library  # noqa: E402
from studio.adapters.random_lora import random_kohya, write_adapter  # noqa: E402
from studio.config import EngineSettings, GenerateSettings  # noqa: E402
from studio.generate import Engine, LoraWeight  # noqa: E402
from studio.models.loading import load_model  # noqa: E402
from studio.models.random_init import random_model  # noqa: E402
from studio.paths import Workspace  # noqa: E402

NAMES = ("a", "b", "c")


def build(family: str):
    return load_model("tiny", device="cpu") if family == "tiny" else random_model(family)


def timed(fn, repeat: int = 1) -> float:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def switch_to(engine: Engine, loras: list[LoraWeight]) -> None:
    with engine.lock:
        engine.slots.ensure([lw.name for lw in loras])
        engine.slots.apply(loras)


def measure(family: str, steps: int, repeat: int, rank: int) -> dict:
    model = build(family)
    ws = Workspace(Path(tempfile.mkdtemp(prefix="bench-engine-")))
    for i, name in enumerate(NAMES):
        write_adapter(ws, name, random_kohya(model.pipe, rank=rank, alpha=rank, seed=i), family, model.base_hash)
    lib = Library(ws)
    engine = Engine(model, EngineSettings(fuse_after=0), lib)
    s = GenerateSettings(prompt="a red mug on a white background", steps=steps)
    r = {}
    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    r["first_load"] = timed(lambda: switch_to(engine, [LoraWeight("a")]))
    r["rss_per_adapter"] = proc.memory_info().rss - rss0
    switch_to(engine, [LoraWeight("b")])
    pair = iter([[LoraWeight("a")], [LoraWeight("b")]] * 10)
    r["switch"] = timed(lambda: switch_to(engine, next(pair)), 10)
    del model, engine
    gc.collect()
    rebuilt = []

    def rebuild():  # what switching would cost without the engine: a new pipeline + that adapter
        m = build(family)
        m.pipe.load_lora_weights(str(lib.get("a").file), adapter_name="a")
        rebuilt.append(m)

    r["rebuild"] = timed(rebuild)
    rebuilt.clear()
    gc.collect()
    engine = Engine(build(family), EngineSettings(fuse_after=0), lib)  # a plain base: no peft layers yet
    blend = [LoraWeight(n, 0.4, 0.3) for n in NAMES]
    engine.generate(dataclasses.replace(s, steps=1))  # warm-up: first-call allocations are not the base's cost
    r["base"] = timed(lambda: engine.generate(s), repeat)
    switch_to(engine, blend)
    r["unfused"] = timed(lambda: engine.generate(s, blend), repeat)
    t0 = time.perf_counter()
    with engine.lock:
        engine.slots.fuse()
    r["fuse_call"] = time.perf_counter() - t0
    r["saved_bytes"] = sum(w.numel() * w.element_size() for _, w in engine.slots._saved)
    r["fused"] = timed(lambda: engine.generate(s, blend, fuse=True), repeat)
    t0 = time.perf_counter()
    with engine.lock:
        engine.slots.unfuse()
    r["unfuse_call"] = time.perf_counter() - t0
    r["loaded"] = engine.loaded()
    return r


def table(family: str, steps: int, size: int, r: dict) -> str:
    mb = 1 / 2**20
    rows = [
        ("switch active adapter (both loaded)", f"{r['switch'] * 1000:.1f} ms", ""),
        ("rebuild pipeline + load that adapter", f"{r['rebuild']:.2f} s",
         f"switch is {r['rebuild'] / r['switch']:.0f}x faster (goal >= 20x)"),
        ("first load from the library", f"{r['first_load'] * 1000:.0f} ms",
         f"{r['rebuild'] / r['first_load']:.0f}x faster than rebuild"),
        (f"draw, base ({steps} steps, {size} px)", f"{r['base']:.2f} s", ""),
        ("draw, 3-adapter blend unfused", f"{r['unfused']:.2f} s", f"{r['unfused'] / r['base']:.3f}x base (goal <= 1.3x)"),
        ("draw, 3-adapter blend fused", f"{r['fused']:.2f} s", f"{r['fused'] / r['base']:.3f}x base (goal <= 1.05x)"),
        ("fuse / unfuse the blend (one-off)", f"{r['fuse_call']:.2f} s / {r['unfuse_call']:.2f} s",
         f"exact-unfuse copy of the changed weights: {r['saved_bytes'] * mb:.0f} MiB CPU RAM while fused"),
    ]
    for a in r["loaded"]:
        rows.append((f"memory of adapter {a.name} ({', '.join(a.components)})", f"{a.param_bytes * mb:.2f} MiB",
                     f"file {a.file_bytes * mb:.2f} MiB ({a.param_bytes / a.file_bytes:.3f} of it)"))
    rows.append(("RSS growth at first load", f"{r['rss_per_adapter'] * mb:.1f} MiB", "process RSS, noisy"))
    head = f"| {family}, CPU | measured | note |\n|---|---|---|\n"
    return head + "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", default="tiny", choices=["tiny", "sd1"])
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rank", type=int, default=8)
    a = ap.parse_args()
    quiet.libraries()
    torch.set_num_threads(2)
    r = measure(a.family, a.steps, a.repeat, a.rank)
    size = {"tiny": 64, "sd1": 512}[a.family]
    record(f"Generation engine: adapters on one pipeline ({a.family}, rank {a.rank})", table(a.family, a.steps, size, r))


if __name__ == "__main__":
    main()
