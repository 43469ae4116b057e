"""Issue 11 report: run the fault and bad-input suites, tally what was injected/tried and
what was survived/handled, and write the "Faults and bad input" section of benchmarks/RESULTS.md
(replaced in place when it is already there).

    python benchmarks/faults_report.py                    # every suite (kill -9 takes the longest)
    python benchmarks/faults_report.py --skip tests/faults/test_kill.py --add old-tally.json
    python benchmarks/faults_report.py --keep t.json      # ... and keep the tally (rows + wall time)
    python benchmarks/faults_report.py --from t.json      # format a tally already collected

The tests record each case through the ``tally`` fixture (tests/conftest.py); this script sets
FAULTS_TALLY so they write it, then counts by suite and kind. Suites are every
``tests/faults/test_*.py`` plus tests/test_fail_early.py, and rows are grouped by the suite and
kind the tests give them, so new suites (HTTP, load) appear without a change here.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import record  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TITLE = "Faults and bad input (issue 11)"
INPUT_SUITES = ("bad input", "fuzz")  # the rest are injected faults


def suites() -> list[str]:
    return ["tests/test_fail_early.py", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "faults").glob("test_*.py"))]


# Every bug these suites (or writing them) found, with its fix. Kept by hand: a bug is a story.
BUGS = [
    ("`studio train --set resolution=70` trained, then died at the first preview", "`studio/train/validate.py: check_settings` runs before the model loads (size multiple from the configs)"),
    ("a bad `--set` / unknown preset key was reported only after the model had loaded", "settings are parsed and checked before any heavy import or load"),
    ("`lr_unet=nan` passed the range checks (NaN compares false)", "`config.check_ranges` refuses non-finite floats"),
    ("a preset's `steps = 10.5` (TOML float) was taken as a step count", "preset values are type-checked (`config._typed`)"),
    ("a sample prompt with `{style}` crashed at the first preview (KeyError); empty `sample_prompts` crashed at the end (IndexError)", "prompts checked up front"),
    ("`final=best` without validation silently wrote the last weights", "refused before loading"),
    ("`mixed_precision=fp16` on a CPU failed inside accelerate after loading", "refused before loading"),
    ("`--resume` with no checkpoint failed after loading and caching", "checked before loading"),
    ("adapter name `CON` accepted by the trainer (it used the dataset rule); dataset `CON` accepted", "trainer uses the library rule; datasets refuse reserved names too"),
    ("names with a trailing newline (`'neon\\n'`) passed both name rules (`$` matches before `\\n`)", "`\\Z` in both patterns"),
    ("a non-NaN failure after step 1 (OSError writing a preview) gave a traceback and no way back", "the trainer names the last good checkpoint and `--resume` (`Trainer._failed`)"),
    ("checkpoint pruning deleted `step-N` in place: a kill mid-delete leaves a half checkpoint under its final name", "rename to a hidden name, then delete (`paths.remove_folder`); kill point `prune`"),
    ("re-saving an existing checkpoint deleted it before the new one was in place", "new folder renamed in first, old one moved aside (`paths.atomic_write_folder`)"),
    ("atomic writes renamed without fsync (a power cut could publish an empty file)", "fsync before the rename"),
    ("a full disk surfaced as a raw `OSError` traceback", "`paths.DiskFull`: what was not saved, that older files are intact, free space then re-run / `--resume`"),
    ("a PNG with a zip glued on (polyglot) handed over directly was unpacked as a zip", "files named as images are read as images"),
    ("a symlink member of a zip was read as image data", "refused: 'symbolic link inside the zip: not followed'"),
    ("damaged ICC profiles were copied into the stored copy; Display-P3/Adobe-RGB pixels were read as sRGB", "profiles converted to sRGB or noted and ignored; stored copies carry no metadata"),
    ("a 0x0 PNG was called 'not an accepted format'", "'a PNG file whose header is invalid'"),
    # adapter-file corpus and fuzzing (faults2)
    ("a safetensors header naming a tensor twice was read last-wins (parsers disagree on which copy counts)", "`validate.read_header` refuses duplicate keys"),
    ("a valid file whose header length starts with byte 0x80 (640, 896, … bytes) was refused as a pickle", "the declared length is tried first; pickle/zip magic only explains a length that does not fit"),
    ("keys under `diffusion_model.` were refused as LyCORIS 'full' (the `.diff` marker matched inside the name)", "`.diff`/`.diff_b` match only at a key's end"),
    ("a LoRA module with only its down (or up) matrix gave diffusers' bare KeyError text; rank 0 gave a shape mismatch", "`validate.check_pairs` and a rank-0 check name the module"),
    ("torch's pickle-protocol UserWarning (with a source line) was printed above the refusal of a code-carrying .pt", "warnings silenced around `torch.load(weights_only=True)`"),
    ("a header whose dtype is a list raised `TypeError: unhashable type` (found by hypothesis); booleans passed as shape/offset integers", "type checked before the lookup; `type(x) is int`"),
    ("`studio export --out` replaced an existing file silently, could write into the library itself (also through a symlink), and gave OSError tracebacks for empty/NUL/too-long names and folders", "`export.check_target`: .safetensors only, never inside adapters/ or datasets/, `--overwrite` to replace, readable refusals"),
    ("a malformed or unknown `<lora:>` tag was reported only after the model had loaded", "`tags.request` checks prompt, tags, names and weights against the library first (CLI and engine share it)"),
    ("a prompt longer than the text encoder reads was cut silently (the notice is hidden in quiet mode)", "the engine warns: 'the prompt is N tokens; the model reads the first M'"),
    ("prompts with control characters (NUL, ANSI escapes) or megabytes of text were accepted", "`schema.check_text`: at most 20,000 characters, no control characters"),
    ("error messages quoted a 5,000-character tag name in full", "names shortened to 80 characters in tag errors"),
    # HTTP and load (load)
    ("two ingests into one image set at once (the page's upload and sample buttons, two browsers, the CLI) each saved the manifest they had loaded: the last one dropped the other's images (16 of 21 listed, 5 unlisted files)", "`data.manifest.locked`: ingest and caption edits hold the set's lock (flock)"),
    ("the Generate tab had no API endpoint: its button's event is drawn per page by `gr.render`, so `gradio_client` could not call it", "`/generate` endpoint on the form's fields, in the button's concurrency group"),
    # values, paths and terminal text (issue 15)
    ("`studio generate --out outputs/adapters/N/N.safetensors` replaced the adapter with a PNG; `--out` onto a FIFO or device replaced the node; a folder or read-only place gave a traceback", "one output rule (`paths.check_output`) for generate/grid/export/sample-data, checked before the model loads"),
    ("about twenty unchecked values gave tracebacks: `--set steps.x=1`, seeds beyond 64 bits or negative (training: after the model loaded), numeric `sample_prompts`, a binary or folder preset, `--store-max-side 0`, `--val-fraction nan`", "one schema from the field declarations (`schema.check_fields`) for flags, `--set`, presets and page forms"),
    ("a caption template `{trigger.__class__}` ran `str.format` attribute access on user text; `{trigger:>999999999}` could allocate a gigabyte", "`schema.check_template` allows only plain named fields; `schema.fill` replaces them"),
    ("`dataset add` of a FIFO hung forever; `/dev/zero` read until memory ran out and left an empty set folder", "`stat` before opening: only folders and regular files are read; a new set with no image is removed"),
    ("`--alpha-background nan` crashed in Pillow at the first image (found by hypothesis)", "the colour is checked by the schema"),
    ("file names, zip members and captions with ANSI escapes or newlines were printed raw (a newline forged a report line); a binary sidecar became the caption", "`text.shown` escapes controls in reports and errors; binary sidecars are ignored with a note"),
    ("`--device cuda:-1`, `cuda:99999999999999999999` or an empty device gave torch RuntimeError tracebacks; a 5,000-character `--model` gave ENAMETOOLONG", "device pattern and path length declared on `ModelSettings`"),
    ("any unexpected exception printed a traceback", "one `error:` line and `outputs/logs/crash-*.log` (exit 70)"),
    # cross-site requests (issue 15)
    ("the server answered any `Host`: a DNS-rebinding page read `adapter.json` through the file route and called `do_duplicate`", "`ui/guard.py`: only loopback names, `--host` and `--allowed-hosts` are served (HTTP 400 before any route)"),
    ("a cross-site multipart `POST /gradio_api/upload` (no preflight needed) was stored in `outputs/.uploads`", "a foreign `Origin` (any method) or `Referer` (state-changing) is refused with 403 on every route"),
    ("with `--auth`, the login page embedded the API description, whose dropdown choices named every adapter and image set", "HTML pages go out with `window.gradio_api_info = null` (fetched from the login-checked route after login)"),
]

# commit subjects of the faults work (provenance for the list above)
COMMIT_WORDS = re.compile(r"fault|kill|disk|bad[- ]input|corpus|fuzz|fail before|bad (files|names|prompts)", re.I)


def commits() -> list[str]:
    try:
        out = subprocess.run(["git", "log", "--no-merges", "--format=%h %s", "main", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    seen, keep = set(), []
    for line in out.splitlines():
        if line not in seen and COMMIT_WORDS.search(line.split(" ", 1)[-1]):
            seen.add(line)
            keep.append(line)
    return keep


def run(tally: Path, skip: list[str]) -> float:
    env = {**os.environ, "FAULTS_TALLY": str(tally), "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    chosen = [x for x in suites() if x not in skip]
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *chosen], cwd=ROOT, env=env,
                   check=False)
    return time.perf_counter() - t0


def _count(rs: list[dict]) -> tuple[int, int]:
    """(tried, handled): a fuzz row stands for its examples; a kill row counts only when the kill fired."""
    fired = [r for r in rs if r.get("fired", True)]
    return sum(r.get("examples", 1) for r in fired), sum(r.get("examples", 1) for r in fired if r["ok"])


def _cells(rs: list[dict]) -> tuple[str, str]:
    tried, ok = _count(rs)
    if not tried and rs:  # only checks, no injection (e.g. the resumed adapter is bit-equal)
        return "check", f"{sum(r['ok'] for r in rs)} / {len(rs)} passed"
    return str(tried), str(ok)


def _load_line(b: dict) -> str:
    """The load test's numbers (tests/faults/test_load.py records them on its burst row)."""
    two = b.get("second_burst", {"sent": 0, "answered": 0, "refused": 0})
    return (f"**Load:** {b['sent']} + {two['sent']} requests sent, {b['answered']} + {two['answered']} answered, "
            f"{b['refused']} + {two['refused']} refused (queue full); training {b['steps_per_s_quiet']} steps/s "
            f"quiet, {b['steps_per_s_burst']} during the burst; server RSS {b['rss_before_mb']} / {b['rss_peak_mb']}"
            f" / {b['rss_after_mb']} MB before / peak / after ({b.get('rss_after_second_mb')} MB after a second "
            "burst). ")


