"""Issue 11 report: run the fault and bad-input suites, tally what was injected/tried and
what was survived/handled, and append the table to benchmarks/RESULTS.md.

    python benchmarks/faults_report.py            # all suites (kill -9 takes the longest)
    python benchmarks/faults_report.py --from tally.json   # format a tally already collected

The tests record each case through the ``tally`` fixture (tests/conftest.py); this script
sets FAULTS_TALLY so they write it, then counts by suite and kind.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import record  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SUITES = ["tests/test_fail_early.py", "tests/faults/test_bad_inputs.py", "tests/faults/test_disk_full.py",
          "tests/faults/test_kill.py",
          "tests/faults/test_http.py", "tests/faults/test_load.py", "tests/faults/test_server_kill.py"]

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
    ("two ingests into one image set at once (the page's upload and sample buttons, two browsers, the CLI) each saved the manifest they had loaded: the last one dropped the other's images (16 of 21 listed, 5 unlisted files)", "`data.manifest.locked`: ingest and caption edits hold the set's lock (flock)"),
    ("the Generate tab had no API endpoint: its button's event is drawn per page by `gr.render`, so `gradio_client` could not call it", "`/generate` endpoint on the form's fields, in the button's concurrency group"),
]


def run(tally: Path) -> float:
    env = {**os.environ, "FAULTS_TALLY": str(tally), "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUITES], cwd=ROOT, env=env)
    return time.perf_counter() - t0


def _load_line(b: dict) -> str:
    """The load test's numbers (tests/faults/test_load.py records them on its burst row)."""
    two = b.get("second_burst", {"sent": 0, "answered": 0, "refused": 0})
    return (f"**Load:** {b['sent']} + {two['sent']} requests sent, {b['answered']} + {two['answered']} answered, "
            f"{b['refused']} + {two['refused']} refused (queue full); training {b['steps_per_s_quiet']} steps/s "
            f"quiet, {b['steps_per_s_burst']} during the burst; server RSS {b['rss_before_mb']} / {b['rss_peak_mb']}"
            f" / {b['rss_after_mb']} MB before / peak / after ({b.get('rss_after_second_mb')} MB after a second "
            "burst). ")


def table(rows: list[dict], seconds: float | None) -> str:
    by: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        by[r["suite"], r["kind"]].append(r)
    lines = ["| suite | kind | tried / injected | handled / survived |", "|---|---|---|---|"]
    for (suite, kind), rs in sorted(by.items()):
        tried = sum(1 for r in rs if r.get("fired", True))
        lines.append(f"| {suite} | {kind} | {tried} | {sum(r['ok'] for r in rs if r.get('fired', True))} |")
    bad = [r for r in rows if r["suite"] == "bad input"]
    kills = [r for r in rows if r["suite"] == "kill -9" and r.get("fired")]
    disk = [r for r in rows if r["suite"] == "disk full"]
    lost = sum(r.get("bytes_lost", 0) for r in rows)
    http = [r for r in rows if r["suite"] == "http"]
    burst = [r for r in rows if r["suite"] == "load" and r["kind"] == "generate burst"]
    served = [r for r in rows if r["suite"] == "server kill -9"]
    failed = [r for r in rows if not r["ok"]]
    summary = (f"\n**Faults injected / survived:** kill -9 {len(kills)} / {sum(r['ok'] for r in kills)}, "
               f"disk full {len(disk)} / {sum(r['ok'] for r in disk)}. "
               f"**Bad inputs tried / handled:** {len(bad)} / {sum(r['ok'] for r in bad)} "
               f"in {len({r['kind'] for r in bad})} kinds. **Bytes lost:** {lost}. "
               f"**HTTP cases tried / handled:** {len(http)} / {sum(r['ok'] for r in http)}. "
               f"**Server kill -9 injected / survived:** {len(served)} / {sum(r['ok'] for r in served)}. "
               + "".join(_load_line(b) for b in burst) +
               f"**Cases failed:** {len(failed)}{': ' + ', '.join(r['case'] for r in failed) if failed else ''}."
               + (f" Wall time of the suites: {seconds:.0f} s." if seconds else ""))
    bugs = "\n\nBugs found, with their fixes:\n\n| bug | fix |\n|---|---|\n" + \
        "\n".join(f"| {b} | {f} |" for b, f in BUGS)
    not_yet = ("\n\nNot covered yet (after the library, engine, jobs and UI branches merge): adapter-file "
               "corpus, export on a full disk, prompts and `<lora:>` tags, fuzzing.")
    return "\n".join(lines) + summary + bugs + not_yet


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--from", dest="source", help="format an existing tally JSON instead of running the suites")
    args = p.parse_args()
    seconds = None
    if args.source:
        rows = json.loads(Path(args.source).read_text())
    else:
        tally = Path(tempfile.mkdtemp()) / "tally.json"
        seconds = run(tally)
        rows = json.loads(tally.read_text()) if tally.is_file() else []
    record("Faults and bad input (issue 11)", table(rows, seconds))


if __name__ == "__main__":
    main()
