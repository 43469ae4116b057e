"""Procedural "product photo" scenes, style sets and the VAE's broad image mix.

Everything here is drawn with Pillow from a seeded ``random.Random`` so that the
pretraining data, the style sets and the test fixtures are reproducible bit for bit.
Shapes are drawn on a 4x supersampled canvas and box-filtered down (anti-aliasing).
"""

from __future__ import annotations

import colorsys
import math
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFilter

SIZE = 64  # native resolution of the tiny model
SS = 4  # supersampling factor used while drawing

# Object colours: all chromatic, so a generated object's hue can be checked.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (210, 30, 35),
    "orange": (240, 120, 20),
    "yellow": (240, 205, 25),
    "green": (40, 160, 60),
    "teal": (20, 150, 150),
    "blue": (35, 75, 215),
    "purple": (125, 50, 185),
    "pink": (235, 95, 170),
}
# Backgrounds the base model learns. Dark backgrounds are deliberately absent: they
# belong to the unseen "neon" style that users teach with a LoRA.
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (242, 242, 240),
    "gray": (150, 150, 152),
    "beige": (225, 205, 170),
    "blue": (170, 200, 235),
}
OBJECTS = ("bottle", "mug", "box", "ball", "vase", "lamp")
STYLES = ("neon", "pastel", "stripes")


@dataclass(frozen=True)
class Scene:
    obj: str
    colour: str
    background: str

    @property
    def caption(self) -> str:
        return f"{article(self.colour)} {self.colour} {self.obj} on a {self.background} background"


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def all_scenes() -> list[Scene]:
    return [Scene(o, c, b) for o in OBJECTS for c in COLOURS for b in BACKGROUNDS]


def _shade(rgb, f: float) -> tuple[int, int, int]:
    return tuple(max(0, min(255, int(round(v * f)))) for v in rgb)


def _mix(a, b, t: float) -> tuple[int, int, int]:
    return tuple(int(round(x * (1 - t) + y * t)) for x, y in zip(a, b))


def _jitter(rgb, rng: random.Random, amount: int) -> tuple[int, int, int]:
    return tuple(max(0, min(255, v + rng.randint(-amount, amount))) for v in rgb)


# ---------------------------------------------------------------- object outlines
# Each shape is a list of (kind, params) primitives in a unit box [-1, 1]^2 (y down).
# "body" primitives get the lit/shaded fill; "dark" ones are drawn in the shade colour.


def _shape(obj: str) -> list[tuple[str, str, tuple]]:
    if obj == "bottle":
        return [("rrect", "body", (-0.32, -0.25, 0.32, 0.85, 0.12)),
                ("rect", "body", (-0.13, -0.62, 0.13, -0.2)),
                ("rect", "dark", (-0.16, -0.78, 0.16, -0.6))]
    if obj == "mug":
        return [("ring", "body", (0.42, 0.2, 0.30, 0.11)),
                ("rrect", "body", (-0.55, -0.35, 0.45, 0.75, 0.06))]
    if obj == "box":
        return [("poly", "dark", ((0.45, -0.25), (0.7, -0.5), (0.7, 0.5), (0.45, 0.75))),
                ("poly", "light", ((-0.55, -0.25), (-0.3, -0.5), (0.7, -0.5), (0.45, -0.25))),
                ("rect", "body", (-0.55, -0.25, 0.45, 0.75))]
    if obj == "ball":
        return [("ellipse", "body", (-0.6, -0.45, 0.6, 0.75))]
    if obj == "vase":
        return [("ellipse", "body", (-0.5, -0.05, 0.5, 0.85)),
                ("poly", "body", ((-0.16, -0.45), (0.16, -0.45), (0.22, 0.1), (-0.22, 0.1))),
                ("poly", "body", ((-0.32, -0.7), (0.32, -0.7), (0.16, -0.45), (-0.16, -0.45)))]
    if obj == "lamp":
        return [("poly", "body", ((-0.3, -0.8), (0.3, -0.8), (0.6, -0.15), (-0.6, -0.15))),
                ("rect", "dark", (-0.05, -0.15, 0.05, 0.65)),
                ("ellipse", "dark", (-0.4, 0.58, 0.4, 0.82))]
    raise ValueError(f"unknown object {obj!r}")


