"""Output paths, non-regular inputs and control characters (issue 15, items 3 and 5).

Output paths: `generate --out`, `grid --out`, `export --out` and `sample-data` all pass the one
rule in `studio.paths.check_output`: never into the adapter library or datasets, never over a
symlink, folder, FIFO or device, clear refusals for folders, read-only places, bad and over-long
names, all before the model loads. Inputs: a FIFO or /dev/zero handed to `dataset add` is refused
before it is opened and leaves no empty set behind. Text from files (names, zip members, captions)
reaches the terminal with its control characters escaped; binary caption sidecars are ignored.
An unexpected exception is one line plus a crash log, never a traceback.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from cli_batch import batch  # noqa: E402
from conftest import run_cli  # noqa: E402
from data import corpus  # noqa: E402

from studio.data import manifest as mf  # noqa: E402
from studio.errors import StudioError  # noqa: E402
from studio.paths import Workspace, write_output  # noqa: E402
from studio.text import shown  # noqa: E402


def _tree(root: Path) -> dict[str, str]:
    """Every entry under root: regular files by hash, anything else by its kind (a FIFO stays a FIFO)."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(root))] = (hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode)
                                         else stat.S_IFMT(st.st_mode))
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("paths")
    ws = Workspace(tmp / "outputs")
    (ws.adapters / "neon").mkdir(parents=True)
    (ws.adapters / "neon" / "neon.safetensors").write_bytes(b"the adapter")
    (ws.adapters / "neon" / "preview.png").write_bytes(b"the preview")
    (ws.datasets / "set").mkdir(parents=True)
    user = tmp / "user"
    user.mkdir()
    os.mkfifo(user / "fifo.png")
    os.mkfifo(user / "fifo.safetensors")
    os.mkfifo(user / "many-1.png")
    (user / "folder.png").mkdir()
    (user / "link.png").symlink_to(user / "target.png")
    (user / "target.png").write_bytes(b"the user's picture")
    (user / "libdir").symlink_to(ws.adapters / "neon")
    (user / "file").write_bytes(b"a file, not a folder")
    (user / "samples").mkdir()
    os.mkfifo(user / "samples" / "neon_000.png")
    return tmp, ws, user


def _out_cases(ws: Workspace, user: Path) -> list[tuple[str, list[str], str]]:
    neon = ws.adapters / "neon"
    gen = ["generate", "--steps", "1"]
    grid = ["grid", "--steps", "1", "--prompt", "a", "--prompt", "b"]
    return [
        ("generate onto the adapter file", [*gen, "--out", str(neon / "neon.safetensors")], "does not end in .png"),
        ("generate onto the adapter preview", [*gen, "--out", str(neon / "preview.png")], "the adapter library"),
        ("generate into the datasets", [*gen, "--out", str(ws.datasets / "set" / "x.png")], "the datasets"),
        ("generate through a symlinked folder", [*gen, "--out", str(user / "libdir" / "x.png")], "the adapter library"),
        ("generate onto a FIFO", [*gen, "--out", str(user / "fifo.png")], "not a regular file"),
        ("generate onto a device", [*gen, "--out", "/dev/null"], "does not end in .png"),
        ("generate onto a folder", [*gen, "--out", str(user / "folder.png")], "is a folder"),
        ("generate onto a symlink", [*gen, "--out", str(user / "link.png")], "symbolic link"),
        ("generate under a file", [*gen, "--out", str(user / "file" / "x.png")], "not a folder"),
        ("generate, 300-byte name", [*gen, "--out", str(user / ("n" * 300 + ".png"))], "file systems allow 255"),
        ("generate, empty name", [*gen, "--out", ""], "not a usable file name"),
        ("generate --count 2 onto a FIFO", [*gen, "--count", "2", "--seed", "0", "--out", str(user / "many.png")],
         "not a regular file"),
        ("grid onto the library", [*grid, "--out", str(neon / "preview.png")], "the adapter library"),
        ("grid onto a FIFO", [*grid, "--out", str(user / "fifo.png")], "not a regular file"),
        ("grid cell onto a FIFO", [*grid, "--out", str(user / "samples" / "neon.png")], "not a regular file"),
        ("export onto a FIFO", ["export", "neon", "--out", str(user / "fifo.safetensors")], "not a regular file"),
        ("sample-data into the datasets", ["sample-data", str(ws.datasets / "mine"), "--count", "1"], "the datasets"),
        ("sample-data into the library", ["sample-data", str(user / "libdir"), "--count", "1"], "the adapter library"),
        ("sample-data onto a file", ["sample-data", str(user / "file"), "--count", "1"], "not a folder"),
        ("sample-data over a FIFO", ["sample-data", str(user / "samples"), "--style", "neon", "--count", "1"],
         "not a regular file"),
        ("sample-data seed beyond 32 bits", ["sample-data", str(user / "s2"), "--seed", str(2**64)], "out of range"),
    ]


def test_output_paths_are_refused_before_any_work(world, tally):
    tmp, ws, user = world
    # 'grid cell onto a FIFO': the grid's first cell is <stem>-r0-c0.png
    os.mkfifo(user / "samples" / "neon-r0-c0.png")
    cases = _out_cases(ws, user)
    before = _tree(tmp)
    results = batch([{"argv": ["-v", *argv], "look": str(ws.adapters)} for _, argv, _ in cases],
                    {"STUDIO_OUTPUTS": str(ws.root)})
    wrong = []
    for (case, argv, want), r in zip(cases, results):
        ok = r["rc"] == 2 and want in r["stderr"] and r["stderr"].count("error: ") == 1 \
            and "Traceback" not in r["stderr"] and "studio.models.loading: loaded" not in r["stderr"]
        tally.record("bad input", "output path", case, ok)
        if not ok:
            wrong.append((case, want, r["rc"], r["stderr"][-500:]))
    assert not wrong, "\n".join(map(repr, wrong))
    assert _tree(tmp) == before, "a refused output changed something"
    assert stat.S_ISFIFO((user / "fifo.png").lstat().st_mode)


