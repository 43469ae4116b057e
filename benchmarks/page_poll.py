"""What one open page's polling costs the server while a training runs (and while nothing changes).

Starts ``studio serve`` from a checkout (``--root``, default this one) on a scratch workspace
with one image set and one live run (a stand-in ``sleep`` process recorded as an earlier
server's training; the benchmark appends one progress event every 0.5 s, as a training
would), opens the page in headless Chromium on the Train tab, and counts the server process's
CPU seconds (user + system, psutil) over a window. The same with the run ended: nothing changes.

    python benchmarks/page_poll.py [--seconds 60] [--compare /path/to/main/checkout]

``--compare`` measures another checkout first (the page before a change). The table replaces its
section of RESULTS.md in place.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(HERE)]

from studio import events as ev  # noqa: E402
from studio.jobs import RunRecord  # noqa: E402
from studio.jobs.events_file import JsonlSink  # noqa: E402
from studio.jobs.records import process_start  # noqa: E402
from studio.paths import Workspace  # noqa: E402

TITLE = "Page polling CPU: one open page, server process only"


def workspace(root: Path, pid: int) -> Path:
    from studio.data.ingest import ingest
    from studio.models.tiny.sample_data import write_style_set

    ws = Workspace(root)
    photos = root.parent / "photos"
    write_style_set(photos, "neon", 6, seed=1)
    ingest("shop", [photos], ws=ws)
    folder = ws.runs / "20260101-000000-live-0000"
    RunRecord(id=folder.name, adapter="live", dataset="shop", request={"adapter": "live", "dataset": "shop"},
              device="cpu", status="running", created=time.time(), started=time.time(), pid=pid,
              proc_start=process_start(pid)).save(folder)
    return folder / "events.jsonl"


def server_pid(url: str) -> int:
    """The process listening on ``url``'s port (the ``studio serve`` just started)."""
    import psutil

    port = int(url.rstrip("/").rsplit(":", 1)[1])
    for c in psutil.net_connections("tcp"):
        if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid:
            return c.pid
    raise RuntimeError(f"no process listens on port {port}")


def cpu_s(proc) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def measure(root: Path, seconds: float) -> tuple[float, float]:
    """(CPU % of one core while the run steps, CPU % while nothing changes)."""
    import psutil

    from e2e.studio_page import browser_page, studio_server, tab

    sleeper = subprocess.Popen(["sleep", str(int(seconds * 3 + 600))], start_new_session=True)
    with tempfile.TemporaryDirectory(prefix="page-poll-") as tmp:
        ws = Path(tmp) / "outputs"
        events = workspace(ws, sleeper.pid)
        try:
            with studio_server(ws, root=root) as url, browser_page(url) as page:
                server = psutil.Process(server_pid(url))
                tab(page, "Train")
                page.wait_for_timeout(10_000)  # settle: first loads done
                sink, stop = JsonlSink(events), threading.Event()

                def steps():
                    i = 0
                    while not stop.is_set():
                        i += 1
                        sink.emit(ev.Progress(i, 100_000, 0.1, 1e-4, 2.0, 100.0))
                        stop.wait(0.5)

                writer = threading.Thread(target=steps, daemon=True)
                writer.start()
                proc = server
                a = cpu_s(proc)
                page.wait_for_timeout(seconds * 1000)
                running = (cpu_s(proc) - a) / seconds * 100
                stop.set()
                writer.join()
                sink.emit(ev.Finished(1, "/x/live.safetensors", "last", False, 1.0))
                sink.close()
                sleeper.kill()
                page.wait_for_timeout(10_000)  # the page shows the finished run
                a = cpu_s(proc)
                page.wait_for_timeout(seconds * 1000)
                idle = (cpu_s(proc) - a) / seconds * 100
        finally:
            sleeper.kill()
    return running, idle


def write_section(rows: list[tuple[str, float, float]], seconds: float) -> None:
    from common import record

    table = ("| page code | CPU while a run steps (% of one core) | CPU while nothing changes (% of one core) |\n"
             "|---|---|---|\n" + "\n".join(f"| {label} | {r:.1f} | {i:.1f} |" for label, r, i in rows))
    record(TITLE, table, f"{seconds:.0f} s windows · load average {os.getloadavg()[0]:.1f} "
                         "(a shared machine: compare rows, not absolute values)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--compare", type=Path, default=None, help="another checkout to measure first (before)")
    args = p.parse_args()
    rows = []
    if args.compare:
        rows.append(("before (" + args.compare.name + ")", *measure(args.compare, args.seconds)))
    rows.append(("after (this checkout)", *measure(ROOT, args.seconds)))
    write_section(rows, args.seconds)


if __name__ == "__main__":
    main()
