"""Measurements of what the tiny model draws, shared by the quality test and benchmarks.

For one generated image of ``a {colour} {object} on a {background} background``:
- background: the median colour of the 3-pixel border, matched to the nearest background
  of the training palette (RGB distance);
- object colour: the hue histogram peak over object pixels (saturated pixels away from
  the background colour, so highlights and the shadow don't vote), matched to
  the nearest palette hue on the colour circle (so yellow drawn as orange is a miss);
- shape: the object mask (the same object pixels), centred on its bounding box,
  compared by IoU with each object's canonical silhouette; the best IoU names the shape.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .scenes import BACKGROUNDS, COLOURS, OBJECTS, object_mask

FRAME = 5
_PALETTE_HUES = {n: colorsys.rgb_to_hsv(*[v / 255 for v in rgb])[0] * 360 for n, rgb in COLOURS.items()}


@dataclass(frozen=True)
class Reading:
    background: str
    colour: str | None
    shape: str | None


def _hue_distance(a: float, b: float) -> float:
    d = abs(a - b) % 360
    return min(d, 360 - d)


def background_colour(arr: np.ndarray) -> np.ndarray:
    border = np.concatenate([arr[:3].reshape(-1, 3), arr[-3:].reshape(-1, 3),
                             arr[:, :3].reshape(-1, 3), arr[:, -3:].reshape(-1, 3)])
    return np.median(border, axis=0)


def foreground(arr: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Object pixels: clearly more saturated than the background (every object colour is;
    backgrounds and shadows are not) and far from its colour. The 5-px frame is ignored:
    objects never reach it, and decoders leave edge artefacts there."""
    mx, mn = arr.max(-1), arr.min(-1)
    sat = (mx - mn) / np.maximum(mx, 1e-6)
    bg_sat = (bg.max() - bg.min()) / max(bg.max(), 1e-6)
    mask = (sat > bg_sat + 0.15) & (np.linalg.norm(arr - bg, axis=-1) > 70)
    mask[:FRAME], mask[-FRAME:], mask[:, :FRAME], mask[:, -FRAME:] = False, False, False, False
    return mask


def nearest_background(rgb: np.ndarray) -> str:
    return min(BACKGROUNDS, key=lambda n: float(np.linalg.norm(rgb - np.array(BACKGROUNDS[n]))))


def dominant_hue(arr: np.ndarray, mask: np.ndarray) -> float | None:
    px = arr[mask] / 255.0
    if len(px) < 8:
        return None
    mx, mn = px.max(1), px.min(1)
    sat = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-6), 0)
    px = px[(sat > 0.35) & (mx > 0.25)]
    if len(px) < 8:
        return None
    hues = np.array([colorsys.rgb_to_hsv(*p)[0] * 360 for p in px])
    hist, edges = np.histogram(hues, bins=36, range=(0, 360))
    return float(edges[hist.argmax()] + 5)


def nearest_colour(hue: float) -> str:
    return min(_PALETTE_HUES, key=lambda n: _hue_distance(hue, _PALETTE_HUES[n]))


