"""Test-only: run many ``studio`` commands in one process, each with its own stdout/stderr.

    python tests/faults/cli_batch.py CASES.json   # [{"argv": [...], "watch": "DIR"} or "look": "DIR", ...]

Prints a JSON list of {rc, stdout, stderr, watched}: an exception that escapes ``studio.cli.main``
is printed into that case's stderr as the traceback a user would see, so the test's "no
traceback" check still holds; ``watched`` lists DIR (hidden entries too) after the case, and
DIR is then removed so one wrongly accepted case does not mask the next ("look": listed only). The bad-input corpus
uses it to avoid paying the torch import once per case; a few cases still run as their own
``python -m studio`` process.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import sys
import traceback


class _CurrentStderr:
    """Log records go to whatever sys.stderr is now (the case's buffer)."""

    def write(self, s: str) -> int:
        return sys.stderr.write(s)

    def flush(self) -> None:
        sys.stderr.flush()


def run(case: dict) -> dict:
    from studio.cli import main

    logging.getLogger().setLevel(logging.INFO if "-v" in case["argv"][:1] else logging.WARNING)  # as main() would
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(case["argv"])
        except SystemExit as e:  # argparse errors
            rc = e.code if isinstance(e.code, int) else 1
        except BaseException:  # what `python -m studio` would print
            traceback.print_exc()
            rc = 1
    look = case.get("look")  # listed, left as it is
    if look:
        listing = sorted(os.listdir(look)) if os.path.isdir(look) else []
        return {"rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue(), "watched": listing}
    watch = case.get("watch")
    watched = sorted(os.listdir(watch)) if watch and os.path.isdir(watch) else []
    if watched:
        shutil.rmtree(watch)
    return {"rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue(), "watched": watched}


def batch(cases: list[dict], env: dict | None = None, timeout: int = 900) -> list[dict]:
    """Run ``cases`` in one child process (from a test); returns one result per case."""
    import subprocess
    import tempfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(cases, f)
    try:
        env = {**os.environ, **(env or {}), "PYTHONPATH": str(root)}
        r = subprocess.run([sys.executable, __file__, f.name], cwd=root, env=env, capture_output=True, text=True,
                           timeout=timeout)
    finally:
        os.unlink(f.name)
    if r.returncode != 0:
        raise AssertionError(f"the batch runner itself failed (rc {r.returncode}):\n{r.stderr[-3000:]}")
    return json.loads(r.stdout)


def main(path: str) -> None:
    logging.basicConfig(stream=_CurrentStderr(), level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with open(path, encoding="utf-8") as f:
        cases = json.load(f)
    results = [run(c) for c in cases]
    sys.stdout.write(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1])