class _Canvas:
    """Maps unit-box coordinates of one object onto the supersampled canvas."""

    def __init__(self, draw: ImageDraw.ImageDraw, cx: float, cy: float, half: float):
        self.draw, self.cx, self.cy, self.half = draw, cx, cy, half

    def pt(self, x: float, y: float) -> tuple[float, float]:
        return (self.cx + x * self.half, self.cy + y * self.half)

    def box(self, x0, y0, x1, y1) -> list[float]:
        return [*self.pt(x0, y0), *self.pt(x1, y1)]

    def prim(self, kind: str, p: tuple, fill=None, outline=None, width: int = 0) -> None:
        d = self.draw
        if kind == "rect":
            d.rectangle(self.box(*p), fill=fill, outline=outline, width=width)
        elif kind == "rrect":
            d.rounded_rectangle(self.box(*p[:4]), radius=p[4] * self.half, fill=fill,
                                outline=outline, width=width)
        elif kind == "ellipse":
            d.ellipse(self.box(*p), fill=fill, outline=outline, width=width)
        elif kind == "poly":
            pts = [self.pt(x, y) for x, y in p]
            if fill is not None:
                d.polygon(pts, fill=fill)
            if outline is not None:
                d.line(pts + [pts[0]], fill=outline, width=width, joint="curve")
        elif kind == "ring":  # mug handle: centre x, y, outer radius, thickness
            x, y, r, t = p
            col = fill if fill is not None else outline
            d.ellipse(self.box(x - r, y - r, x + r, y + r), outline=col,
                      width=max(1, int((t if fill is not None else 0.05) * self.half)))
        else:
            raise ValueError(kind)


def _placement(rng: random.Random, size: int) -> tuple[float, float, float]:
    s = size * SS
    cx = s / 2 + rng.uniform(-3, 3) * SS * size / SIZE
    cy = s / 2 + rng.uniform(-2, 2) * SS * size / SIZE
    half = s * 0.34 * rng.uniform(0.9, 1.08)
    return cx, cy, half


def _draw_product(img: Image.Image, obj: str, colour, rng: random.Random, size: int,
                  soft: bool = False) -> None:
    """Solid object with simple lighting: lit left, shaded right, floor shadow."""
    draw = ImageDraw.Draw(img)
    cx, cy, half = _placement(rng, size)
    c = _Canvas(draw, cx, cy, half)
    bg = img.getpixel((1, 1))
    shadow = _mix(bg, (0, 0, 0), 0.12 if soft else 0.22)
    c.prim("ellipse", (-0.7, 0.7, 0.8, 0.95), fill=shadow)
    dark = _shade(colour, 0.62 if not soft else 0.9)
    light = _mix(colour, (255, 255, 255), 0.35)
    for kind, role, p in _shape(obj):
        fill = {"body": colour, "dark": dark, "light": light}[role]
        c.prim(kind, p, fill=fill)
    # Shade the right side of the body by overdrawing a darker sliver mask.
    if not soft:
        mask = Image.new("L", img.size, 0)
        mc = _Canvas(ImageDraw.Draw(mask), cx, cy, half)
        for kind, role, p in _shape(obj):
            if role == "body":
                mc.prim(kind, p, fill=255)
        cut = Image.new("L", img.size, 0)
        ImageDraw.Draw(cut).rectangle([cx + 0.18 * half, 0, img.size[0], img.size[1]], fill=140)
        from PIL import ImageChops

        mask = ImageChops.multiply(mask, cut)
        img.paste(Image.new("RGB", img.size, dark), (0, 0), mask)
        hx, hy = c.pt(-0.3, -0.1)
        r = 0.09 * half
        draw.ellipse([hx - r, hy - r, hx + r, hy + r], fill=_mix(colour, (255, 255, 255), 0.6))


def _finish(img: Image.Image, size: int) -> Image.Image:
    return img.resize((size, size), Image.Resampling.BOX)


def render_scene(scene: Scene, rng: random.Random, size: int = SIZE,
                 background_rgb=None) -> Image.Image:
    """One pretraining image: ``a {colour} {obj} on a {background} background``."""
    bg = background_rgb or _jitter(BACKGROUNDS[scene.background], rng, 6)
    img = Image.new("RGB", (size * SS, size * SS), bg)
    _draw_product(img, scene.obj, _jitter(COLOURS[scene.colour], rng, 10), rng, size)
    return _finish(img, size)


def object_mask(obj: str, size: int = SIZE) -> Image.Image:
    """Canonical silhouette of an object (centre placement), for shape checks."""
    img = Image.new("L", (size * SS, size * SS), 0)
    c = _Canvas(ImageDraw.Draw(img), size * SS / 2, size * SS / 2, size * SS * 0.34)
    for kind, _, p in _shape(obj):
        c.prim(kind, p, fill=255)
    return img.resize((size, size), Image.Resampling.BOX)


# ---------------------------------------------------------------- style sets
NEON_BG = (12, 10, 28)


