"""Adapter export: file sizes per dtype and rank, SVD resize errors, and the image difference each causes.

    python benchmarks/adapter_formats.py [--steps 40]

Part 1 trains a rank-8 style LoRA on the tiny model (neon sample set), exports it every way and draws
seed 0 with diffusers' own ``load_lora_weights``; differences are against the fp32 library file
(pixel values in [0, 1]). Part 2: file sizes of rank-8 attention LoRAs for the full-size SD 1.5 and SDXL
architectures (random weights; sizes do not depend on values).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import record  # noqa: E402

from studio import events as ev  # noqa: E402
from studio.adapters import kohya  # noqa: E402
from studio.adapters.export import cast, export  # noqa: E402
from studio.adapters.resize import resize  # noqa: E402
from studio.adapters.structure import family_table  # noqa: E402
from studio.config import ExportSettings, TrainSettings  # noqa: E402
from studio.data.ingest import ingest  # noqa: E402
from studio.lora.inject import TEXT_ATTENTION, UNET_ATTENTION  # noqa: E402
from studio.models.loading import load_model  # noqa: E402
from studio.models.tiny.sample_data import write_style_set  # noqa: E402
from studio.overlay import apply_sets  # noqa: E402
from studio.paths import Workspace  # noqa: E402
from studio.train.loop import Trainer  # noqa: E402

VARIANTS = [("kohya", "fp32", 0, 0.0), ("kohya", "fp16", 0, 0.0), ("kohya", "bf16", 0, 0.0),
            ("diffusers", "fp16", 0, 0.0), ("kohya", "fp16", 4, 0.0), ("kohya", "fp16", 2, 0.0),
            ("kohya", "fp16", 0, 0.95), ("diffusers", "fp16", 0, 0.95), ("kohya", "fp16", 0, 0.8)]


def _image(pipe, file):
    pipe.load_lora_weights(str(file), adapter_name="x")
    g = torch.Generator().manual_seed(0)
    out = pipe("a red mug, neon style", num_inference_steps=25, generator=g, output_type="np").images[0]
    pipe.unload_lora_weights()
    return out.astype(np.float64)


def tiny_part(steps: int) -> str:
    root = Path(tempfile.mkdtemp())
    ws = Workspace(root / "outputs")
    write_style_set(root / "neon", "neon", 8)
    ingest("neon", [root / "neon"], ws=ws)
    s = apply_sets(TrainSettings(), [f"steps={steps}", "batch_size=2", "sample_every=0", "validate_every=0",
                                     "optimizer=adamw", "lr_unet=1e-3", "lr_text=1e-4", "lora.rank=8", "lora.alpha=8",
                                     "checkpoint_every=0", "sample_steps=2"])
    Trainer("neon", "neon", load_model("tiny", device="cpu"), s, ev.ListSink(), None, ws=ws).run()
    pipe = load_model("tiny", device="cpu").pipe
    lib_file = ws.adapters / "neon" / "neon.safetensors"
    ref = _image(pipe, lib_file)
    rows = ["| tiny, rank 8, trained | file size | relative Frobenius error (overall) | image max abs diff | image mean abs diff |",
            "|---|---|---|---|---|", f"| library file (fp32, kohya) | {lib_file.stat().st_size / 1e3:.1f} kB | 0 | 0 | 0 |"]
    for fmt, dtype, rank, keep in VARIANTS:
        r = export("neon", ExportSettings(format=fmt, dtype=dtype, rank=rank, keep=keep), ws=ws)
        img = _image(pipe, r.path)
        label = f"{fmt} {dtype}" + (f", rank {rank}" if rank else f", --rank auto --keep {keep}" if keep else "")
        if keep:
            ranks = sorted({m.rank_after for m in r.resize.modules})
            label += f" (ranks {ranks[0]}-{ranks[-1]})"
        err = f"{r.resize.overall:.3f} (worst module {max(m.rel_error for m in r.resize.modules):.3f})" if r.resize else "-"
        rows.append(f"| {label} | {r.size_bytes / 1e3:.1f} kB | {err} | {np.abs(img - ref).max():.4f} | "
                    f"{np.abs(img - ref).mean():.5f} |")
    return "\n".join(rows) + NOTE


NOTE = ("\n\nImages are drawn by diffusers' own `load_lora_weights` (seed 0, 25 steps, 64 px), differences against the fp32 library file, pixel values in [0, 1]. The `--rank auto` rows give each module its own rank and alpha: diffusers 0.42.1 then applies the most common alpha to every module (peft warns that the `alpha_pattern` keys match no module), which is why the kohya `--rank auto` file differs far more than the same weights in the diffusers layout. A1111/ComfyUI read each module's alpha; the studio's engine folds mixed alphas before loading (`kohya.fold_mixed_alphas`). For diffusers scripts, export `--format diffusers`.")


def full_size_part() -> str:
    from safetensors.torch import save

    rows = ["| full size, rank 8 attention (UNet + text encoders) | fp32 | fp16 | fp16, resized to rank 4 |", "|---|---|---|---|"]
    for family in ("sd1", "sdxl"):
        sd, g = {}, torch.Generator().manual_seed(0)
        for key, m in family_table(family).items():
            names = UNET_ATTENTION if m.component == "unet" else TEXT_ATTENTION
            if not any(m.path.endswith(n) for n in names):
                continue
            sd.update({f"{key}.lora_down.weight": torch.randn(8, m.shape[1], generator=g),
                       f"{key}.lora_up.weight": torch.randn(m.shape[0], 8, generator=g), f"{key}.alpha": torch.tensor(8.0)})
        sizes = [len(save(sd)), len(save(cast(sd, "fp16"))), len(save(cast(resize(sd, rank=4)[0], "fp16")))]
        rows.append(f"| {family} ({len(kohya.modules(sd))} modules) | " + " | ".join(f"{b / 1e6:.1f} MB" for b in sizes) + " |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    a = ap.parse_args()
    torch.set_num_threads(2)
    record("Adapter export: sizes, SVD resize errors, image difference",
           tiny_part(a.steps) + "\n\n" + full_size_part())


if __name__ == "__main__":
    main()
