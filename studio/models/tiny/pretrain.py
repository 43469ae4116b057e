"""Pretrain the embedded tiny Stable Diffusion from scratch on procedural scenes.

    python -m studio.models.tiny.pretrain --out studio/models/tiny/weights

Two stages, both seeded (same torch version + thread count => same weights):
1. the VAE on a broad image mix (scenes, dark/light grounds, outlines, glow, stripes,
   noise, random shapes) so it can represent what users upload, not just our scenes;
2. UNet + CLIP text encoder together on cached latents of captioned product scenes.
   The style sets and style words never appear in stage 2.
Stage outputs go to --work so a failed stage 2 does not repeat stage 1.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import architecture as arch
from . import scenes, vocab

log = logging.getLogger(__name__)


@dataclass
class PretrainConfig:
    seed: int = 1234
    threads: int = 2
    # stage 1: VAE
    vae_steps: int = 1500          # batches of the broad image mix
    vae_batch: int = 32
    vae_lr: float = 1e-3
    vae_kl: float = 1e-6           # tiny KL: a near-deterministic, SD-like latent space
    # stage 3: decoder-only fine-tune (like SD's ft-MSE VAE): sharper reconstructions,
    # same latent space, so the UNet trained in stage 2 is unaffected
    decoder_steps: int = 600
    decoder_lr: float = 3e-4
    # stage 2: UNet + text encoder
    images_per_scene: int = 128    # 192 scenes x 128 jittered renders, latents cached once
    unet_steps: int = 2000
    unet_batch: int = 64
    unet_lr: float = 5e-4
    warmup: int = 200
    caption_dropout: float = 0.1   # empty captions teach the unconditional branch (CFG)
    ema_decay: float = 0.999       # sampling uses the EMA weights


def _to_tensor(imgs) -> torch.Tensor:
    arr = np.stack([np.asarray(im, dtype=np.float32) for im in imgs]) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def _mixed_batch(rng: random.Random, n: int) -> torch.Tensor:
    """VAE training images: 3/4 the broad mix, 1/4 product scenes."""
    return _to_tensor([scenes.render_mixed(rng) if rng.random() < 0.75 else
                       scenes.render_scene(rng.choice(scenes.all_scenes()), rng) for _ in range(n)])


def _lr(step: int, total: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB for images in [-1, 1]."""
    mse = ((a.clamp(-1, 1) - b.clamp(-1, 1)) / 2).pow(2).mean().item()
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def train_vae(cfg: PretrainConfig) -> tuple[torch.nn.Module, dict]:
    rng = random.Random(f"vae-{cfg.seed}")
    vae = arch.make_vae()
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
    t0, hist = time.time(), []
    for step in range(cfg.vae_steps):
        for g in opt.param_groups:
            g["lr"] = _lr(step, cfg.vae_steps, cfg.vae_lr, 100)
        x = _mixed_batch(rng, cfg.vae_batch)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            post = vae.encode(x).latent_dist
            rec = vae.decode(post.sample()).sample
        rec = rec.float()
        loss = F.mse_loss(rec, x) + 0.5 * F.l1_loss(rec, x) + cfg.vae_kl * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == cfg.vae_steps - 1:
            hist.append((step, round(loss.item(), 5), round(psnr(rec.detach(), x), 2)))
            log.info("vae step %d loss %.5f psnr %.2f (%.0fs)", step, *hist[-1][1:], time.time() - t0)
    return vae.eval(), {"vae_seconds": round(time.time() - t0), "vae_history": hist}


