"""The two home-made benchmark style sets (benchmarks/style_sets.py): deterministic, written as
PNG + caption pairs like the sample sets, and each carries its style (a sepia tone ramp; a
halftone dot grid) that the plain scenes under them do not."""

import colorsys
import importlib.util
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from studio.models.tiny import scenes
from studio.models.tiny.sample_data import write_style_set as write_sample_set

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "style_sets.py"
_spec = importlib.util.spec_from_file_location("bench_style_sets", _PATH)
style_sets = importlib.util.module_from_spec(_spec)
sys.modules["bench_style_sets"] = style_sets
_spec.loader.exec_module(style_sets)


def _arrays(style, n=6, plain=False):
    return [np.asarray(im, dtype=float) for im, _ in style_sets.style_set(style, n, plain=plain)]


def test_sets_are_deterministic_and_seeded():
    for style in style_sets.EXTRA_STYLES:
        a, b = _arrays(style), _arrays(style)
        assert all(x.shape == (64, 64, 3) and (x == y).all() for x, y in zip(a, b))
        other = [np.asarray(im, dtype=float) for im, _ in style_sets.style_set(style, 6, seed=1)]
        assert any((x != y).any() for x, y in zip(a, other)), f"{style}: seed 1 drew the same set as seed 0"


def _hsv(arr):
    flat = arr.reshape(-1, 3) / 255.0
    return np.array([colorsys.rgb_to_hsv(*p) for p in flat])


def _in_band(hsv):
    return (hsv[:, 0] > 0.05) & (hsv[:, 0] < 0.13)  # hue 18°-47°: the brown ramp


def test_sepia_is_one_brown_tone_ramp():
    off_band_plain = 0
    for styled, plain in zip(_arrays("sepia"), _arrays("sepia", plain=True)):
        hsv, plain_hsv = _hsv(styled), _hsv(plain)
        # colour is gone: every visibly tinted pixel has the same warm brown hue
        tinted = hsv[hsv[:, 1] > 0.15]
        assert len(tinted) > 0.5 * len(hsv)
        assert _in_band(tinted).mean() > 0.97
        off_band_plain += int(((plain_hsv[:, 1] > 0.4) & ~_in_band(plain_hsv)).sum())
        # brightness order survives: the graded object is a function of the scene's luminance
        luma, toned = plain @ (0.299, 0.587, 0.114), styled @ (0.299, 0.587, 0.114)
        centre = slice(16, 48)
        assert np.corrcoef(luma[centre, centre].ravel(), toned[centre, centre].ravel())[0, 1] > 0.9
    # the plain scenes under it hold strongly coloured objects of other hues (red, blue, green...)
    assert off_band_plain > 1000


def _dot_frequency_power(arr):
    """Share of the (mean-removed) spectrum at the halftone grid's frequency: 64/period cycles."""
    grey = arr @ (0.299, 0.587, 0.114)
    spec = np.abs(np.fft.fft2(grey - grey.mean())) ** 2
    k = 64 // style_sets.HALFTONE_PERIOD
    return (spec[0, k] + spec[k, 0] + spec[0, -k] + spec[-k, 0]) / spec.sum()


def test_halftone_has_its_dot_grid_and_plain_scenes_do_not():
    styled = [_dot_frequency_power(a) for a in _arrays("halftone")]
    plain = [_dot_frequency_power(a) for a in _arrays("halftone", plain=True)]
    assert min(styled) > 0.05, styled
    assert max(plain) < 0.01, plain
    # a light ground stays light paper with small dots: the mean brightness follows the scene's
    for s, p in zip(_arrays("halftone"), _arrays("halftone", plain=True)):
        assert abs(s.mean() - p.mean()) < 60


def test_written_like_the_sample_sets(tmp_path):
    for style in style_sets.EXTRA_STYLES:
        assert style_sets.write_style_set(tmp_path / style, style, 4) == 4
        pngs = sorted((tmp_path / style).glob("*.png"))
        assert [p.name for p in pngs] == [f"{style}_{i:03d}.png" for i in range(4)]
        captions = [p.with_suffix(".txt").read_text(encoding="utf-8") for p in pngs]
        assert all(c.endswith(f", {style} style\n") for c in captions)
        with Image.open(pngs[0]) as im:
            assert im.mode == "RGB" and im.size == (64, 64)
    # same caption scheme as `studio sample-data`: only the style word differs
    write_sample_set(tmp_path / "neon", "neon", 4)
    sample = [p.read_text(encoding="utf-8") for p in sorted((tmp_path / "neon").glob("*.txt"))]
    ours = [p.read_text(encoding="utf-8") for p in sorted((tmp_path / "sepia").glob("*.txt"))]
    assert [c.replace("neon", "sepia") for c in sample] == ours


def test_style_word_fits_the_tiny_tokenizer():
    """The caption must not be truncated before the trigger word (model_max_length is short)."""
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(str(Path(scenes.__file__).parent / "weights" / "tokenizer"))
    for style in style_sets.EXTRA_STYLES:
        longest = max((c for _, c in style_sets.style_set(style, 48)), key=len)
        ids = tok(longest)["input_ids"]
        assert len(ids) <= tok.model_max_length, (longest, len(ids))
