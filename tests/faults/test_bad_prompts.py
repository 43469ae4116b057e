"""Bad prompts through `studio generate` (issue 11, bad-input corpus): 10,000 and 30,000
characters, control characters, unknown, malformed and oversized `<lora:>` tags, look-alike
names, weights out of range. Each has a known outcome: drawn (a long prompt with a warning
that the model reads only its first tokens) or refused with exit 2 and a message before the
model loads (no "loaded" line in the -v log), never a traceback; the library is unchanged.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from cli_batch import batch  # noqa: E402
from test_adapters_import import _good  # noqa: E402

from studio.adapters.importer import import_file  # noqa: E402
from studio.paths import Workspace  # noqa: E402

OK, WARN = "ok", "ok+warning"
PROMPTS = {  # case: (prompt, extra args, expected outcome or refusal fragment)
    "10,000 characters": ("x" * 10_000, [], WARN),
    "3,000 emoji": ("\U0001F600" * 3_000, [], WARN),
    "30,000 characters": ("y" * 30_000, [], "at most 20,000"),
    "NUL": ("a red mug\x00", [], "(U+0000)"),
    "ANSI escape": ("a red mug \x1b[31mred\x1b[0m", [], "(U+001B)"),
    "DEL": ("a red mug\x7f", [], "(U+007F)"),
    "C1 control": ("a red mug\x85", [], "(U+0085)"),
    "control in negative": ("a red mug", ["--negative", "blurry\x07"], "negative holds the control character"),
    "tabs and newlines": ("a red mug,\n\ton white\r\n", [], OK),
    "bidi override": ("a red \u202emug", [], "(U+202E)"),  # reverses what is read: refused like a control
    "zero-width": ("a red mug\u200b\ufeff", [], OK),
    "empty prompt": ("", [], WARN),  # drawn, with a word that the picture is the model's idea of anything
    "known tag": ("a red mug <lora:neon:0.8>", [], OK),
    "weight 0 tag": ("a red mug <lora:neon:0>", [], OK),
    "tag with spaces": ("a red mug <lora: neon : 0.5 >", [], OK),
    "fullwidth digit weight": ("a red mug <lora:neon:１>", [], OK),
    "nested angle brackets": ("a red mug <<lora:neon:0.5>>", [], OK),
    "unknown tag": ("a red mug <lora:gold:1>", [], "No adapter named 'gold'"),
    "look-alike name": ("a red mug <lora:ｎｅｏｎ:1>", [], "No adapter named 'ｎｅｏｎ'"),
    "upper-case name": ("a red mug <LORA:NEON:1>", [], "No adapter named 'NEON'"),
    "traversal name": ("a red mug <lora:../neon:1>", [], "No adapter named '../neon'"),
    "5,000-character name": ("a red mug <lora:" + "z" * 5_000 + ":1>", [], "No adapter named 'zzzz"),
    "unclosed tag": ("a red mug <lora:neon:1", [], "not closed"),
    "trailing open tag": ("a red mug <lora:neon:0.5><lora:", [], "not closed"),
    "empty tag": ("a red mug <lora:>", [], "names no adapter"),
    "weight not a number": ("a red mug <lora:neon:x>", [], "is not a number"),
    "weight overflow": ("a red mug <lora:neon:1e309>", [], "outside -4…4"),
    "weight NaN": ("a red mug <lora:neon:nan>", [], "outside -4…4"),
    "weight too large": ("a red mug <lora:neon:5>", [], "outside -4…4"),
    "too many parts": ("a red mug <lora:neon:1:1:1>", [], "too many"),
    "named twice": ("<lora:neon:1> a red mug <lora:neon:0.5>", [], "named twice"),
    "tag and --lora": ("a red mug <lora:neon:1>", ["--lora", "neon:0.5"], "named twice"),
    "--lora unknown": ("a red mug", ["--lora", "gold"], "No adapter named 'gold'"),
    "--lora weight inf": ("a red mug", ["--lora", "neon:inf"], "outside -4…4"),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prompts")
    ws = Workspace(tmp / "outputs")
    (tmp / "good.safetensors").write_bytes(_good(tmp))
    import_file(tmp / "good.safetensors", name="neon", ws=ws)
    return tmp, ws


def _library(ws: Workspace) -> dict[str, str]:
    return {str(p.relative_to(ws.adapters)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(ws.adapters.rglob("*")) if p.is_file()}


def test_every_bad_prompt_has_its_outcome_through_studio_generate(world, tally):
    tmp, ws = world
    before = _library(ws)
    names = list(PROMPTS)
    argv = [["-v", "generate", "--prompt", PROMPTS[n][0], *PROMPTS[n][1], "--steps", "1", "--device", "cpu",
             "--out", str(tmp / "images" / f"{i}.png")] for i, n in enumerate(names)]
    results = batch([{"argv": a, "look": str(ws.adapters)} for a in argv], {"STUDIO_OUTPUTS": str(ws.root)})
    wrong = []
    for i, (name, r) in enumerate(zip(names, results)):
        want = PROMPTS[name][2]
        drawn = (tmp / "images" / f"{i}.png").is_file()
        if want in (OK, WARN):
            ok = r["rc"] == 0 and drawn and ("warning: the prompt is" in r["stdout"]) == (want == WARN)
        else:
            errors = [line for line in r["stderr"].splitlines() if line.startswith("error: ")]
            ok = r["rc"] == 2 and not drawn and errors and want in errors[0] and len(errors[0]) < 400 \
                and "studio.models.loading: loaded" not in r["stderr"]
        ok = ok and "Traceback" not in r["stderr"] and r["watched"] == ["neon"]
        tally.record("bad input", "prompt", name, ok)
        if not ok:
            wrong.append((name, want, r["rc"], r["stdout"][-300:], r["stderr"][-500:]))
    assert not wrong, "\n".join(map(repr, wrong))
    assert _library(ws) == before, "the library changed"
    assert sorted(p.name for p in (tmp / "images").iterdir()) == sorted(
        f"{i}.png" for i, n in enumerate(names) if PROMPTS[n][2] in (OK, WARN)), "stray files beside the images"
