"""Fuzzing (issue 11) with hypothesis, bounded and derandomized so CI runs the same examples
in well under 30 s per target: the prompt-tag parser (any text -> a parse or a StudioError;
tags written by us parse back to themselves) and the untrusted-file path of `studio import`
(random bytes, random JSON headers, byte-mutated valid files -> refused with a StudioError or
imported; never another exception, never a half-written library entry).
Crashes found here become plain regression tests below.
"""

from __future__ import annotations

import json
import os
import struct
import sys
from collections import Counter
from functools import cache, wraps
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from studio.adapters import validate  # noqa: E402
from studio.adapters.importer import import_file  # noqa: E402
from studio.adapters.library import Library  # noqa: E402
from studio.config import ImportSettings  # noqa: E402
from studio.errors import StudioError  # noqa: E402
from studio.generate import tags  # noqa: E402
from studio.paths import Workspace  # noqa: E402

KNOWN = ["neon", "pastel", "ink-2"]
FAST = settings(max_examples=400, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=40, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
RUNS: Counter = Counter()  # examples run per target, for the report's tally
FAILED: set[str] = set()


def counted(fn):
    """Count the examples of a hypothesis target (and note a failing one) for the tally."""
    @wraps(fn)
    def run(*a, **kw):
        RUNS[fn.__name__] += 1
        try:
            return fn(*a, **kw)
        except BaseException:
            FAILED.add(fn.__name__)
            raise
    return run


PIECES = ["<lora:", "<LoRa:", ">", "<", ":", "neon", "pastel", "ink-2", "gold", "0.5", "-4", "4.0001", "nan", "inf",
          "1e309", "", " ", ",", ";", "\n", "x", "１", "ｎｅｏｎ", "..", "/", "\\", "\x00", "'", '"', "{", "}"]


def _parse_or_refuse(text: str):
    try:
        return tags.parse(text, KNOWN)
    except StudioError as e:
        assert str(e) and len(str(e)) < 1000, "an error message must stay readable"
        return None


@FAST
@given(st.text())
@example("<lora:" + "a" * 10_000 + ">")
@example("<lora:neon:" + "9" * 400 + ">")
@counted
def test_tag_parser_on_any_text_parses_or_refuses(text):
    out = _parse_or_refuse(text)
    if out is not None:
        clean, loras = out
        assert "<lora:" not in clean.lower() and all(lw.name in KNOWN for lw in loras)


@FAST
@given(st.lists(st.sampled_from(PIECES), max_size=30).map("".join))
@counted
def test_tag_parser_on_tag_shaped_text_parses_or_refuses(text):
    _parse_or_refuse(text)
    try:
        tags.request(text, [tags.LoraWeight("neon", 0.5)], KNOWN)
    except StudioError:
        pass


words = st.text(st.characters(codec="utf-8", exclude_characters="<>", exclude_categories=["Cs", "Cc"]), max_size=40)
weights = st.floats(-4, 4, allow_nan=False).map(lambda w: round(w, 3))


@FAST
@given(words, st.permutations(KNOWN).flatmap(lambda names: st.tuples(
    st.just(names), st.integers(0, len(names)), st.lists(weights, min_size=3, max_size=3),
    st.lists(st.one_of(st.none(), weights), min_size=3, max_size=3))))
@counted
def test_tags_we_write_parse_back(base, spec):
    names, n, unet, te = spec
    want = [tags.LoraWeight(names[i], unet[i], te[i]) for i in range(n)]
    written = " ".join(f"<lora:{lw.name}:{lw.unet!r}" + (f":{lw.te!r}>" if lw.te is not None else ">") for lw in want)
    clean, got = tags.parse(f"{base} {written}", KNOWN)
    assert got == want
    assert tags.parse(clean, KNOWN) == (clean, [])  # the clean prompt holds no tag any more
    assert tags.parse(clean, KNOWN)[0] == clean  # and cleaning is idempotent


# ---------------------------------------------------------------- untrusted adapter files
@cache
def _valid() -> bytes:
    """One module of a real tiny-model LoRA: small enough to mutate byte by byte."""
    from safetensors.torch import load, save
    from test_adapters_import import _good

    full = load(_good(None))
    module = next(k for k in full if k.endswith(".alpha"))[: -len(".alpha")]
    return save({k: v for k, v in full.items() if k.startswith(module + ".")}, metadata={"ss_network_dim": "2"})


def _check_file(data: bytes, folder: Path, name: str = "fuzz.safetensors") -> str:
    """Import ``data``: 'refused' or 'imported' (then removed again); anything else fails the test."""
    ws = Workspace(folder / "outputs")
    f = folder / name
    f.write_bytes(data)
    try:
        import_file(f, name="fuzzed", ws=ws)
        outcome = "imported"
    except StudioError as e:
        assert len(str(e)) < 1500, str(e)
        outcome = "refused"
    lib = Library(ws)
    left = sorted(os.listdir(lib.root)) if lib.root.is_dir() else []
    assert left == (["fuzzed"] if outcome == "imported" else []), f"library after {outcome}: {left}"
    if outcome == "imported":
        lib.get("fuzzed")  # a complete entry that reads back
        lib.delete("fuzzed")
    return outcome


@SLOW
@given(st.binary(max_size=4096), st.sampled_from(["x.safetensors", "x.pt", "x.ckpt"]))
@counted
def test_random_bytes_are_refused(tmp_path, data, name):
    assert _check_file(data, tmp_path, name) == "refused"


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=8))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                          max_leaves=12)
entry = st.fixed_dictionaries({}, optional={
    "dtype": st.one_of(st.sampled_from(["F32", "F16", "BF16", "I64", "U8", ""]), json_value),
    "shape": st.one_of(st.lists(st.integers(-2, 2**40), max_size=3), json_value),
    "data_offsets": st.one_of(st.lists(st.integers(-2, 2**40), min_size=2, max_size=2), json_value)})