def table(rows: list[dict], seconds: float | None, full: bool = True) -> str:
    by: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        by[r["suite"], r["kind"]].append(r)
    order = sorted(by, key=lambda k: (k[0] in INPUT_SUITES, k))
    lines = ["| suite | kind | tried / injected | handled / survived |", "|---|---|---|---|"]
    for suite, kind in order:
        tried, ok = _cells(by[suite, kind])
        lines.append(f"| {suite} | {kind} | {tried} | {ok} |")
    per_suite: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        per_suite[r["suite"]].append(r)
    faults = ", ".join(f"{s} {' / '.join(map(str, _count(rs)))}" for s, rs in sorted(per_suite.items())
                       if s not in INPUT_SUITES)
    bad = per_suite.get("bad input", [])
    fuzz = per_suite.get("fuzz", [])
    lost = sum(r.get("bytes_lost", 0) for r in rows)
    burst = [r for r in rows if r["suite"] == "load" and r["kind"] == "generate burst"]
    failed = [r for r in rows if not r["ok"] and r.get("fired", True)]
    summary = (f"\n\n**Faults injected / survived:** {faults or 'none run'}. "
               f"**Bad inputs tried / handled:** {len(bad)} / {sum(r['ok'] for r in bad)}, "
               f"{len({r['case'] for r in bad})} distinct inputs over {len({r['kind'] for r in bad})} entry points "
               f"(the same name is tried on each command). "
               f"**Fuzzing:** {sum(r.get('examples', 0) for r in fuzz)} generated examples over {len(fuzz)} targets, "
               f"{sum(not r['ok'] for r in fuzz)} failing. **Bytes lost:** {lost}. "
               + "".join(_load_line(b) for b in burst) +
               f"**Cases failed:** {len(failed)}{': ' + ', '.join(r['case'] for r in failed) if failed else ''}."
               + (f" Wall time of the suites: {seconds:.0f} s." if seconds else ""))
    bugs = "\n\nBugs found, with their fixes:\n\n| bug | fix |\n|---|---|\n" + \
        "\n".join(f"| {b} | {f} |" for b, f in BUGS)
    log = commits()
    history = ("\n\nCommits of the faults work (`git log main HEAD`):\n\n" + "\n".join(f"- {c}" for c in log)) if log else ""
    not_yet = "\n\nNot covered here: export on a full disk."
    if not full:  # a partial run: its counts only; the bugs and history are in the main section
        return "\n".join(lines) + summary
    return "\n".join(lines) + summary + bugs + history + not_yet


