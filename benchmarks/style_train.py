"""Train the default tiny-cpu preset on a shipped style set and measure how far it moves
generations toward the style (same prompts and seeds with and without the adapter).

    python benchmarks/style_train.py [--style neon] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from common import record  # noqa: E402
from diffusers import StableDiffusionPipeline  # noqa: E402

from studio import events as ev  # noqa: E402
from studio.data.ingest import ingest  # noqa: E402
from studio.models.loading import TINY_DIR, load_model  # noqa: E402
from studio.models.tiny import quality  # noqa: E402
from studio.models.tiny.sample_data import write_style_set  # noqa: E402
from studio.overlay import apply_sets  # noqa: E402
from studio.paths import Workspace  # noqa: E402
from studio.train.loop import Trainer  # noqa: E402
from studio.train.presets import load_preset  # noqa: E402


def pipe_gen(adapter: Path | None):
    pipe = StableDiffusionPipeline.from_pretrained(TINY_DIR)
    pipe.set_progress_bar_config(disable=True)
    if adapter:
        pipe.load_lora_weights(str(adapter), adapter_name="style")

    def generate(prompt, seed):
        return pipe(prompt, num_inference_steps=25, guidance_scale=6.0,
                    generator=torch.Generator().manual_seed(seed)).images[0]
    return generate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--style", default="neon")
    ap.add_argument("--count", type=int, default=16)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--keep", type=Path, help="copy the adapter folder here")
    a = ap.parse_args()
    torch.set_num_threads(2)
    settings = apply_sets(load_preset("tiny-cpu"), a.set)
    with tempfile.TemporaryDirectory() as tmp:
        write_style_set(Path(tmp) / a.style, a.style, a.count)
        ws = Workspace(Path(tmp) / "outputs")
        ingest(a.style, [Path(tmp) / a.style], ws=ws)
        t0 = time.time()
        result = Trainer(a.style, a.style, load_model("tiny", device="cpu"), settings, ev.ListSink(), ws=ws).run()
        seconds = time.time() - t0
        base, styled = quality.style_shift(pipe_gen(None), pipe_gen(result.adapter), a.style)
        if a.keep:
            import shutil

            shutil.copytree(result.adapter.parent, a.keep, dirs_exist_ok=True)
    sets = " ".join(a.set) or "-"
    table = ("| style | images | overrides | steps run (of) | train wall time (s, incl. caching/previews) | "
             "style distance base | with adapter | reduction |\n|---|---|---|---|---|---|---|---|\n"
             f"| {a.style} | {a.count} | {sets} | {result.steps} ({settings.steps}) | {seconds:.0f} | {base:.3f} | {styled:.3f} | "
             f"{100 * (1 - styled / base):.0f} % |")
    title = f"tiny-cpu preset, {a.style}{', ' + sets if a.set else ''}"  # a run with overrides keeps its own section
    record(f"Style training on the tiny model ({title})", table)


if __name__ == "__main__":
    main()
