"""Hostile values at the command line (issue 15, item 4): for every TrainSettings,
GenerateSettings and IngestSettings field, hypothesis-drawn values through ``--set`` and
flags end with exit 0, 1 or 2 and at most one readable ``error:`` line: never a traceback,
never a crash log (``outputs/logs/crash-*.log`` marks an unexpected exception), nothing
written outside ``outputs/``. Bounded and derandomized; runs ``studio.cli.main`` in-process
(the model never loads: every command stops before it, see each target).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from studio import paths  # noqa: E402
from studio.cli import main  # noqa: E402
from studio.config import GenerateSettings, IngestSettings, ModelSettings, TrainSettings  # noqa: E402
from studio.models.tiny.sample_data import write_style_set  # noqa: E402

BOUNDED = settings(max_examples=40, derandomize=True, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
RUNS: Counter = Counter()
FAILED: set[str] = set()

NASTY = ["nan", "-nan", "inf", "-inf", "1e309", "-1", "-0", "0", "1.5", "0x10", "1_000", "true", "None", "",
         " ", str(2**32), str(2**32 - 1), str(2**64), str(-2**63 - 1), "9" * 5000, "{trigger.__class__}",
         "{trigger:>999999999}", "{0}", "{trigger!r}", "{", "}", "\x1b[31mred", "a\nforged line", "\u202eevil",
         "a\x00b", "../../etc/passwd", "/dev/zero", "é" * 30_000, "a|b|c", "[1, 2]", "x" * 300]
HOSTILE = st.one_of(st.sampled_from(NASTY), st.integers(-2**70, 2**70).map(str), st.floats().map(repr),
                    st.text(max_size=30))


def leaf_paths(cls: type, prefix: str = "") -> list[str]:
    out = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(f.default_factory):
            out += leaf_paths(f.default_factory, f"{prefix}{f.name}.")
        else:
            out.append(prefix + f.name)
    return out


def flags(cls: type) -> list[str]:
    """Every non-bool field as its flag (bool flags take no value)."""
    return ["--" + f.name.replace("_", "-") for f in dataclasses.fields(cls) if str(f.type) != "bool"]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("values")
    write_style_set(root / "imgs", "neon", 1)
    return root


@pytest.fixture
def sandbox(home, monkeypatch):
    """cwd = the sandbox; every Workspace() is sandbox/outputs."""
    monkeypatch.chdir(home)
    monkeypatch.setattr(paths.Workspace.__init__, "__defaults__", (home / "outputs",))
    return home


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).parts[0] != "outputs"}


def cli(root: Path, argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse: one line (studio.cli.common.Parser)
            rc = e.code if isinstance(e.code, int) else 1
    return rc, out.getvalue(), err.getvalue()


def check(root: Path, target: str, argv: list[str]) -> None:
    RUNS[target] += 1
    before = _snapshot(root)
    rc, out, err = cli(root, argv)
    crashes = list((root / "outputs" / "logs").glob("crash-*.log"))
    problems = []
    if rc not in (0, 1, 2):
        problems.append(f"exit {rc}")
    if "Traceback" in err or crashes:
        problems.append(f"unexpected exception: {err[-600:]} {[c.read_text()[-1500:] for c in crashes]}")
    if rc == 2 and not (err.startswith("error: ") and err.count("\n") == 1):
        problems.append(f"not one readable line: {err[-600:]!r}")
    if any(c in out + err for c in "\x1b\x00\u202e"):
        problems.append("a control character reached the terminal")
    if _snapshot(root) != before:
        problems.append("something was written outside outputs/")
    for c in crashes:
        c.unlink()
    if problems:
        FAILED.add(target)
        raise AssertionError(f"studio {' '.join(map(repr, argv))}: {problems}")


@BOUNDED
@given(st.sampled_from(leaf_paths(TrainSettings)), HOSTILE)
@example("steps.x", "1")
@example("seed", "-1")
@example("seed", str(2**64))
@example("sample_prompts", "{trigger.__class__}")
def test_train_set_values(sandbox, key, value):
    """``studio train --set KEY=VALUE`` on a dataset that does not exist: the settings are read
    and checked first, so a hostile value is refused, and a good one reaches 'No image set'."""
    check(sandbox, "train --set", ["train", "--dataset", "missing", "--name", "x", "--device", "cpu",
                                   "--set", f"{key}={value}"])


@BOUNDED
@given(st.sampled_from(flags(ModelSettings)), HOSTILE)
@example("--device", "cuda:99999999999999999999")
@example("--model", "a" * 5000)
def test_model_flag_values(sandbox, flag, value):
    """``studio train --model/--device/--dtype=VALUE``: refused, or a good value reaches 'No dataset'
    (hub ids: 'pass --preset'); the model never loads."""
    check(sandbox, "train model flags", ["train", "--dataset", "missing", "--name", "x", f"{flag}={value}"])


@BOUNDED
@given(st.sampled_from(flags(GenerateSettings)), HOSTILE)
@example("--seed", str(2**64))
@example("--seed", "-1")
@example("--steps", "nan")
def test_generate_flag_values(sandbox, flag, value):
    """``studio generate --FLAG=VALUE --lora missing``: a good value reaches the unknown adapter
    (checked before the model loads), a hostile one is refused earlier."""
    check(sandbox, "generate flags", ["generate", f"{flag}={value}", "--lora", "missing-adapter"])


@BOUNDED
@given(st.sampled_from(flags(IngestSettings)), HOSTILE)
@example("--store-max-side", "0")
@example("--val-fraction", "nan")
@example("--val-fraction", "5")
@example("--caption-template", "{trigger.__class__}")
@example("--trigger", "\x1b[2Jgone")
def test_ingest_flag_values(sandbox, flag, value):
    """``studio dataset add set imgs --FLAG=VALUE``: a good value ingests the one image."""
    check(sandbox, "dataset add flags", ["dataset", "add", "values", "imgs", f"{flag}={value}"])


@BOUNDED
@given(st.sampled_from(leaf_paths(TrainSettings)), HOSTILE)
def test_preflight_set_values(sandbox, key, value):
    """``studio preflight --set``: the same schema, then the VRAM estimate on what passed."""
    check(sandbox, "preflight --set", ["preflight", "--family", "sdxl", "--set", f"{key}={value}"])


@pytest.mark.parametrize("path, form_value, set_value", [
    ("seed", -1.0, "-1"), ("seed", 1e30, str(10**30)), ("lr_unet", float("nan"), "nan"),
    ("lora.rank", 0, "0"), ("steps", float("inf"), "inf"), ("optimizer", "sgd", "sgd")])
def test_page_forms_pass_the_same_schema(path, form_value, set_value, tally):
    """The Train tab's inputs (`ui.forms.build`) and `--set` refuse a value with the same check."""
    from studio.errors import StudioError
    from studio.overlay import apply_sets
    from studio.ui import forms

    with pytest.raises(StudioError) as page:
        forms.build(TrainSettings(), [path], [form_value])
    with pytest.raises(StudioError) as flag:
        apply_sets(TrainSettings(), [f"{path}={set_value}"])
    leaf = path.split(".")[-1]
    same = str(page.value).split("=")[0] == str(flag.value).split("=")[0] == leaf
    tally.record("bad input", "page form", f"{path}={form_value!r}", same)
    assert same, (str(page.value), str(flag.value))


def test_zz_record_value_counts(tally):
    """Last in the file: one tally row per target (examples run, and whether all were handled)."""
    for name, n in sorted(RUNS.items()):
        tally.record("fuzz", f"cli values ({name})", f"{n} examples", name not in FAILED, examples=n)