def _centred(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return mask
    h, w = mask.shape
    dy = int(round(h / 2 - (ys.min() + ys.max() + 1) / 2))
    dx = int(round(w / 2 - (xs.min() + xs.max() + 1) / 2))
    return np.roll(np.roll(mask, dy, 0), dx, 1)


_TEMPLATES: dict[tuple[str, int], np.ndarray] = {}


def _template(obj: str, size: int) -> np.ndarray:
    if (obj, size) not in _TEMPLATES:
        _TEMPLATES[obj, size] = _centred(np.asarray(object_mask(obj, size)) > 127)
    return _TEMPLATES[obj, size]


def nearest_shape(mask: np.ndarray) -> str | None:
    if mask.sum() < 16:
        return None
    m = _centred(mask)

    def iou(obj: str) -> float:
        t = _template(obj, mask.shape[0])
        return (m & t).sum() / max(1, (m | t).sum())

    return max(OBJECTS, key=iou)


def read_image(image: Image.Image) -> Reading:
    arr = np.asarray(image.convert("RGB"), dtype=np.float64)
    bg = background_colour(arr)
    mask = foreground(arr, bg)
    hue = dominant_hue(arr, mask)
    return Reading(nearest_background(bg), nearest_colour(hue) if hue is not None else None,
                   nearest_shape(mask))


def quality_prompts(n_seeds: int = 1) -> list:
    """A fixed set: every colour x every object (48), backgrounds cycling, seeds fixed."""
    from .scenes import Scene

    bgs = list(BACKGROUNDS)
    out = []
    for i, (c, o) in enumerate((c, o) for c in COLOURS for o in OBJECTS):
        for k in range(n_seeds):
            out.append((Scene(o, c, bgs[(i + k) % len(bgs)]), 1000 + 17 * i + k))
    return out


@dataclass(frozen=True)
class QualityReport:
    n: int
    colour_rate: float
    background_rate: float
    shape_rate: float
    misses: tuple[str, ...]


def measure(generate, prompts=None) -> QualityReport:
    """``generate(prompt, seed) -> PIL image``; returns the hit rates over ``prompts``."""
    prompts = prompts or quality_prompts()
    hits = np.zeros(3)
    misses = []
    for scene, seed in prompts:
        r = read_image(generate(scene.caption, seed))
        ok = (r.colour == scene.colour, r.background == scene.background, r.shape == scene.obj)
        hits += ok
        if not all(ok):
            misses.append(f"{scene.caption} (seed {seed}) -> {r}")
    n = len(prompts)
    return QualityReport(n, *(hits / n), tuple(misses))


# ---------------------------------------------------------------- style statistic
def _palette(images) -> np.ndarray:
    """Average 4x4x4 RGB histogram (a coarse palette), summing to 1."""
    hist = np.zeros(64)
    for im in images:
        q = np.asarray(im.convert("RGB"), dtype=np.int64) // 64
        idx = (q[..., 0] * 16 + q[..., 1] * 4 + q[..., 2]).ravel()
        hist += np.bincount(idx, minlength=64) / idx.size
    return hist / len(images)


def _background(images) -> np.ndarray:
    return np.mean([background_colour(np.asarray(im.convert("RGB"), dtype=np.float64)) for im in images], axis=0)


def style_distance(images, reference) -> float:
    """How far a set of images is from a style set, in [0, 1]: the mean of the
    background-colour distance (RGB, scaled by the largest possible) and the palette
    distance (total variation between coarse colour histograms)."""
    bg = float(np.linalg.norm(_background(images) - _background(reference))) / (255 * 3 ** 0.5)
    pal = 0.5 * float(np.abs(_palette(images) - _palette(reference)).sum())
    return (bg + pal) / 2


def style_prompts(style: str, n: int = 8) -> list[tuple[str, int]]:
    """Fixed (prompt, seed) pairs for judging a style adapter: objects and colours cycle."""
    from .scenes import style_caption

    colours = list(COLOURS)
    return [(style_caption(style, OBJECTS[i % len(OBJECTS)], colours[(3 * i + 1) % len(colours)]), 500 + i)
            for i in range(n)]


def style_shift(generate_base, generate_styled, style: str, n: int = 8) -> tuple[float, float]:
    """(distance of base images to the style set, distance with the adapter), same prompts/seeds."""
    from .scenes import style_set

    reference = [im for im, _ in style_set(style, 16, seed=7)]
    prompts = style_prompts(style, n)
    base = [generate_base(p, s) for p, s in prompts]
    styled = [generate_styled(p, s) for p, s in prompts]
    return style_distance(base, reference), style_distance(styled, reference)


def reconstruction_psnr(vae, images) -> float:
    """PSNR (dB) of the VAE's encode(mean) -> decode round trip over ``images``."""
    import torch

    from .pretrain import psnr

    x = torch.from_numpy(np.stack([np.asarray(i.convert("RGB"), dtype=np.float32) for i in images]) / 127.5 - 1)
    x = x.permute(0, 3, 1, 2)
    with torch.no_grad():
        return psnr(vae.decode(vae.encode(x).latent_dist.mean).sample, x)