def finetune_decoder(vae, cfg: PretrainConfig) -> dict:
    rng = random.Random(f"decoder-{cfg.seed}")
    vae.requires_grad_(False)
    params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=cfg.decoder_lr, weight_decay=0.0)
    t0, hist = time.time(), []
    for step in range(cfg.decoder_steps):
        for g in opt.param_groups:
            g["lr"] = _lr(step, cfg.decoder_steps, cfg.decoder_lr, 50)
        x = _mixed_batch(rng, cfg.vae_batch)
        with torch.no_grad():
            z = vae.encode(x).latent_dist.mean  # what the UNet was trained on
        with torch.autocast("cpu", dtype=torch.bfloat16):
            rec = vae.decode(z).sample
        rec = rec.float()
        loss = F.mse_loss(rec, x) + 0.5 * F.l1_loss(rec, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % 100 == 0 or step == cfg.decoder_steps - 1:
            hist.append((step, round(loss.item(), 5), round(psnr(rec.detach(), x), 2)))
            log.info("decoder step %d loss %.5f psnr %.2f (%.0fs)", step, *hist[-1][1:], time.time() - t0)
    vae.requires_grad_(False)
    return {"decoder_seconds": round(time.time() - t0), "decoder_history": hist}


@torch.no_grad()
def encode_scenes(vae, cfg: PretrainConfig) -> tuple[torch.Tensor, list[str], float]:
    rng = random.Random(f"scenes-{cfg.seed}")
    items = [s for s in scenes.all_scenes() for _ in range(cfg.images_per_scene)]
    lat, caps = [], []
    for i in range(0, len(items), 256):
        chunk = items[i:i + 256]
        x = _to_tensor([scenes.render_scene(s, rng) for s in chunk])
        lat.append(vae.encode(x).latent_dist.mean)
        caps += [s.caption for s in chunk]
    lat = torch.cat(lat)
    scale = 1.0 / lat.std().item()
    return lat * scale, caps, scale


def train_unet(latents, captions, tokenizer, cfg: PretrainConfig):
    from diffusers import DDPMScheduler

    unet = arch.make_unet()
    te = arch.make_text_encoder(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id)
    noise_sched = DDPMScheduler(**arch.SCHEDULER, clip_sample=False)
    ids_all = tokenizer(captions + [""], padding="max_length", max_length=arch.MAX_TOKENS,
                        truncation=True, return_tensors="pt").input_ids
    empty = ids_all[-1]
    params = list(unet.parameters()) + list(te.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.unet_lr, weight_decay=1e-2)
    ema_unet, ema_te = copy.deepcopy(unet).requires_grad_(False), copy.deepcopy(te).requires_grad_(False)
    gen = torch.Generator().manual_seed(cfg.seed)
    t0, hist = time.time(), []
    n = latents.shape[0]
    for step in range(cfg.unet_steps):
        for g in opt.param_groups:
            g["lr"] = _lr(step, cfg.unet_steps, cfg.unet_lr, cfg.warmup)
        idx = torch.randint(0, n, (cfg.unet_batch,), generator=gen)
        x0, ids = latents[idx], ids_all[idx].clone()
        drop = torch.rand(cfg.unet_batch, generator=gen) < cfg.caption_dropout
        ids[drop] = empty
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, noise_sched.config.num_train_timesteps, (cfg.unet_batch,), generator=gen)
        xt = noise_sched.add_noise(x0, noise, t)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            pred = unet(xt, t, te(ids).last_hidden_state).sample
        loss = F.mse_loss(pred.float(), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        d = min(cfg.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for ema, live in ((ema_unet, unet), (ema_te, te)):
                for pe, pl in zip(ema.parameters(), live.parameters()):
                    pe.lerp_(pl, 1 - d)
        if step % 100 == 0 or step == cfg.unet_steps - 1:
            hist.append((step, round(loss.item(), 5)))
            log.info("unet step %d loss %.5f (%.0fs)", step, loss.item(), time.time() - t0)
    return ema_unet.eval(), ema_te.eval(), {"unet_seconds": round(time.time() - t0), "unet_history": hist}


def save_pipeline(out: Path, unet, vae, te, tokenizer, info: dict) -> None:
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tokenizer, unet=unet,
                                   scheduler=arch.make_scheduler(), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(out, safe_serialization=True)
    (out / "pretrain.json").write_text(json.dumps(info, indent=1) + "\n")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="diffusers folder to write")
    ap.add_argument("--work", type=Path, default=Path("outputs/pretrain-work"), help="stage outputs")
    ap.add_argument("--stage", choices=["all", "vae", "unet", "decoder"], default="all")
    for k, v in asdict(PretrainConfig()).items():
        ap.add_argument(f"--{k.replace('_', '-')}", type=type(v), default=v)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg = PretrainConfig(**{k: getattr(a, k) for k in asdict(PretrainConfig())})
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    a.work.mkdir(parents=True, exist_ok=True)
    info: dict = {"config": asdict(cfg), "torch": torch.__version__}
    if a.stage in ("all", "vae"):
        vae, vinfo = train_vae(cfg)
        vae.save_pretrained(a.work / "vae")
        (a.work / "vae.json").write_text(json.dumps(vinfo))
    if a.stage in ("all", "unet"):
        from diffusers import AutoencoderKL
        from transformers import CLIPTokenizer

        vae = AutoencoderKL.from_pretrained(a.work / "vae")
        info.update(json.loads((a.work / "vae.json").read_text()))
        vocab.build(a.work / "vocab")
        tok = CLIPTokenizer.from_pretrained(a.work / "vocab", model_max_length=arch.MAX_TOKENS)
        t0 = time.time()
        lat, caps, scale = encode_scenes(vae, cfg)
        info["encode_seconds"] = round(time.time() - t0)
        vae.register_to_config(scaling_factor=scale)
        unet, te, uinfo = train_unet(lat, caps, tok, cfg)
        info.update(uinfo)
        save_pipeline(a.out, unet, vae, te, tok, info)
        log.info("wrote %s", a.out)
    if a.stage in ("all", "decoder"):
        from diffusers import AutoencoderKL

        vae = AutoencoderKL.from_pretrained(a.out / "vae")
        dinfo = finetune_decoder(vae.train(), cfg)
        vae.eval().save_pretrained(a.out / "vae")
        info = json.loads((a.out / "pretrain.json").read_text())
        info.update(dinfo)
        info["config"] = asdict(cfg)
        (a.out / "pretrain.json").write_text(json.dumps(info, indent=1) + "\n")
        log.info("fine-tuned the decoder in %s", a.out / "vae")


if __name__ == "__main__":
    main()