def test_a_read_only_place_is_a_readable_refusal(world, monkeypatch, tally):
    """The OS refusing the write (read-only file system, permission) is one StudioError, nothing written."""
    from studio import paths

    _, ws, user = world

    def refuse(path, data):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(paths, "atomic_write_bytes", refuse)
    with pytest.raises(StudioError, match="read-only") as e:
        write_output(user / "new.png", b"x", ws, suffixes=(".png",))
    tally.record("bad input", "output path", "read-only file system", "nothing was written" in str(e.value))
    assert not (user / "new.png").exists()
    if os.geteuid() != 0:  # root writes anywhere; as a user, a real read-only folder
        ro = user / "ro"
        ro.mkdir(mode=0o555)
        with pytest.raises(StudioError, match="read-only"):
            paths.check_output(ro / "x.png", ws)


def _ingest_fifo(tmp: Path, ws: Workspace, name: str, path: str):
    return run_cli("dataset", "add", name, path, env={"STUDIO_OUTPUTS": str(ws.root)})


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero"])
def test_non_regular_inputs_are_refused_before_opening(world, kind, tally):
    tmp, ws, user = world
    path = str(user / "fifo.png") if kind == "fifo" else kind
    r = _ingest_fifo(tmp, ws, f"nonreg-{kind.strip('/').replace('/', '-')}", path)  # a FIFO would hang
    name = f"nonreg-{kind.strip('/').replace('/', '-')}"
    ok = r.returncode == 1 and "not an image file: not read" in r.stdout and "Traceback" not in r.stderr \
        and not (ws.datasets / name).exists()
    tally.record("bad input", "ingest source", kind, ok)
    assert ok, (r.returncode, r.stdout[-500:], r.stderr[-1000:], list(ws.datasets.iterdir()))


def _messy(tmp: Path) -> Path:
    src = tmp / "messy"
    src.mkdir()
    png = corpus._png(corpus.photo(7))
    (src / "evil\x1b[31m\nFAKE + line.png").write_bytes(png)
    (src / "bin.png").write_bytes(corpus._png(corpus.photo(8)))
    (src / "bin.txt").write_bytes(b"caption\x00\xff\xfe binary")
    (src / "esc.png").write_bytes(corpus._png(corpus.photo(9)))
    (src / "esc.txt").write_text("red \x1b[2J cleared")
    with zipfile.ZipFile(tmp / "members.zip", "w") as z:
        z.writestr("\x1b]0;title\x07\u202eevil.png", corpus._png(corpus.photo(10)))
    return src


def test_text_from_files_is_escaped_and_binary_captions_ignored(tmp_path, tally):
    ws = Workspace(tmp_path / "outputs")
    src = _messy(tmp_path)
    env = {"STUDIO_OUTPUTS": str(ws.root)}
    add = run_cli("dataset", "add", "messy", str(src), str(tmp_path / "members.zip"), env=env)
    show = run_cli("dataset", "show", "messy", env=env)
    m = mf.load("messy", ws)
    captions = {Path(it.source).name: (it.caption, it.caption_source) for it in m.items}
    ok = add.returncode == 0 and show.returncode == 0
    for out in (add.stdout, show.stdout):
        ok = ok and not any(c in out for c in "\x1b\x07\u202e") and "\nFAKE" not in out
    ok = ok and captions["bin.png"][1] == "template" and "bin.txt: caption file is not text" in add.stdout
    ok = ok and captions["esc.png"][1] == "template"
    tally.record("bad input", "control characters", "names, members, captions (ingest + show)", ok)
    assert ok, (add.stdout, show.stdout, captions)
    assert "evil\\x1b[31m\\nFAKE" in add.stdout and "\\u202eevil" in add.stdout


def test_shown_escapes_controls_and_keeps_text():
    assert shown("neon style") == "neon style"
    assert shown("a\x1b[31mb\nc\x7f\u202ed\x9b") == "a\\x1b[31mb\\nc\\x7f\\u202ed\\x9b"
    assert shown("line\nnext", keep_newlines=True) == "line\nnext"
    assert shown("é ü 日本") == "é ü 日本"
    assert shown("x" * 50, limit=10) == "x" * 10 + "…"


def test_an_unexpected_exception_is_one_line_and_a_crash_log(tmp_path, tally):
    """A bug (here: a monkeypatched command that raises) never prints a traceback."""
    code = ("import sys; from studio.cli import data; "
            "data.cmd_dataset_show = lambda a: 1 / 0; "
            "from studio.cli import main; sys.exit(main(['dataset', 'show', 'x']))")
    import subprocess

    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "STUDIO_OUTPUTS": str(tmp_path / "outputs"), "PYTHONPATH": str(ROOT)})
    logs = list((tmp_path / "outputs" / "logs").glob("crash-*.log"))
    ok = r.returncode == 70 and r.stderr.count("\n") == 1 and "ZeroDivisionError" in r.stderr \
        and "Traceback" not in r.stderr and len(logs) == 1 and str(logs[0]) in r.stderr \
        and "Traceback" in logs[0].read_text() and not [p for p in logs[0].parent.iterdir() if p.name.startswith(".")]
    tally.record("bad input", "crash", "unexpected exception -> one line + crash log", ok)
    assert ok, (r.returncode, r.stderr, logs)
