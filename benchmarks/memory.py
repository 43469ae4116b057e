"""Peak memory of a few training steps on a full-size architecture (random weights from
the shipped configs), next to the VRAM preflight's estimate.

On a CUDA machine it reports torch.cuda.max_memory_allocated; on a CPU-only machine the
peak RSS of the process, which also holds what a GPU run keeps in CPU RAM (VAE, text
encoders, Python), so it is an upper bound, not VRAM. Both as of the last optimizer step
and for the whole run (the final preview decodes a full-size image).

    python benchmarks/memory.py --family sd1 --preset sd15-8gb [--steps 2] [--dtype bf16]
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
from common import record, solid_images  # noqa: E402

from studio import events as ev  # noqa: E402
from studio.config import IngestSettings  # noqa: E402
from studio.data.ingest import ingest  # noqa: E402
from studio.models.random_init import random_model  # noqa: E402
from studio.overlay import apply_sets  # noqa: E402
from studio.paths import Workspace  # noqa: E402
from studio.train import preflight  # noqa: E402
from studio.train.loop import Trainer  # noqa: E402
from studio.train.presets import load_preset  # noqa: E402


def reset_peak_rss() -> None:
    """Linux: writing 5 to clear_refs resets the process's peak RSS (VmHWM)."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak() -> int:
    import torch

    return torch.cuda.max_memory_allocated() if torch.cuda.is_available() else peak_rss()


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def dtype_name(dtype) -> str:
    return str(dtype).removeprefix("torch.")


class PeakAtSteps(ev.ListSink):
    """Records the peak as of the last optimizer step: the final preview (a full-size VAE
    decode) comes after it and is reported separately."""

    def __init__(self, measure):
        super().__init__()
        self.measure, self.at_steps = measure, 0

    def emit(self, e) -> None:
        super().emit(e)
        if isinstance(e, ev.Progress):
            self.at_steps = self.measure()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", default="sd1", choices=["sd1", "sd2", "sdxl"])
    ap.add_argument("--preset", default="sd15-8gb")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--dtype", choices=["auto", "bf16", "fp32"], default="auto",
                    help="weights dtype (auto: bf16/fp16 on CUDA, fp32 on CPU; bf16 on CPU mimics the GPU)")
    a = ap.parse_args()
    cuda = torch.cuda.is_available()
    dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else torch.float32
    if a.dtype != "auto":
        dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[a.dtype]  # bf16 weights: bf16 autocast
    s = apply_sets(load_preset(a.preset), [f"steps={a.steps}", "validate_every=0", "sample_every=0",
                                           "checkpoint_every=0", "sample_steps=1"] + a.set)
    est = preflight.for_family(a.family, s)
    t0 = time.time()
    model = random_model(a.family, "cuda" if cuda else "cpu", dtype)
    res = s.resolution
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp) / "out")
        ingest("mem", [solid_images(Path(tmp) / "in", res)], IngestSettings(val_fraction=0), family=a.family, ws=ws)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        else:
            reset_peak_rss()  # building the random model in fp32 must not count
        sink = PeakAtSteps(peak)
        Trainer("mem", "mem", model, s, sink, ws=ws).run()
    step_s = 1 / sink.of(ev.Progress)[-1].it_per_s
    where = "CUDA max allocated" if cuda else (
        f"peak RSS (CPU, {dtype_name(dtype)} weights; includes the VAE, text encoders and Python, "
        "which stay in CPU RAM on a GPU)")
    table = ("| family | preset | resolution | batch | measured peak: training steps | whole run incl. "
             "final preview | preflight estimate | s/step | total s |\n"
             "|---|---|---|---|---|---|---|---|---|\n"
             f"| {a.family} | {a.preset} | {res} | {s.batch_size} | {gib(sink.at_steps)} {where} | {gib(peak())} | "
             f"{est.format()} | {step_s:.1f} | {time.time() - t0:.0f} |")
    variant = " ".join([a.family, *([a.dtype] if a.dtype != "auto" else []), *a.set])  # one section per variant
    record(f"Training memory: {variant} full-size architecture, random weights", table)


if __name__ == "__main__":
    main()
