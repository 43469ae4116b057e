import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, run_cli
from studio.config import GenerateSettings
from studio.errors import StudioError


def _arr(result) -> np.ndarray:
    return np.asarray(result.image, dtype=np.int16)


def test_same_seed_same_image_other_seed_other_image(engine):
    s = GenerateSettings(prompt="a blue ball on a gray background", seed=7, steps=10)
    a, b = _arr(engine.generate(s)), _arr(engine.generate(s))
    c = _arr(engine.generate(GenerateSettings(prompt=s.prompt, seed=8, steps=10)))
    assert (a == b).all()
    assert np.abs(a - c).mean() > 1.0


def test_native_and_custom_sizes(engine):
    assert engine.generate(GenerateSettings(steps=2)).image.size == (64, 64)
    assert engine.generate(GenerateSettings(steps=2, width=96, height=48)).image.size == (96, 48)
    with pytest.raises(StudioError, match="multiples of 16"):
        engine.generate(GenerateSettings(steps=2, width=70))
    assert engine.generate(GenerateSettings(steps=1, width=256, height=16)).image.size == (256, 16)  # 4x native
    with pytest.raises(StudioError, match=r"4096x64 is more than 4x this model's native 64 px.*at most 256 px"):
        engine.generate(GenerateSettings(steps=2, width=4096))


def test_negative_prompt_changes_the_image(engine):
    base = GenerateSettings(prompt="a red mug on a white background", seed=3, steps=10)
    neg = GenerateSettings(prompt=base.prompt, negative="red", seed=3, steps=10)
    assert np.abs(_arr(engine.generate(base)) - _arr(engine.generate(neg))).mean() > 1.0


def test_an_empty_or_overlong_prompt_is_said_not_silently_drawn(engine):
    def said(prompt):
        return engine.generate(GenerateSettings(prompt=prompt, seed=1, steps=1)).warnings

    for empty in ("", "   ", " , "):
        assert any("the prompt is empty" in w for w in said(empty)), empty
    assert said("a red mug") == ()
    long = said("a red mug " * 60)
    assert len(long) == 1 and "the rest is ignored" in long[0] and "prompt is empty" not in long[0]


def test_cli_generate_writes_reproducible_png(tmp_path):
    outs = []
    for name in ("a.png", "b.png"):
        r = run_cli("generate", "--prompt", "a green lamp on a beige background", "--seed", "5",
                    "--steps", "8", "--out", str(tmp_path / name))
        assert r.returncode == 0, r.stderr
        outs.append(np.asarray(Image.open(tmp_path / name)))
    assert outs[0].shape == (64, 64, 3) and (outs[0] == outs[1]).all()


def test_cli_generate_reports_user_errors_without_traceback(tmp_path):
    r = run_cli("generate", "--steps", "2", "--width", "30", "--out", str(tmp_path / "x.png"))
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 2 and last.startswith("error:") and "multiples of 16" in last
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "x.png").exists()


def test_engine_layers_do_not_import_gradio():
    code = "import sys, studio.generate, studio.models.loading; assert 'gradio' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
