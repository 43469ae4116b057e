"""The compare grid and the generate/grid commands with library adapters; quiet output."""

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli
from lora_library import tiny_library
from studio.adapters.library import Library
from studio.config import EngineSettings, GenerateSettings
from studio.generate import Engine, LoraWeight
from studio.generate.grid import PAD, save
from studio.models.loading import load_model


@pytest.fixture(scope="module")
def lib_engine():
    model = load_model("tiny", device="cpu")
    return Engine(model, EngineSettings(fuse_after=0), Library(tiny_library(model)))


def test_grid_has_the_right_size_labels_and_cells(lib_engine, tmp_path):
    prompts = ["a red mug on a white background", "a blue ball on a gray background <lora:ink:0.5>"]
    sets = [[], [LoraWeight("neon")], [LoraWeight("neon", 0.5), LoraWeight("pastel", 0.5, 0.25)]]
    s = GenerateSettings(seed=4, steps=2)
    g = lib_engine.grid(prompts, sets, s)
    assert g.col_labels == ("no adapter", "neon 1", "neon 0.5 + pastel 0.5/0.25")
    assert g.row_labels == ("a red mug on a white background", "a blue ball on a gray background")
    assert len(g.cells) == 2 and all(len(r) == 3 for r in g.cells)
    cell = 256  # 64 px cells enlarged 4x (nearest neighbour) so the labels are readable
    left, top = g.image.width - 3 * (cell + PAD) , g.image.height - 2 * (cell + PAD)
    assert left >= cell and top > 0  # room for the row and column labels
    one = lib_engine.generate(GenerateSettings(prompt=prompts[0], seed=4, steps=2), [LoraWeight("neon")])
    assert np.array_equal(np.asarray(g.cells[0][1]), np.asarray(one.image))  # drawn once each, same seed
    pasted = g.image.crop((left + cell + PAD, top, left + 2 * cell + PAD, top + cell))
    assert np.array_equal(np.asarray(pasted), np.asarray(one.image.resize((cell, cell), Image.NEAREST)))
    labels = np.asarray(g.image.crop((left, 0, g.image.width, top)).convert("L"))
    assert (labels < 128).any()  # column labels are drawn
    paths = save(g, tmp_path / "grid.png")
    assert len(paths) == 7 and Image.open(tmp_path / "grid-r1-c2.png").size == (64, 64)


def test_cli_generate_with_loras_is_quiet(lib_engine, tmp_path):
    ws = lib_engine.library.ws
    r = run_cli("generate", "--prompt", "a red mug <lora:pastel:0.5>", "--lora", "neon:0.8:0.2", "--steps", "2",
                "--count", "2", "--sampler", "Euler a", "--out", str(tmp_path / "x.png"),
                env={"STUDIO_OUTPUTS": str(ws.root)})
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # no third-party notices or loading bars
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("wrote 2 images") and "neon 0.8/0.2 + pastel 0.5" in lines[0]
    assert (tmp_path / "x-0.png").is_file() and (tmp_path / "x-1.png").is_file()


def test_cli_grid_and_errors(lib_engine, tmp_path):
    env = {"STUDIO_OUTPUTS": str(lib_engine.library.ws.root)}
    r = run_cli("grid", "--prompt", "a red mug", "--lora-set", "none", "--lora-set", "neon:1",
                "--lora-set", "neon:0.5,pastel:0.5", "--steps", "1", "--out", str(tmp_path / "g.png"), env=env)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "1 prompts x 3 adapter sets" in r.stdout and (tmp_path / "g-r0-c2.png").is_file()
    bad = run_cli("generate", "--lora", "gold", "--steps", "1", "--out", str(tmp_path / "b.png"), env=env)
    assert bad.returncode == 2 and bad.stderr.startswith("error: No adapter named 'gold'") and "neon" in bad.stderr
