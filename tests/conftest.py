import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network


@pytest.fixture(scope="session")
def tiny_model():
    """The embedded tiny model on CPU, loaded once per test session."""
    from studio.models.loading import load_model

    return load_model("tiny", device="cpu")


@pytest.fixture(scope="session")
def engine(tiny_model):
    from studio.generate import Engine

    return Engine(tiny_model)


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None):
    import subprocess

    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "studio", *args], cwd=cwd or ROOT,
                          capture_output=True, text=True, env=full_env, timeout=600)


class Tally:
    """Counts of faults injected/survived and bad inputs tried/handled, by kind, for the
    issue-11 report (`benchmarks/faults_report.py` sets FAULTS_TALLY to collect them)."""

    def __init__(self):
        self.rows: list[dict] = []

    def record(self, suite: str, kind: str, case: str, ok: bool, **extra) -> None:
        self.rows.append({"suite": suite, "kind": kind, "case": case, "ok": bool(ok), **extra})


@pytest.fixture(scope="session")
def tally():
    import json

    t = Tally()
    yield t
    out = os.environ.get("FAULTS_TALLY")
    if out:
        path = Path(out)
        old = json.loads(path.read_text()) if path.is_file() else []
        path.write_text(json.dumps(old + t.rows, indent=1))


@pytest.fixture(scope="session")
def sandbox_server(tmp_path_factory):
    """One ``studio serve`` for the file-route and HTTP tests (tests/servers.py: a secret
    beside the workspace and beside the upload cache; uploads capped at 1 MB)."""
    from servers import sandbox

    s = sandbox(tmp_path_factory.mktemp("serve"), "--max-file-size-mb", "1")
    yield s
    s.stop()
