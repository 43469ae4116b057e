"""Bad-input corpus (issue 11, item 3), the parts that exist before the library/engine/HTTP
issues land: images and zips beyond tests/test_ingest.py, and names for datasets and
adapters. Everything goes through the CLI: each case gets a known outcome and a clear
message, stderr never holds a traceback, nothing is written outside outputs/, and the
user's originals are byte-identical afterwards. (Settings: tests/test_fail_early.py.)
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import run_cli  # noqa: E402
from data import corpus  # noqa: E402

from studio.adapters import library  # noqa: E402
from studio.data import manifest as mf  # noqa: E402
from studio.errors import StudioError  # noqa: E402
from studio.paths import Workspace  # noqa: E402

ZIPS = {  # zip file -> {member: expected outcome}
    "many empty.zip": (corpus.zip_many_empty, {"": "over the 2000 limit"}),
    "symlink.zip": (corpus.zip_with_symlink, {"link.png": "symbolic link", "real.png": "ok"}),
    "odd names.zip": (corpus.zip_odd_names, {"n" * 300 + ".png": "ok", "CON.png": "ok",
                                             "C:/windows/evil.png": "absolute path",
                                             "a\\..\\..\\evil.png": "zip-slip", "dup.png": "ok"}),
}
NAMES = ["../evil", "/etc/passwd", "a/b", "a\\b", ".hidden", "CON", "nul", "COM1", "lpt9", "ｎｅｏｎ", "nеon",
         "a" * 300, "", " ", "neon\n", "name.", "-dash", "neon style", "a\x00b"]


def _snapshot(root: Path, skip: str = "outputs") -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).parts[0] != skip}


def _names(root: Path) -> set[str]:
    """Files in the repository (not .git, caches or outputs/): the CLI runs there."""
    skip = {".git", "__pycache__", ".pytest_cache", "outputs", ".hypothesis"}
    return {str(p.relative_to(root)) for p in root.rglob("*") if not skip & set(p.relative_to(root).parts)}


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad")
    up = tmp / "uploads"
    up.mkdir()
    for name, (make, _) in corpus.MORE_IMAGES.items():
        (up / name).write_bytes(make())
    for name, (make, _) in ZIPS.items():
        make(tmp / name)
    (tmp / "polyglot direct.png").write_bytes(corpus.png_then_zip())
    repo_before = _names(ROOT)
    before = _snapshot(tmp)
    r = run_cli("dataset", "add", "corpus", str(up), *(str(tmp / z) for z in ZIPS), str(tmp / "polyglot direct.png"),
                env={"STUDIO_OUTPUTS": str(tmp / "outputs")})
    after = _snapshot(tmp)
    ws = Workspace(tmp / "outputs")
    return {"r": r, "before": before, "after": after, "ws": ws, "tmp": tmp,
            "repo_changed": repo_before ^ _names(ROOT)}


def _outcomes(ws: Workspace) -> dict[str, list[str]]:
    m = mf.load("corpus", ws)
    out: dict[str, list[str]] = {}
    for it in m.items:
        out.setdefault(it.source, []).append("ok")
    for ref in m.refused:
        out.setdefault(ref["source"], []).append(ref["reason"])
    return out


def _expected() -> dict[str, tuple[str, str]]:
    """source label -> (kind, expected outcome fragment)"""
    exp = {f"uploads/{n}": ("image", o) for n, (_, o) in corpus.MORE_IMAGES.items()}
    for z, (_, members) in ZIPS.items():
        for m, o in members.items():
            exp[f"{z}/{m}" if m else z] = ("zip", o)
    # handed over directly, the PNG+zip is still read as its picture (the same one as in uploads/)
    exp["polyglot direct.png"] = ("image", "duplicate of uploads/polyglot png+zip.png")
    return exp


def test_every_image_and_zip_case_has_its_outcome(ingested, tally):
    r, ws = ingested["r"], ingested["ws"]
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    got = _outcomes(ws)
    assert not [s for s in got if "payload" in s or "readme" in s], "a polyglot PNG was unpacked as a zip"
    wrong = []
    for source, (kind, want) in _expected().items():
        outcomes = got.get(source, ["(silently dropped)"])
        ok = all((o == "ok") if want == "ok" else (want.lower() in o.lower()) for o in outcomes)
        tally.record("bad input", kind, source[:60], ok and "Traceback" not in r.stderr)
        if not ok:
            wrong.append((source, want, outcomes))
    assert not wrong, wrong


def test_nothing_written_outside_outputs_and_originals_unchanged(ingested, tally):
    ok = ingested["before"] == ingested["after"] and not ingested["repo_changed"]
    tally.record("bad input", "invariants", "originals unchanged, nothing outside outputs/", ok)
    assert ingested["before"] == ingested["after"], "an original changed or a file appeared outside outputs/"
    assert not ingested["repo_changed"], f"the CLI wrote into the repository: {ingested['repo_changed']}"
    assert not (ingested["tmp"].parent / "escaped.png").exists()


def test_stored_copies_carry_no_user_payload(ingested):
    ws = ingested["ws"]
    folder = mf.dataset_dir("corpus", ws)
    for it in mf.load("corpus", ws).items:
        data = (folder / it.file).read_bytes()
        assert b"<script" not in data and b"PK\x03\x04" not in data, it.source
        with Image.open(folder / it.file) as im:
            assert not {"icc_profile", "exif"} & set(im.info), (it.source, set(im.info))
    notes = {it.source: it.notes for it in mf.load("corpus", ws).items}
    assert any("damaged" in n for n in notes["uploads/corrupt icc.png"])


@pytest.mark.parametrize("name", [n for n in NAMES if "\x00" not in n], ids=lambda n: repr(n)[:24])
def test_bad_dataset_names_are_refused_through_the_cli(ingested, name, tally):
    tmp = ingested["tmp"]
    out = tmp / "names-out"
    before = _snapshot(tmp)
    r = run_cli("dataset", "add", "--", name, str(tmp / "uploads" / "srgb icc.jpg"), env={"STUDIO_OUTPUTS": str(out)})
    ok = r.returncode == 2 and "is not allowed" in r.stderr and "Traceback" not in r.stderr \
        and _snapshot(tmp) == before and not (out / "datasets").exists()
    tally.record("bad input", "name (dataset)", repr(name)[:40], ok)
    assert ok, (r.returncode, r.stderr[-2000:])


@pytest.mark.parametrize("name", NAMES, ids=lambda n: repr(n)[:24])
def test_bad_adapter_and_dataset_names_are_refused_in_process(name, tally):
    refused = 0
    for check in (library.check_name, mf.check_name):
        try:
            check(name)
        except StudioError as e:
            refused += "not allowed" in str(e)
    tally.record("bad input", "name (adapter+dataset rule)", repr(name)[:40], refused == 2)
    assert refused == 2, name
    assert os.sep not in library.check_name("ok-name_1")
