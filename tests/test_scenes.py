"""The procedural data: deterministic, captioned, and the three style sets differ visibly."""

import random

import numpy as np
from PIL import Image

from conftest import run_cli
from studio.models.tiny import scenes


def test_scene_rendering_is_deterministic():
    s = scenes.Scene("mug", "red", "white")
    a = np.asarray(scenes.render_scene(s, random.Random(3)))
    b = np.asarray(scenes.render_scene(s, random.Random(3)))
    assert a.shape == (64, 64, 3) and (a == b).all()


def test_caption_names_colour_object_and_background():
    assert scenes.Scene("vase", "teal", "beige").caption == "a teal vase on a beige background"


def _mean_luma(style: str) -> float:
    return float(np.mean([np.asarray(im.convert("L")).mean() for im, _ in scenes.style_set(style, 8)]))


def test_style_sets_are_visually_distinct():
    neon, pastel = _mean_luma("neon"), _mean_luma("pastel")
    assert neon < 60 < 180 < pastel  # neon: dark ground; pastel: light warm ground
    stripes = np.asarray(next(scenes.style_set("stripes", 1))[0].convert("L"), dtype=float)
    # Diagonal stripes: the image is far from constant along a diagonal, unlike a flat ground.
    diag = np.array([stripes[i, i] for i in range(8)])
    assert diag.std() > 5


def test_sample_data_cli_writes_png_and_caption_pairs(tmp_path):
    r = run_cli("sample-data", str(tmp_path), "--count", "5")
    assert r.returncode == 0, r.stderr
    for style in scenes.STYLES:
        pngs = sorted((tmp_path / style).glob("*.png"))
        assert len(pngs) == 5
        for p in pngs:
            caption = p.with_suffix(".txt").read_text().strip()
            assert caption.endswith(f"{style} style") and caption.split()[0] in ("a", "an")


def test_sample_data_plain_photos_show_the_same_products_captioned_without_the_style(tmp_path):
    r = run_cli("sample-data", str(tmp_path), "--style", "neon", "--count", "4", "--plain")
    assert r.returncode == 0, r.stderr
    styled = [p.read_text().strip() for p in sorted(tmp_path.glob("neon_*.txt"))]
    plain = [p.read_text().strip() for p in sorted(tmp_path.glob("plain_*.txt"))]
    assert len(styled) == len(plain) == len(list(tmp_path.glob("plain_*.png"))) == 4
    assert plain == [c.removesuffix(", neon style") for c in styled] and not any("neon" in c for c in plain)
    neon, photo = (np.asarray(Image.open(tmp_path / f"{k}_000.png").convert("L"), dtype=float) for k in ("neon", "plain"))
    assert photo.mean() > neon.mean() + 40  # an ordinary lit photo, not the dark neon look


def test_sample_data_rejects_bad_count(tmp_path):
    r = run_cli("sample-data", str(tmp_path), "--style", "neon", "--count", "0")
    assert r.returncode == 2 and "out of range" in r.stderr
