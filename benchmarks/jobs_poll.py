"""What the page's once-a-second poll costs the server: JobRunner reads with many past runs.

Builds a workspace of N ended runs (each with an events file of M progress events) plus
one live run (a stand-in `sleep` process recorded as an earlier server's training), then
times: the first read (a restarted server: every events file parsed once), steady-state
``runs()`` / ``active()`` / ``snapshot()`` with nothing new, and ``snapshot()`` after the
live run appended one event. Events are read incrementally from the last file offset.

    python benchmarks/jobs_poll.py [N_RUNS] [EVENTS_PER_RUN]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import record  # noqa: E402

from studio import events as ev  # noqa: E402
from studio.jobs import JobRunner, RunRecord  # noqa: E402
from studio.jobs.events_file import JsonlSink  # noqa: E402
from studio.jobs.records import process_start  # noqa: E402
from studio.paths import Workspace  # noqa: E402


def fake_run(ws: Workspace, i: int, events: int, pid: int | None = None) -> Path:
    folder = ws.runs / f"20260101-{i:06d}-a{i}-0000"
    live = pid is not None
    RunRecord(id=folder.name, adapter=f"a{i}", dataset="d", request={"adapter": f"a{i}", "dataset": "d"},
              device="cpu", status="running" if live else "finished", created=float(i), started=float(i),
              ended=None if live else float(i + 1), pid=pid or 1, proc_start=process_start(pid) if live else 0.0,
              pid_gone=not live).save(folder)
    sink = JsonlSink(folder / "events.jsonl")
    for s in range(1, events + 1):
        sink.emit(ev.Progress(s, events, 0.1, 1e-4, 2.0, 1.0))
    if not live:
        sink.emit(ev.Finished(events, f"/x/a{i}.safetensors", "last", False, 9.0))
    sink.close()
    return folder


def timed(fn, repeat: int = 1) -> float:
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t) / repeat * 1000


def main() -> None:
    n, m = (int(a) for a in (sys.argv[1:] + ["200", "1000"])[:2])
    proc = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ws = Workspace(Path(tmp))
            for i in range(n):
                fake_run(ws, i, m)
            live = fake_run(ws, n, m, pid=proc.pid)
            t0 = time.perf_counter()
            runner = JobRunner(ws)
            runner.runs()  # parses every events file once
            first = (time.perf_counter() - t0) * 1000
            rows = [("first read (new server): JobRunner() + runs()", first),
                    ("runs(), nothing new", timed(runner.runs, 20)),
                    ("active(), nothing new", timed(runner.active, 20)),
                    ("snapshot(live), nothing new", timed(lambda: runner.snapshot(live.name), 20))]
            sink = JsonlSink(live / "events.jsonl")

            def one_more():
                sink.emit(ev.Progress(m, m, 0.1, 1e-4, 2.0, 1.0))
                runner.snapshot(live.name)

            rows.append(("snapshot(live) after 1 new event", timed(one_more, 20)))
            sink.close()
    finally:
        proc.kill()
    table = "| call | ms |\n|---|---|\n" + "\n".join(f"| {name} | {ms:.1f} |" for name, ms in rows)
    table += f"\n\nLoad average during the run (shared machine): {os.getloadavg()[0]:.1f}."
    record(f"Job runner reads with {n} past runs of {m} events each + 1 live run", table)


if __name__ == "__main__":
    main()