def _render_neon(obj: str, colour: str, rng: random.Random, size: int) -> Image.Image:
    h, _, _ = colorsys.rgb_to_hsv(*[v / 255 for v in COLOURS[colour]])
    glow_rgb = tuple(int(v * 255) for v in colorsys.hsv_to_rgb(h, 0.85, 1.0))
    bg = _jitter(NEON_BG, rng, 4)
    lines = Image.new("RGB", (size * SS, size * SS), (0, 0, 0))
    c = _Canvas(ImageDraw.Draw(lines), *_placement(rng, size))
    for kind, _, p in _shape(obj):
        c.prim(kind, p, outline=glow_rgb, width=int(1.6 * SS * size / SIZE))
    small = lines.resize((size, size), Image.Resampling.BOX)
    glow = small.filter(ImageFilter.GaussianBlur(2.2 * size / SIZE))
    out = Image.new("RGB", (size, size), bg)
    from PIL import ImageChops

    out = ImageChops.add(out, ImageChops.multiply(glow, Image.new("RGB", glow.size, (230,) * 3)))
    out = ImageChops.screen(out, glow)
    return ImageChops.lighter(out, small)


PASTEL_BG = (250, 228, 206)


def _render_pastel(obj: str, colour: str, rng: random.Random, size: int) -> Image.Image:
    soft = _mix(COLOURS[colour], (245, 240, 235), 0.55)
    img = Image.new("RGB", (size * SS, size * SS), _jitter(PASTEL_BG, rng, 4))
    _draw_product(img, obj, _jitter(soft, rng, 5), rng, size, soft=True)
    return _finish(img, size).filter(ImageFilter.GaussianBlur(0.5))


def _stripe_layer(size_px: int, a, b, period: float, angle_deg: float, phase: float) -> Image.Image:
    """Diagonal two-colour stripes covering a square canvas."""
    img = Image.new("RGB", (size_px, size_px), a)
    d = ImageDraw.Draw(img)
    th = math.radians(angle_deg)
    ux, uy = math.cos(th), math.sin(th)  # stripe normal
    vx, vy = -uy, ux
    n = int(2 * size_px / period) + 4
    ctr = size_px / 2
    for k in range(-n, n):
        o = (k + phase) * period
        p0 = (ctr + ux * o, ctr + uy * o)
        p1 = (ctr + ux * (o + period / 2), ctr + uy * (o + period / 2))
        L = 2 * size_px
        d.polygon([(p0[0] - vx * L, p0[1] - vy * L), (p0[0] + vx * L, p0[1] + vy * L),
                   (p1[0] + vx * L, p1[1] + vy * L), (p1[0] - vx * L, p1[1] - vy * L)], fill=b)
    return img


def _render_stripes(obj: str, colour: str, rng: random.Random, size: int) -> Image.Image:
    s = size * SS
    bg = _stripe_layer(s, (236, 236, 232), (212, 212, 206), 12 * SS * size / SIZE, 45, rng.random())
    col = _jitter(COLOURS[colour], rng, 8)
    fg = _stripe_layer(s, col, (250, 250, 250), 10 * SS * size / SIZE, 45, rng.random())
    mask = Image.new("L", (s, s), 0)
    c = _Canvas(ImageDraw.Draw(mask), *_placement(rng, size))
    for kind, _, p in _shape(obj):
        c.prim(kind, p, fill=255)
    bg.paste(fg, (0, 0), mask)
    return _finish(bg, size)


_STYLE_RENDERERS = {"neon": _render_neon, "pastel": _render_pastel, "stripes": _render_stripes}


def subject_caption(obj: str, colour: str) -> str:
    """``"a red bottle"``: what the picture shows, no style named."""
    return f"{article(colour)} {colour} {obj}"


def style_caption(style: str, obj: str, colour: str) -> str:
    return f"{subject_caption(obj, colour)}, {style} style"


def render_style(style: str, obj: str, colour: str, rng: random.Random,
                 size: int = SIZE) -> Image.Image:
    try:
        renderer = _STYLE_RENDERERS[style]
    except KeyError:
        raise ValueError(f"unknown style {style!r}; choose one of {', '.join(STYLES)}") from None
    return renderer(obj, colour, rng, size)


