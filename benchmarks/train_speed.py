"""Per-step training time on the tiny model: the studio's loop (latents cached once,
text cached when the text encoder is frozen) vs a straightforward loop that re-encodes
latents and text every step (what diffusers' train_text_to_image_lora.py does).
Same data, same LoRA, same optimizer, measured in one run.

    python benchmarks/train_speed.py [--steps 40]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import record  # noqa: E402

from studio import events as ev  # noqa: E402
from studio.config import apply_sets  # noqa: E402
from studio.data.ingest import ingest  # noqa: E402
from studio.models.loading import load_model  # noqa: E402
from studio.models.tiny.sample_data import write_style_set  # noqa: E402
from studio.paths import Workspace  # noqa: E402
from studio.train.loop import Trainer  # noqa: E402
from studio.train.presets import load_preset  # noqa: E402

QUIET = ["validate_every=0", "sample_every=0", "checkpoint_every=0"]


def seconds_per_step(ws, name, sets, steps) -> float:
    s = apply_sets(load_preset("tiny-cpu"), QUIET + [f"steps={steps}"] + sets)
    sink = ev.ListSink()
    Trainer(name, "neon", load_model("tiny", device="cpu"), s, sink, ws=ws).run()
    rate = sink.of(ev.Progress)[-1].it_per_s
    return 1.0 / rate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        write_style_set(Path(tmp) / "neon", "neon", 16)
        ws = Workspace(Path(tmp) / "outputs")
        ingest("neon", [Path(tmp) / "neon"], ws=ws)
        rows = []
        for mode, te in (("UNet + text encoder LoRA (tiny-cpu)", "true"), ("UNet-only LoRA", "false")):
            naive = seconds_per_step(ws, "naive", [f"lora.text_encoder={te}", "cache_latents=false",
                                                  "cache_text=false"], a.steps)
            ours = seconds_per_step(ws, "ours", [f"lora.text_encoder={te}"], a.steps)
            rows.append(f"| {mode} | {naive:.3f} | {ours:.3f} | {ours / naive:.2f}x |")
    table = ("| mode (tiny model, batch 8, 64 px, 8-bit AdamW) | re-encode every step (s/step) | "
             "studio: cached (s/step) | ratio |\n|---|---|---|---|\n" + "\n".join(rows))
    record("Tiny-model step time: cached vs re-encoding loop", table)


if __name__ == "__main__":
    main()
