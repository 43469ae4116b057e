"""Ingest of a messy corpus: every file gets the expected outcome and a reason; originals
are byte-identical afterwards and nothing is written outside the dataset folder."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli
from data import corpus
from studio.config import IngestSettings
from studio.data import manifest as mf
from studio.data.ingest import ingest
from studio.errors import StudioError
from studio.paths import Workspace


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def world(tmp_path):
    src = tmp_path / "uploads"
    expected = corpus.write_corpus(src)
    ws = Workspace(tmp_path / "outputs")
    return src, expected, ws, tmp_path


@pytest.fixture
def report(world):
    src, expected, ws, tmp = world
    before = _snapshot(tmp)
    r = ingest("shop", [src], IngestSettings(), family="tiny", ws=ws)
    after = _snapshot(tmp)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    return r, expected, changed, ws


def _outcomes(r) -> dict[str, str]:
    out = {Path(i.source).name: "ok" for i in r.accepted}
    out.update({Path(n).name: reason for n, reason in r.refused})
    return out


def test_every_file_gets_the_expected_outcome(report):
    r, expected, _, _ = report
    got = _outcomes(r)
    # Of two identical pictures the first seen (sorted by name) is kept, the other refused.
    expected = {**expected, "ünïcødé 写真 (copy).png": "ok", "ünïcødé 写真.png": "duplicate of"}
    for name, outcome in expected.items():
        assert name in got, f"{name} was silently dropped"
        if outcome == "ok":
            assert got[name] == "ok", f"{name} refused: {got[name]}"
        else:
            assert outcome.lower() in got[name].lower(), f"{name}: {got[name]!r} should mention {outcome!r}"


def test_originals_untouched_and_nothing_written_outside_the_dataset(report):
    _, _, changed, ws = report
    assert changed, "the dataset should have been written"
    for rel in changed:
        assert rel.startswith("outputs/datasets/shop/"), rel


def _pixels(ws, report_, name) -> tuple[np.ndarray, list[str]]:
    item = next(i for i in report_.accepted if Path(i.source).name == name)
    path = mf.dataset_dir("shop", ws) / item.file
    return np.asarray(Image.open(path).convert("RGB"), dtype=int), item.notes


def test_conversions_are_correct(report):
    r, _, _, ws = report
    px, notes = _pixels(ws, r, "alpha.png")
    assert tuple(px[0, 0]) == (255, 255, 255) and tuple(px[40, 40]) == (200, 0, 0)  # no hidden green
    assert any("transparent" in n for n in notes)
    px, _ = _pixels(ws, r, "palette.png")
    assert tuple(px[10, 10]) == (255, 255, 255) and tuple(px[60, 10]) == (10, 20, 200)
    px, notes = _pixels(ws, r, "deep.png")
    assert px[0, 0, 0] == 255 and abs(px[0, 60, 0] - 128) <= 1  # scaled, not clipped to 255
    assert any("16-bit" in n for n in notes)
    px, notes = _pixels(ws, r, "cmyk.jpg")
    assert px[40, 40, 0] > 200 and px[40, 40, 1] < 60 and any("CMYK" in n for n in notes)
    px, notes = _pixels(ws, r, "rotated.jpg")
    assert px.shape[:2] == (120, 80)  # upright: portrait
    assert px[2, 40, 2] > 150 and px[2, 40, 0] < 100  # the blue strip is now on top
    px, notes = _pixels(ws, r, "animated.webp")
    assert px[40, 40, 0] > 200 and any("first frame" in n for n in notes)


def test_captions_sidecar_wins_template_otherwise(report):
    r, _, _, _ = report
    caps = {Path(i.source).name: (i.caption, i.caption_source) for i in r.accepted}
    assert caps["good photo.jpg"] == ("a sidecar caption, red tones", "sidecar")
    assert caps["cmyk.jpg"] == ("a photo in shop style", "template")


def test_unicode_names_are_kept_in_the_manifest_and_stored_safely(report):
    r, _, _, ws = report
    item = next(i for i in r.accepted if "写真" in i.source)
    assert item.file.startswith("images/") and item.file.isascii()
    assert any(i.source == "uploads/ünïcødé 写真 (copy).png" for i in mf.load("shop", ws).items)


def test_split_holds_out_at_least_one_of_five_or_more(report):
    r, _, _, ws = report
    m = mf.load("shop", ws)
    assert len(m.items) >= 5 and len(m.val) >= 1 and len(m.train) == len(m.items) - len(m.val)


def test_zip_slip_and_zip_bomb_are_refused(tmp_path):
    ws = Workspace(tmp_path / "outputs")
    corpus.zip_slip(tmp_path / "slip.zip")
    corpus.zip_bomb(tmp_path / "bomb.zip")
    r = ingest("zips", [tmp_path / "slip.zip", tmp_path / "bomb.zip"], IngestSettings(), ws=ws)
    reasons = dict(r.refused)
    assert "zip-slip" in reasons["slip.zip/../../escaped.png"]
    assert "absolute" in reasons["slip.zip//abs/escaped2.png"]
    assert "zip-bomb" in reasons["bomb.zip/huge.png"]
    assert "nested archive" in reasons["bomb.zip/nested.zip"]
    assert sorted(Path(i.source).name for i in r.accepted) == ["fine.png", "inside.png"]
    inside = next(i for i in r.accepted if i.source.endswith("inside.png"))
    assert inside.caption == "a caption from the zip"
    assert not (tmp_path / "escaped.png").exists() and not Path("/abs/escaped2.png").exists()


def test_zip_member_cap(tmp_path):
    corpus.zip_slip(tmp_path / "z.zip")
    r = ingest("z", [tmp_path / "z.zip"], IngestSettings(zip_max_members=2), ws=Workspace(tmp_path / "o"))
    assert "over the 2 limit" in dict(r.refused)["z.zip"]


def test_adding_again_dedupes_against_the_dataset(world):
    src, _, ws, _ = world
    ingest("shop", [src], IngestSettings(), ws=ws)
    r = ingest("shop", [src / "good photo.jpg"], IngestSettings(), ws=ws)
    assert not r.accepted and "duplicate" in r.refused[0][1]


def test_min_side_depends_on_family(tmp_path):
    (tmp_path / "in").mkdir()
    corpus.photo(1, (300, 300)).save(tmp_path / "in" / "p.png")
    ws = Workspace(tmp_path / "o")
    assert ingest("a", [tmp_path / "in"], family="tiny", ws=ws).accepted
    r = ingest("b", [tmp_path / "in"], family="sdxl", ws=ws)
    assert "at least 512 px" in r.refused[0][1]


def test_edited_caption_is_saved(report):
    _, _, _, ws = report
    item = mf.load("shop", ws).items[0]
    mf.set_caption("shop", item.file, "  my own words ", ws)
    again = next(i for i in mf.load("shop", ws).items if i.file == item.file)
    assert (again.caption, again.caption_source) == ("my own words", "edited")


def test_bad_dataset_names_are_refused(tmp_path):
    for bad in ("../evil", "", "a/b", "x" * 70):
        with pytest.raises(StudioError, match="not allowed"):
            ingest(bad, [tmp_path], ws=Workspace(tmp_path / "o"))


def test_cli_report_lists_accepted_and_refused(tmp_path):
    src = tmp_path / "in"
    corpus.write_corpus(src)
    r = run_cli("dataset", "add", "cli", str(src), env={"STUDIO_OUTPUTS": str(tmp_path / "o")})
    assert r.returncode == 0, r.stderr
    assert "accepted 8, refused 8" in r.stdout.splitlines()[0]
    assert "- in/bomb.png: its header claims" in r.stdout
    show = run_cli("dataset", "show", "cli", env={"STUDIO_OUTPUTS": str(tmp_path / "o")})
    assert show.returncode == 0 and "[val  ]" in show.stdout
    missing = run_cli("dataset", "show", "nope", env={"STUDIO_OUTPUTS": str(tmp_path / "o")})
    assert missing.returncode == 2 and "No image set named 'nope'" in missing.stderr


def test_damaged_manifest_is_reported_not_overwritten(world):
    src, _, ws, _ = world
    ingest("shop", [src / "good photo.jpg"], IngestSettings(), ws=ws)
    path = mf.dataset_dir("shop", ws) / "manifest.json"
    path.write_text("{ half a manifest")
    with pytest.raises(StudioError, match="damaged"):
        ingest("shop", [src / "cmyk.jpg"], IngestSettings(), ws=ws)
    assert path.read_text() == "{ half a manifest"
