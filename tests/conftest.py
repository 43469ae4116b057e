import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test that drove a browser or a ``studio serve`` carries what the server logged and
    what each open page showed (tests/e2e/studio_page.py): a timeout alone says only that something
    never appeared."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and rep.when == "call":
        from e2e.studio_page import failure_report

        for title, text in failure_report():
            rep.sections.append((title, text))


def trainings_under(folder: str) -> list[int]:
    """Pids of ``studio train`` processes whose command line names a path under ``folder``."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue  # gone meanwhile
        if "studio" in args and "train" in args and any(a.startswith(folder) for a in args):
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="module", autouse=True)
def no_training_outlives_its_module(tmp_path_factory):
    """Trainings run in their own session, so a test that fails before stopping one (a 100000-step
    run in tests/faults) would leave it on the machine's cores for the rest of the suite (CI run 16:
    an hour). When a module ends, whatever training it started under this worker's temp folder is killed."""
    yield
    import signal

    for pid in trainings_under(str(tmp_path_factory.getbasetemp())):
        try:
            os.killpg(pid, signal.SIGKILL)  # its own process group (studio/jobs/runner.py)
        except OSError:
            pass


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
