"""The embedded tiny model: size, generation speed, quality rates and VAE reconstruction.

    python benchmarks/tiny_model.py [--seeds 1]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from common import record  # noqa: E402

from studio.config import GenerateSettings  # noqa: E402
from studio.generate import Engine  # noqa: E402
from studio.models.loading import TINY_DIR, load_model  # noqa: E402
from studio.models.tiny import quality, scenes  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=1, help="seeds per (colour, object) prompt")
    a = ap.parse_args()
    torch.set_num_threads(2)
    model = load_model("tiny", device="cpu")
    engine = Engine(model)
    pipe = model.pipe
    sizes = {n: sum(p.numel() for p in getattr(pipe, n).parameters()) for n in ("unet", "vae", "text_encoder")}
    mb = sum(f.stat().st_size for f in TINY_DIR.rglob("*") if f.is_file()) / 1e6
    engine.generate(GenerateSettings(steps=2))  # warm-up
    t0 = time.perf_counter()
    for seed in range(10):
        engine.generate(GenerateSettings(seed=seed, steps=25))
    per_image = (time.perf_counter() - t0) / 10
    rep = quality.measure(lambda p, s: engine.generate(GenerateSettings(prompt=p, seed=s, steps=25)).image,
                          quality.quality_prompts(a.seeds))
    rng = random.Random("held-out")
    held = [scenes.render_scene(s, rng) for s in rng.sample(scenes.all_scenes(), 32)]
    recon = {"scenes": quality.reconstruction_psnr(pipe.vae, held)}
    recon.update({st: quality.reconstruction_psnr(pipe.vae, [im for im, _ in scenes.style_set(st, 16, seed=99)]) for st in scenes.STYLES})
    info = json.loads((TINY_DIR / "pretrain.json").read_text())
    seconds = {k: info.get(k) for k in ("vae_seconds", "encode_seconds", "unet_seconds", "decoder_seconds")}
    table = "\n".join([
        "| measure | value |", "|---|---|",
        *(f"| {n} parameters | {v:,} |" for n, v in sizes.items()),
        f"| weights on disk | {mb:.1f} MB |",
        f"| pretraining seconds (from pretrain.json) | {seconds} |",
        f"| generation, 64x64, 25 DPM-Solver++ steps, CFG 6 | {per_image:.2f} s / image |",
        f"| prompts measured | {rep.n} |",
        f"| object colour correct | {100 * rep.colour_rate:.0f} % |",
        f"| background correct | {100 * rep.background_rate:.0f} % |",
        f"| object shape correct | {100 * rep.shape_rate:.0f} % |",
        *(f"| VAE PSNR, {k} | {v:.2f} dB |" for k, v in recon.items()),
    ])
    record("Embedded tiny model", table)


if __name__ == "__main__":
    main()
