"""`studio serve` as a child process for tests (the file-route, HTTP, load and kill suites).

The server writes its output to a log file, never to a pipe nobody reads: a pipe fills
after 64 KiB and then blocks the server mid-request (a burst of requests logs a lot).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from e2e.studio_page import CHROMIUM, FLAGS, OPEN_SERVERS, free_port  # noqa: F401 (CHROMIUM, FLAGS: for the suites)

ROOT = Path(__file__).resolve().parents[1]
SECRET = "studio-secret-outside-the-workspace"


@dataclass
class Served:
    """A running ``studio serve``: its URL, workspace, log file and process."""
    proc: subprocess.Popen
    url: str
    ws: Path
    log: Path
    base: Path = field(default=Path("."))  # the folder around the workspace (sandbox fixture)
    uploads: Path | None = None  # Gradio's upload cache (GRADIO_TEMP_DIR) when the test chose it

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.is_file() else ""

    def stop(self, timeout: float = 30) -> None:
        if (self.proc, self.log) in OPEN_SERVERS:
            OPEN_SERVERS.remove((self.proc, self.log))
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)


def start_server(ws: Path, *args: str, log: Path | None = None, env: dict | None = None,
                 timeout: float = 180, uploads: Path | None = None) -> Served:
    """Start ``studio serve --port P *args`` on workspace ``ws``; return once the page answers."""
    port = free_port()
    full_env = {**os.environ, "STUDIO_OUTPUTS": str(ws), "GRADIO_ANALYTICS_ENABLED": "False",
                "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {})}
    full_env.pop("STUDIO_AUTH", None)
    if uploads is not None:
        full_env["GRADIO_TEMP_DIR"] = str(uploads)
    log = log or ws.parent / f"serve-{port}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "studio", "serve", "--port", str(port), *args], cwd=ROOT,
                                env=full_env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    s = Served(proc, f"http://127.0.0.1:{port}", ws, log, uploads=uploads)
    OPEN_SERVERS.append((proc, log))  # a failing test's report shows its log and threads (tests/conftest.py)
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(s.url + "/", timeout=2)
            return s
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"studio serve exited with {proc.returncode}:\n{s.output()[-4000:]}")
            time.sleep(0.5)
    s.stop()
    raise RuntimeError(f"studio serve did not come up in {timeout:.0f} s:\n{s.output()[-4000:]}")


def sandbox(base: Path, *args: str) -> Served:
    """A server whose workspace has a sibling holding a secret (``base/outside.txt``) and an
    upload cache of its own (``base/uploads``) with a secret beside it (``base/beside-uploads.txt``)."""
    ws = base / "outputs"
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "inside.txt").write_text("hello from the workspace")
    (base / "outside.txt").write_text(SECRET)
    (base / "beside-uploads.txt").write_text(SECRET)
    uploads = base / "uploads"
    uploads.mkdir(exist_ok=True)
    s = start_server(ws, *args, uploads=uploads)
    s.base = base
    return s


def wait_until(cond, timeout: float, what: str, every: float = 0.2):
    """Poll ``cond()`` until it returns something truthy (returned); on timeout fail naming ``what``
    and the last value seen. Tests wait on the condition they need, never on a fixed sleep."""
    deadline, got = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last seen: {got!r})")


def wait_while_progressing(cond, progress, stall: float, what: str, every: float = 1.0):
    """Poll ``cond()`` until truthy (returned) for as long as ``progress()`` keeps changing: fail only
    once it has not changed for ``stall`` seconds, naming ``what`` and the last progress seen. A busy
    machine slows a training down, so a fixed deadline for a whole run is a guess (test_flow's 600 s
    ran out in a CI run at load 8 while the run was still stepping); a run that stops stepping, or a
    page that never shows the end of a run that ended, still fails after ``stall`` seconds."""
    last, since = progress(), time.monotonic()
    while True:
        got = cond()
        if got:
            return got
        now, seen = time.monotonic(), progress()
        if seen != last:
            last, since = seen, now
        elif now - since > stall:
            raise AssertionError(f"gave up waiting for {what}: no progress for {stall:.0f} s (last progress: {last!r})")
        time.sleep(every)


def events_written(root: Path) -> int:
    """Bytes of every run's event log under the workspace ``root``: grows while any run steps."""
    from studio.jobs.records import EVENTS
    from studio.paths import Workspace

    return sum(f.stat().st_size for f in Workspace(Path(root)).runs.glob(f"*/{EVENTS}") if f.is_file())


# An <img> is checked only once the browser reports it loaded (`complete` with a decoded size);
# before that naturalWidth is 0 — a first look right after the element appears races the download.
_LOADED = "e => (e.complete && e.naturalWidth > 0) ? [e.naturalWidth, e.naturalHeight, getComputedStyle(e).imageRendering] : null"


def loaded_image(img, timeout: float = 120) -> tuple[int, int, str]:
    """(naturalWidth, naturalHeight, image-rendering) of a Playwright ``img`` locator, once loaded.
    The locator is re-resolved on every poll, so an element the page re-renders is followed; the
    whole ``timeout`` covers the element appearing too (not Playwright's default 60 s)."""
    end = time.monotonic() + timeout
    img.wait_for(state="attached", timeout=timeout * 1000)  # the element itself may come late (a slow draw)
    got = wait_until(lambda: img.evaluate(_LOADED), max(1.0, end - time.monotonic()), "the image to finish loading")
    return got[0], got[1], got[2]