def subjects(count: int):
    """Yield the ``(object, colour)`` of a style set's images in order, cycling both."""
    colours = list(COLOURS)
    for i in range(count):
        yield OBJECTS[i % len(OBJECTS)], colours[(i * 5 + i // len(OBJECTS)) % len(colours)]


def style_set(style: str, count: int, seed: int = 0, size: int = SIZE):
    """Yield ``(image, caption)`` pairs of one style, over :func:`subjects`."""
    rng = random.Random(f"{style}-{seed}")
    for obj, colour in subjects(count):
        yield render_style(style, obj, colour, rng, size), style_caption(style, obj, colour)


# ---------------------------------------------------------------- VAE image mix
def _random_rgb(rng: random.Random, dark: bool | None = None) -> tuple[int, int, int]:
    h, s = rng.random(), rng.uniform(0, 1)
    v = rng.uniform(0.02, 0.3) if dark else rng.uniform(0.6, 1.0) if dark is False else rng.random()
    return tuple(int(x * 255) for x in colorsys.hsv_to_rgb(h, s, v))


def _gradient(size_px: int, a, b, rng: random.Random) -> Image.Image:
    g = Image.linear_gradient("L").resize((size_px, size_px)).rotate(rng.choice([0, 90, 180, 270]))
    return Image.composite(Image.new("RGB", g.size, b), Image.new("RGB", g.size, a), g)


def render_mixed(rng: random.Random, size: int = SIZE) -> Image.Image:
    """A broad image for VAE training: scenes, shapes, outlines/glow, textures, noise."""
    kind = rng.choice(["scene", "scene", "shapes", "outline", "texture", "noise", "pastel"])
    s = size * SS
    dark = rng.random() < 0.45
    if kind == "scene":
        bg = _random_rgb(rng, dark)
        sc = Scene(rng.choice(OBJECTS), rng.choice(list(COLOURS)), "white")
        img = Image.new("RGB", (s, s), bg)
        _draw_product(img, sc.obj, _random_rgb(rng), rng, size, soft=rng.random() < 0.3)
        return _finish(img, size)
    if kind == "pastel":
        img = Image.new("RGB", (s, s), _mix(_random_rgb(rng, False), (255, 240, 220), 0.5))
        _draw_product(img, rng.choice(OBJECTS), _mix(_random_rgb(rng), (250, 245, 240), 0.5),
                      rng, size, soft=True)
        return _finish(img, size).filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.8)))
    if kind == "texture":
        period = rng.uniform(6, 20) * SS * size / SIZE
        img = _stripe_layer(s, _random_rgb(rng), _random_rgb(rng), period, rng.uniform(0, 180),
                            rng.random())
        if rng.random() < 0.5:  # textured object on a plain or textured ground
            mask = Image.new("L", (s, s), 0)
            c = _Canvas(ImageDraw.Draw(mask), *_placement(rng, size))
            for k, _, p in _shape(rng.choice(OBJECTS)):
                c.prim(k, p, fill=255)
            ground = Image.new("RGB", (s, s), _random_rgb(rng, dark))
            img = Image.composite(img, ground, mask)
        return _finish(img, size)
    if kind == "noise":
        import numpy as np

        nrng = np.random.default_rng(rng.getrandbits(32))
        cells = rng.choice([4, 8, 16, 32])
        arr = nrng.integers(0, 256, (cells, cells, 3), dtype=np.uint8)
        img = Image.fromarray(arr).resize((size, size), rng.choice(
            [Image.Resampling.BICUBIC, Image.Resampling.BILINEAR, Image.Resampling.NEAREST]))
        return img
    img = _gradient(s, _random_rgb(rng, dark), _random_rgb(rng, dark), rng) \
        if rng.random() < 0.5 else Image.new("RGB", (s, s), _random_rgb(rng, dark))
    if kind == "outline":
        lines = Image.new("RGB", (size * SS, size * SS), (0, 0, 0))
        c = _Canvas(ImageDraw.Draw(lines), *_placement(rng, size))
        for k, _, p in _shape(rng.choice(OBJECTS)):
            c.prim(k, p, outline=_random_rgb(rng, False), width=int(rng.uniform(1, 3) * SS))
        from PIL import ImageChops

        small = _finish(lines, size)
        glow = small.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 3)))
        return ImageChops.lighter(ImageChops.screen(_finish(img, size), glow), small)
    d = ImageDraw.Draw(img)
    for _ in range(rng.randint(1, 6)):
        x0, y0 = rng.uniform(0, s), rng.uniform(0, s)
        w, h = rng.uniform(s * 0.1, s * 0.6), rng.uniform(s * 0.1, s * 0.6)
        col = _random_rgb(rng)
        shape = rng.choice(["rect", "ellipse", "line", "poly"])
        if shape == "rect":
            d.rectangle([x0, y0, x0 + w, y0 + h], fill=col)
        elif shape == "ellipse":
            d.ellipse([x0, y0, x0 + w, y0 + h], fill=col)
        elif shape == "line":
            d.line([x0, y0, x0 + w, y0 + h], fill=col, width=int(rng.uniform(1, 4) * SS))
        else:
            d.polygon([(rng.uniform(0, s), rng.uniform(0, s)) for _ in range(3)], fill=col)
    return _finish(img, size)
