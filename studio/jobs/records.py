"""One run on disk: ``outputs/runs/<id>/run.json`` (+ ``events.jsonl``, ``stdout.log``, ``stderr.log``).

``run.json`` is rewritten atomically whenever something about the run changes, so a
reader (another server, the CLI, a person with ``cat``) always finds valid JSON. The
process is identified by its pid *and* its start time: after a reboot or a long time a
pid can belong to another program, which must never be taken for the training (or
sent a signal).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..paths import atomic_write_bytes

log = logging.getLogger(__name__)

RECORD = "run.json"
EVENTS = "events.jsonl"
STDOUT = "stdout.log"
STDERR = "stderr.log"
_BAR = re.compile(r"^.{0,40}\d+%\|")  # a tqdm line


@dataclass
class RunRecord:
    """What is stored in run.json. Times are Unix seconds (float); None = not yet."""
    id: str
    adapter: str
    dataset: str
    request: dict[str, Any]  # the TrainRequest's fields
    device: str  # the device slot it trains on: "cpu", "cuda:0", ...
    args: list[str] = field(default_factory=list)  # the `studio train` arguments
    planned_steps: int = 0  # from the preset + overrides when known before the model loads
    status: str = "queued"  # last status seen: queued/running/finished/stopped/failed/interrupted/cancelled
    created: float = 0.0
    started: float | None = None
    ended: float | None = None
    pid: int | None = None
    proc_start: float | None = None  # the process's start time (psutil), guards against pid reuse
    pid_gone: bool = False  # the process has been seen ended (its device is free)
    exit_code: int | None = None
    stderr_tail: str = ""
    error: str = ""
    resume: bool = False  # started with --resume
    resume_of: str | None = None  # the interrupted/stopped run this one continues
    resumed_by: str | None = None  # the run that continued this one
    stop_requested: float | None = None
    version: int = 1

    def save(self, folder: Path) -> None:
        data = json.dumps(dataclasses.asdict(self), indent=1, ensure_ascii=False)
        atomic_write_bytes(folder / RECORD, data.encode("utf-8"))

    @classmethod
    def load(cls, folder: Path) -> RunRecord | None:
        """The record in ``folder``; None if it is missing or damaged (logged)."""
        try:
            raw = json.loads((folder / RECORD).read_text(encoding="utf-8"))
            known = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in raw.items() if k in known})
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as e:
            log.warning("ignoring damaged run record %s: %s", folder / RECORD, e)
            return None


def new_id(adapter: str) -> str:
    """Sortable by creation time, readable, unique: ``20261124-131700-neon-3f2a``."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{adapter}-{secrets.token_hex(2)}"


def process_start(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def is_alive(pid: int | None, start: float | None) -> bool:
    """True when ``pid`` runs and is the very process that was started (not a zombie)."""
    import psutil

    if not pid or start is None:
        return False
    try:
        p = psutil.Process(pid)
        # create_time is boot time + ticks; the kernel's boot time can wobble by a second
        return abs(p.create_time() - start) < 2.0 and p.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def tail(path: Path, lines: int, max_bytes: int = 16384) -> str:
    """Last ``lines`` non-empty lines of a log; progress-bar redraws (\\r) count as lines."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - max_bytes))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    kept: list[str] = []
    for line in (p.rstrip() for p in text.replace("\r", "\n").split("\n")):
        if not line.strip():
            continue
        if kept and _BAR.match(line) and _BAR.match(kept[-1]):
            kept[-1] = line  # a progress bar redraw replaces the previous one
        else:
            kept.append(line)
    return "\n".join(kept[-lines:])


def mtime(path: Path) -> tuple[int, int]:
    """Changes with every atomic rewrite (new inode) even within one mtime tick."""
    try:
        st = path.stat()
        return st.st_ino, st.st_mtime_ns
    except OSError:
        return -1, -1
