"""Peak memory of a few training steps on a full-size architecture (random weights from
the shipped configs), next to the VRAM preflight's estimate.

On a CUDA machine it reports torch.cuda.max_memory_allocated; on a CPU-only machine the
peak RSS of the process (weights in fp32 there, so not comparable 1:1 with VRAM).

    python benchmarks/memory.py --family sd1 --preset sd15-8gb [--steps 2]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from common import record  # noqa: E402
from PIL import Image  # noqa: E402

from studio import events as ev  # noqa: E402
from studio.config import IngestSettings, apply_sets  # noqa: E402
from studio.data.ingest import ingest  # noqa: E402
from studio.models.random_init import random_model  # noqa: E402
from studio.paths import Workspace  # noqa: E402
from studio.train import preflight  # noqa: E402
from studio.train.loop import Trainer  # noqa: E402
from studio.train.presets import load_preset  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", default="sd1", choices=["sd1", "sd2", "sdxl"])
    ap.add_argument("--preset", default="sd15-8gb")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--set", action="append", default=[])
    a = ap.parse_args()
    cuda = torch.cuda.is_available()
    s = apply_sets(load_preset(a.preset), [f"steps={a.steps}", "validate_every=0", "sample_every=0",
                                           "checkpoint_every=0", "sample_steps=1"] + a.set)
    dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else torch.float32
    est = preflight.for_family(a.family, s)
    t0 = time.time()
    model = random_model(a.family, "cuda" if cuda else "cpu", dtype)
    res = s.resolution
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "in").mkdir()
        for i in range(4):
            Image.new("RGB", (res, res), (40 * i, 120, 200)).save(Path(tmp) / "in" / f"{i}.png")
        ws = Workspace(Path(tmp) / "out")
        ingest("mem", [Path(tmp) / "in"], IngestSettings(val_fraction=0), family=a.family, ws=ws)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        sink = ev.ListSink()
        Trainer("mem", "mem", model, s, sink, ws=ws).run()
    step_s = 1 / sink.of(ev.Progress)[-1].it_per_s
    if cuda:
        peak = f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB CUDA (max allocated)"
    else:
        peak = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB RSS (CPU, fp32 weights)"
    table = ("| family | preset | resolution | batch | measured peak | preflight estimate | s/step | total s |\n"
             "|---|---|---|---|---|---|---|---|\n"
             f"| {a.family} | {a.preset} | {res} | {s.batch_size} | {peak} | {est.format()} | {step_s:.1f} | "
             f"{time.time() - t0:.0f} |")
    record(f"Training memory: {a.family} full-size architecture, random weights", table)


if __name__ == "__main__":
    main()