header = st.dictionaries(st.sampled_from(["a.lora_down.weight", "a.lora_up.weight", "a.alpha", "__metadata__", "b"]),
                         st.one_of(entry, json_value), max_size=4)


@FAST
@given(header, st.binary(max_size=64))
@example({"a.lora_down.weight": {"dtype": ["F32"], "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4)
@example({"a.alpha": {"dtype": "F32", "shape": [True], "data_offsets": [False, 4]}}, b"\0" * 4)
@counted
def test_random_headers_pass_or_are_refused_by_the_header_checker(tmp_path_factory, head, data):
    raw = json.dumps(head).encode()
    f = tmp_path_factory.mktemp("h") / "h.safetensors"
    f.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    try:
        validate.read_header(f, ImportSettings())
    except StudioError:
        pass


def test_regression_unhashable_dtype_and_bool_shapes_are_refused(tmp_path):
    """Found by the header fuzzer: a list as dtype raised TypeError (unhashable) instead of a
    refusal; booleans passed as shape/offset integers (``isinstance(True, int)``)."""
    for head in ({"a.lora_down.weight": {"dtype": ["F32"], "shape": [1], "data_offsets": [0, 4]}},
                 {"a.alpha": {"dtype": "F32", "shape": [True], "data_offsets": [False, 4]}}):
        raw = json.dumps(head).encode()
        (tmp_path / "h.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 4)
        with pytest.raises(StudioError, match="dtype|malformed"):
            validate.read_header(tmp_path / "h.safetensors", ImportSettings())


@SLOW
@given(st.data())
@counted
def test_mutated_valid_files_are_refused_or_imported(tmp_path, data):
    good = bytearray(_valid())
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        kind = data.draw(st.sampled_from(["flip", "set", "cut", "insert"]), label="kind")
        i = data.draw(st.integers(0, len(good) - 1), label="at")
        if kind == "flip":
            good[i] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "set":
            good[i] = data.draw(st.integers(0, 255))
        elif kind == "cut":
            del good[i:i + data.draw(st.integers(1, 64))]
        else:
            good[i:i] = data.draw(st.binary(min_size=1, max_size=16))
        if not good:
            good = bytearray(b"\0")
    _check_file(bytes(good), tmp_path)


def test_the_unmutated_file_imports(tmp_path):
    assert _check_file(_valid(), tmp_path) == "imported"


def test_zz_record_fuzz_counts(tally):
    """Last in the file: one tally row per target (examples run, and whether all were handled)."""
    for name, n in sorted(RUNS.items()):
        tally.record("fuzz", name.removeprefix("test_"), f"{n} examples", name not in FAILED, examples=n)