def write_section(title: str, body: str) -> None:
    """Replace the section ``## title`` of RESULTS.md (up to the next ``## ``), or append it."""
    record(title, body)


def _read(path: Path) -> tuple[list[dict], float | None]:
    """A tally: the fixture's plain list of rows, or {"seconds", "rows"} as --keep saves it."""
    data = json.loads(path.read_text())
    return (data, None) if isinstance(data, list) else (data["rows"], data.get("seconds"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--from", dest="source", help="format an existing tally JSON instead of running the suites")
    p.add_argument("--skip", action="append", default=[], help="a suite file not to run (repeatable)")
    p.add_argument("--add", action="append", default=[], help="also count the rows of this tally JSON (repeatable)")
    p.add_argument("--keep", help="also save the collected tally JSON here")
    p.add_argument("--only", action="append", default=[], help="run only this suite file (repeatable)")
    p.add_argument("--title", default=TITLE, help="the RESULTS.md section to write")
    args = p.parse_args()
    seconds = None
    if args.source:
        rows, seconds = _read(Path(args.source))
    else:
        tally = Path(tempfile.mkdtemp()) / "tally.json"
        skip = args.skip + ([s for s in suites() if s not in args.only] if args.only else [])
        seconds = run(tally, skip)
        rows = json.loads(tally.read_text()) if tally.is_file() else []
    for extra in args.add:
        rows += _read(Path(extra))[0]
    if args.keep:  # with the wall time, so --from can format it later
        Path(args.keep).write_text(json.dumps({"seconds": seconds, "rows": rows}, indent=1))
    write_section(args.title, table(rows, seconds, full=not args.only))


if __name__ == "__main__":
    main()
