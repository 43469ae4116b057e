"""Bad names and paths for the adapter library (issue 11, bad-input corpus): `studio import --name`,
`studio adapters rename/duplicate`, `studio export NAME` and `studio export --out PATH`.

Names: traversal, absolute, separators, hidden, Windows device names, unicode look-alikes
(fullwidth '／' and '．', Cyrillic 'е', zero-width and combining marks), 300 characters,
empty, whitespace, control characters. Each is refused with "is not allowed", exit 2, no
traceback, the library byte-identical. `--out` is the user's explicit choice of file, so it
may be outside outputs/, but it must be a .safetensors file, never inside the library or the
datasets, never replace a file without --overwrite, and fail readably (no OSError trace).
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from cli_batch import batch  # noqa: E402
from test_adapters_import import _good  # noqa: E402
from test_bad_inputs import NAMES  # noqa: E402

from studio.adapters.importer import import_file  # noqa: E402
from studio.paths import Workspace  # noqa: E402

LOOK_ALIKES = ["a／b", "．．", "．．／evil", "neon．", "ｎｅｏｎ／..／x", "neon\u200b", "ne\u0301on", "neon\t", "\u202eneon",
               "neon:1", "neon*", "neon?", "neon%2e%2e"]
ALL_NAMES = NAMES + LOOK_ALIKES


def _tree(root: Path, skip: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file() and skip not in p.parents}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("names")
    ws = Workspace(tmp / "outputs")
    (tmp / "good.safetensors").write_bytes(_good(tmp))
    import_file(tmp / "good.safetensors", name="neon", ws=ws)
    user = tmp / "user"
    user.mkdir()
    (user / "taken.safetensors").write_bytes(b"the user's own file")
    (user / "taken2.safetensors").write_bytes(b"replace me")
    (user / "dir.safetensors").mkdir()
    (user / "link").symlink_to(ws.adapters / "neon")
    return tmp, ws, user


def _name_cases(ws: Workspace) -> list[tuple[str, str, list[str]]]:
    good = str(ws.root.parent / "good.safetensors")
    cases = []
    for n in ALL_NAMES:
        cases += [("import --name", n, ["import", good, f"--name={n}"]),
                  ("rename", n, ["adapters", "rename", "--", "neon", n]),
                  ("duplicate", n, ["adapters", "duplicate", "--", "neon", n]),
                  ("export NAME", n, ["export", "--", n])]
    return cases


def test_bad_names_are_refused_and_the_library_is_unchanged(world, tally):
    tmp, ws, _ = world
    library_before, outside_before = _tree(ws.adapters, ws.adapters / "x"), _tree(tmp, ws.root)
    cases = _name_cases(ws)
    results = batch([{"argv": argv, "look": str(ws.adapters)} for _, _, argv in cases], {"STUDIO_OUTPUTS": str(ws.root)})
    wrong = []
    for (where, name, _), r in zip(cases, results):
        ok = r["rc"] == 2 and "is not allowed" in r["stderr"] and "Traceback" not in r["stderr"] \
            and r["watched"] == ["neon"]
        tally.record("bad input", f"name ({where})", repr(name)[:40], ok)
        if not ok:
            wrong.append((where, name, r["rc"], r["stderr"][-400:], r["watched"]))
    assert not wrong, "\n".join(map(repr, wrong))
    assert _tree(ws.adapters, ws.adapters / "x") == library_before, "the library changed"
    assert _tree(tmp, ws.root) == outside_before, "something was written outside outputs/"


def _out_cases(ws: Workspace, user: Path) -> list[tuple[str, list[str], str]]:
    """(case, extra export args, expected: 'ok' or a fragment of the refusal)"""
    return [
        ("existing user file", ["--out", str(user / "taken.safetensors")], "already exists"),
        ("the library's own file", ["--out", str(ws.adapters / "neon" / "neon.safetensors"), "--overwrite"],
         "the adapter library"),
        ("into the datasets", ["--out", str(ws.datasets / "x.safetensors")], "the datasets"),
        ("through a symlink into the library", ["--out", str(user / "link" / "new.safetensors")], "the adapter library"),
        ("a folder", ["--out", str(user / "dir.safetensors")], "is a folder"),
        ("empty", ["--out", ""], "not a usable file name"),
        ("blank", ["--out", "  "], "not a usable file name"),
        ("NUL inside", ["--out", str(user / "a\x00b.safetensors")], "not a usable file name"),
        ("300 characters", ["--out", str(user / ("a" * 300 + ".safetensors"))], "file systems allow 255"),
        ("not .safetensors", ["--out", str(user / "style.png")], "does not end in .safetensors"),
        ("no suffix", ["--out", str(user / "style")], "does not end in .safetensors"),
        ("replace with --overwrite", ["--out", str(user / "taken2.safetensors"), "--overwrite"], "ok"),
        ("fullwidth slashes", ["--out", str(user / "／etc／passwd.safetensors")], "ok"),
        ("fullwidth dots", ["--out", str(user / "．．／evil.safetensors")], "ok"),
        ("device name", ["--out", str(user / "CON.safetensors")], "ok"),
    ]


def test_export_out_paths_have_known_outcomes(world, tally):
    tmp, ws, user = world
    cases = _out_cases(ws, user)
    library_before, before = _tree(ws.adapters, ws.adapters / "x"), _tree(tmp, ws.root)
    results = batch([{"argv": ["export", "neon", *extra], "look": str(ws.adapters)} for _, extra, _ in cases],
                    {"STUDIO_OUTPUTS": str(ws.root)})
    wrong, written = [], set()
    for (case, extra, want), r in zip(cases, results):
        if want == "ok":
            out = Path(extra[1])
            ok = r["rc"] == 0 and out.is_file() and out.read_bytes()[:8] != b"replace "
            written.add(str(out.relative_to(tmp)))
        else:
            ok = r["rc"] == 2 and want in r["stderr"] and r["stderr"].startswith("error: ")
        ok = ok and "Traceback" not in r["stderr"] and r["watched"] == ["neon"]
        tally.record("bad input", "export --out", case, ok)
        if not ok:
            wrong.append((case, want, r["rc"], r["stderr"][-400:]))
    assert not wrong, "\n".join(map(repr, wrong))
    after = _tree(tmp, ws.root)
    assert _tree(ws.adapters, ws.adapters / "x") == library_before, "the library changed"
    assert {k for k in after if after[k] != before.get(k)} == written, "a file other than the asked-for one changed"
    assert (user / "taken.safetensors").read_bytes() == b"the user's own file"
    assert not [p for p in user.rglob(".*")], "a temp file was left behind"
    assert os.listdir(user / "dir.safetensors") == []
