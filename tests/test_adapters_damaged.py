"""A damaged, foreign or half-written library entry is listed as damaged with its reason, never
loaded, never fatal (issue 15, class 2); the studio's own staging leftovers are removed on open."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch
from kohya_files import sd_scripts_lora
from safetensors.torch import save

from studio.adapters import stale
from studio.adapters.library import Library
from studio.adapters.random_lora import write_adapter
from studio.errors import StudioError
from studio.paths import Workspace

ESCAPED = "\x1b[31mred\x07"  # a folder name with an ANSI escape and a bell


def good_sd(seed: int = 0) -> dict:
    sd, _ = sd_scripts_lora("tiny", dim=2, alpha=1.0, te=False, conv=False, dtype=torch.float32, seed=seed, std=0.3)
    return sd


def _entry(ws: Workspace, name: str, data: bytes, info: dict | str | None) -> None:
    folder = ws.adapters / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.safetensors").write_bytes(data)
    if info is not None:
        (folder / "adapter.json").write_text(info if isinstance(info, str) else json.dumps(info))


def damaged_library(ws: Workspace) -> dict[str, str]:
    """One good adapter (``good``) and one entry per kind of damage; returns {name: reason expected}."""
    sd = good_sd()
    write_adapter(ws, "good", sd, "tiny")
    data = save(sd, metadata={"ss_base_model_version": "studio_tiny"})
    info = {"family": "tiny", "source": "trained"}
    peft = save({"unet.down_blocks.0.attentions.0.proj_in.lora_A.weight": torch.zeros(2, 32, 1, 1),
                 "unet.down_blocks.0.attentions.0.proj_in.lora_B.weight": torch.zeros(32, 2, 1, 1)})
    deep = b"[" * 100_000 + b"]" * 100_000
    cases = {
        "junk": (b"hello", None, "the file is empty or truncated"),
        "truncated": (data[: len(data) // 2], info, "bytes but the file holds"),
        "nojson": (data, None, "adapter.json is missing"),
        "wrongfamily": (data, {**info, "family": "sdxl"}, "adapter.json says SDXL but the file says the tiny model"),
        "unknownfamily": (data, {**info, "family": "flux"}, "unknown base family 'flux'"),
        "badjson": (data, "{not json", "adapter.json cannot be read"),
        "deepjson": (data, "[" * 100_000 + "]" * 100_000, "adapter.json is nested too deeply"),
        "foreign": (peft, info, "not in the studio's kohya layout"),
        "deepheader": (len(deep).to_bytes(8, "little") + deep, info, "nested too deeply"),
        ESCAPED: (data, info, "not a valid adapter name"),
    }
    for name, (blob, meta, _) in cases.items():
        _entry(ws, name, blob, meta)
    return {name: why for name, (_, _, why) in cases.items()}


@pytest.fixture
def ws(tmp_path):
    return Workspace(tmp_path / "outputs")


def test_damaged_entries_are_listed_with_their_reason_and_never_offered(ws):
    expected = damaged_library(ws)
    lib = Library(ws)
    assert lib.names() == ["good"], "only the usable adapter may be offered"
    records = {r.name: r for r in lib.list()}
    assert set(records) == {"good", *expected}
    wrong = {n: records[n].damaged for n, why in expected.items() if why not in records[n].damaged}
    assert not wrong, wrong
    for r in records.values():
        assert r.damaged.isprintable() and r.shown_name.isprintable()
    assert records[ESCAPED].shown_name == "\\x1b[31mred\\x07"
    with pytest.raises(StudioError, match="is damaged and cannot be used: the file is empty or truncated"):
        lib.get("junk")
    with pytest.raises(StudioError, match="damaged"):
        lib.read("truncated")
    lib.delete("junk")
    assert "junk" not in {r.name for r in lib.list()} and not (ws.adapters / "junk").exists()
    assert lib.taken("nojson") and not lib.taken("junk")


def test_the_cli_table_lists_damaged_entries_and_exits_0(ws):
    from conftest import run_cli

    expected = damaged_library(ws)
    out = run_cli("adapters", env={"STUDIO_OUTPUTS": str(ws.root)})
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout
    lines = out.stdout.splitlines()
    assert any(line.startswith("good ") and "tiny" in line for line in lines)
    for name, why in expected.items():
        shown = name.encode("unicode_escape").decode()
        assert any(line.strip().startswith(f"{shown}: ") and why in line for line in lines), (name, out.stdout)
    show = run_cli("adapters", "show", "truncated", env={"STUDIO_OUTPUTS": str(ws.root)})
    assert show.returncode == 1 and "DAMAGED" in show.stdout and "bytes but the file holds" in show.stdout


def test_the_engine_refuses_a_damaged_adapter_and_draws_with_a_good_one(ws):
    import numpy as np

    from studio.adapters.blend import blend
    from studio.config import GenerateSettings
    from studio.generate import Engine
    from studio.models.loading import load_model

    damaged_library(ws)
    engine = Engine(load_model("tiny", device="cpu"), library=Library(ws))
    s = GenerateSettings(prompt="a red mug", steps=2, seed=3)
    for name in ("junk", "truncated", "wrongfamily"):
        with pytest.raises(StudioError, match="is damaged and cannot be used"):
            engine.generate(GenerateSettings(prompt=f"a red mug <lora:{name}:1>", steps=2))
    base = engine.generate(s).image
    styled = engine.generate(GenerateSettings(prompt="a red mug <lora:good:1>", steps=2, seed=3))
    assert [lw.name for lw in styled.loras] == ["good"]
    assert np.abs(np.asarray(base, float) - np.asarray(styled.image, float)).max() > 1
    with pytest.raises(StudioError, match="damaged"):
        blend(Library(ws), "mix", [("good", 0.5), ("nojson", 0.5)])


def test_the_library_page_shows_damaged_cards_after_the_good_ones(ws):
    from studio.ui.library import _cards

    expected = damaged_library(ws)
    cards = _cards(Library(ws))
    assert cards[0][1].startswith("good · tiny")
    captions = [c for _, c in cards[1:]]
    assert len(captions) == len(expected) and all(c.startswith("⚠ ") and "damaged: " in c for c in captions)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _backdate(*paths, seconds: float = 3600) -> None:
    t = time.time() - seconds
    for p in paths:
        for q in [p, *(p.rglob("*") if p.is_dir() else [])]:
            os.utime(q, (t, t))


def test_stale_staging_and_temp_files_are_removed_and_nothing_else(ws):
    write_adapter(ws, "good", good_sd(), "tiny")
    a, e = ws.adapters, ws.exports
    e.mkdir(parents=True)
    stale_ones = [a / f".staging-{_dead_pid()}-k1ll3d", a / ".staging-old_name", a / "good" / ".adapter.json.ab12cd34.tmp",
                  e / ".good-kohya-fp16.safetensors.x9y8z7w6.tmp"]
    for p in stale_ones[:2]:
        p.mkdir()
        (p / ".good.safetensors.abcdefgh.tmp").write_bytes(bytes(1 << 20))
    for p in stale_ones[2:]:
        p.write_bytes(b"half")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        time.sleep(0.5)
        kept = [a / f".staging-{live.pid}-busy", a / f".staging-{os.getpid()}-fresh", e / "notes.tmp",
                e / ".my.hidden.tmp", a / "good" / "notes.txt", a / ".hidden-folder", e / "mine.safetensors"]
        for p in kept[:2] + kept[5:6]:
            p.mkdir()
            (p / "x.tmp").write_bytes(b"x")
        for p in kept[2:5] + kept[6:]:
            p.write_bytes(b"user data")
        _backdate(*stale_ones, *kept[2:])
        removed = stale.clean(ws, started=time.time() - 60)  # everything but the fresh one is older than that
    finally:
        live.kill()
        live.wait()
    assert sorted(removed) == sorted(stale_ones)
    assert not any(p.exists() for p in stale_ones)
    assert all(p.exists() for p in kept), [p for p in kept if not p.exists()]
    assert Library(ws).names() == ["good"]
