"""Per-step training time: the studio's loop (latents cached once, text cached when the
text encoder is frozen) vs a straightforward loop that re-encodes latents and text every
step (what diffusers' train_text_to_image_lora.py does). Same data, same LoRA, same
optimizer, measured in one run; the re-encoding loop's time is split into its phases so
the ceiling on what caching can save is visible.

    python benchmarks/train_speed.py [--steps 40]                         # tiny model
    python benchmarks/train_speed.py --family sd1 --resolution 256 --steps 3  # full-size SD 1.5, random weights
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import record, solid_images  # noqa: E402

from studio import events as ev  # noqa: E402
from studio.config import IngestSettings  # noqa: E402
from studio.data.ingest import ingest  # noqa: E402
from studio.models.loading import load_model  # noqa: E402
from studio.models.random_init import random_model  # noqa: E402
from studio.models.tiny.sample_data import write_style_set  # noqa: E402
from studio.overlay import apply_sets  # noqa: E402
from studio.paths import Workspace  # noqa: E402
from studio.train import batches, text  # noqa: E402
from studio.train.loop import Trainer  # noqa: E402
from studio.train.presets import load_preset  # noqa: E402

QUIET = ["validate_every=0", "sample_every=0", "checkpoint_every=0", "sample_steps=1"]


class PhaseTimer:
    """Wraps the two per-step encoders to time them (benchmark-only instrumentation)."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self._saved = []

    def wrap(self, owner, attr: str, phase: str) -> None:
        fn = getattr(owner, attr)
        self._saved.append((owner, attr, fn))

        def timed(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.seconds[phase] += time.perf_counter() - t
        setattr(owner, attr, timed)

    def restore(self) -> None:
        for owner, attr, fn in reversed(self._saved):
            setattr(owner, attr, fn)


def run(ws, make_model, preset, name, sets, steps, timer=None) -> float:
    s = apply_sets(load_preset(preset), QUIET + [f"steps={steps}"] + sets)
    sink = ev.ListSink()
    trainer = Trainer(name, "bench", make_model(), s, sink, ws=ws)
    if timer:  # timing starts with the loop: only the per-step calls count
        timer.wrap(batches.LatentBatches, "batch", "images + VAE encode")
        timer.wrap(text.TextConditioner, "__call__", "text encode")
    try:
        trainer.run()
    finally:
        if timer:
            timer.restore()
    return 1.0 / sink.of(ev.Progress)[-1].it_per_s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", default="tiny", choices=["tiny", "sd1", "sd2", "sdxl"])
    ap.add_argument("--resolution", type=int, help="default: the family's native size")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--set", action="append", default=[])
    a = ap.parse_args()
    tiny = a.family == "tiny"
    preset = "tiny-cpu" if tiny else {"sd1": "sd15-8gb", "sd2": "sd15-8gb", "sdxl": "sdxl-8gb"}[a.family]
    if tiny:
        def make_model():
            return load_model("tiny", device="cpu")
    else:
        import torch

        cuda = torch.cuda.is_available()
        dtype = torch.bfloat16 if cuda else torch.float32

        def make_model():
            return random_model(a.family, "cuda" if cuda else "cpu", dtype)
    extra = a.set + ([f"resolution={a.resolution}"] if a.resolution else [])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp) / "outputs")
        images = Path(tmp) / "images"
        if tiny:
            write_style_set(images, "neon", 16)
        else:
            solid_images(images, a.resolution or 512, 4)
        ingest("bench", [images], IngestSettings(val_fraction=0), family=a.family, ws=ws)
        modes = [("UNet + text encoder LoRA", "true"), ("UNet-only LoRA", "false")]
        for mode, te in modes:
            sets = [f"lora.text_encoder={te}"] + extra
            timer = PhaseTimer()
            naive = run(ws, make_model, preset, "naive", sets + ["cache_latents=false", "cache_text=false"],
                        a.steps, timer)
            ours = run(ws, make_model, preset, "ours", sets, a.steps)
            enc = timer.seconds["images + VAE encode"] / a.steps
            txt = timer.seconds["text encode"] / a.steps
            rows.append(f"| {mode} | {naive:.3f} | {enc:.3f} ({100 * enc / naive:.0f} %) | "
                        f"{txt:.3f} ({100 * txt / naive:.0f} %) | {ours:.3f} | {ours / naive:.2f}x |")
    res = a.resolution or ("64" if tiny else "native")
    table = (f"| {a.family}, {res} px, preset {preset} | re-encode every step (s/step) | of which images + VAE "
             "(s, share) | of which text encoder (s, share) | studio: cached (s/step) | ratio |\n"
             "|---|---|---|---|---|---|\n" + "\n".join(rows))
    variant = ", ".join([a.family, *a.set])  # one section per family and overrides (e.g. mixed_precision=bf16)
    record(f"Step time: cached vs re-encoding loop ({variant})", table)


if __name__ == "__main__":
    main()
