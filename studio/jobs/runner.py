"""The job runner: trainings as background processes, their records, the per-device queue.

See the package docstring (:mod:`studio.jobs`) for the statuses and the GPU policy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..config import JobSettings, TrainSettings, apply_sets
from ..errors import StudioError
from ..paths import Workspace
from . import records as rr
from .progress import Follower, Progress
from .records import RunRecord

log = logging.getLogger(__name__)

LIVE = ("queued", "running")
ENDED = ("finished", "stopped", "failed", "interrupted", "cancelled")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class TrainRequest:
    adapter: str
    dataset: str
    preset: str | None = None
    sets: tuple[str, ...] = ()  # "key=value" overrides, as `studio train --set`
    model: str = "tiny"
    device: str = "auto"
    dtype: str = "auto"

    def args(self, device: str, resume: bool) -> list[str]:
        """The `studio train` arguments of this request on a resolved device."""
        out = ["--dataset", self.dataset, "--name", self.adapter, "--model", self.model,
               "--device", device, "--dtype", self.dtype]
        out += ["--preset", self.preset] if self.preset else []
        for kv in self.sets:
            out += ["--set", kv]
        return out + (["--resume"] if resume else [])


@dataclass(frozen=True)
class RunSnapshot:
    """Everything the page shows about one run, read from its records. Times: Unix seconds."""
    id: str
    adapter: str
    dataset: str
    status: str  # queued | running | finished | stopped | failed | interrupted | cancelled
    step: int
    total: int  # 0 until the first progress event
    loss: float | None
    it_per_s: float
    eta_s: float | None
    losses: list[tuple[int, float]]
    val_losses: list[tuple[int, float]]
    warnings: list[str]
    samples: list[tuple[int, str, str]]  # (step, png path, prompt), oldest first
    error: str  # the trainer's message (failed) or what happened (interrupted); "" otherwise
    adapter_path: str | None  # the finished/stopped run's .safetensors
    created: float
    started: float | None
    ended: float | None
    exit_code: int | None  # None while running or when another server started the process
    stderr_tail: str
    queue_position: int | None  # 1 = next on its device; None unless queued
    can_resume: bool
    device: str  # the device slot: "cpu", "cuda:0", ...
    request: TrainRequest | None = None
    pid: int | None = None
    stopping: bool = False  # Stop was pressed; the run is saving its adapter
    resume_of: str | None = None
    resumed_by: str | None = None

    @property
    def live(self) -> bool:
        return self.status in LIVE

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total) if self.total else 0.0


class JobRunner:
    """Starts, queues, stops, resumes and follows trainings under ``outputs/runs/``.

    Safe to call from several threads (Gradio handlers); several runners on one workspace
    (a restarted server next to a dying one) serialise through a lock file.
    """

    def __init__(self, ws: Workspace | None = None, settings: JobSettings | None = None):
        self.ws = ws or Workspace()
        self.settings = settings or JobSettings()
        self._lock = threading.RLock()
        self._procs: dict[str, subprocess.Popen] = {}
        self._followers: dict[str, Follower] = {}
        self._records: dict[str, RunRecord] = {}
        self._mtimes: dict[str, tuple[int, int]] = {}  # run.json mtimes of the cached records
        self._depth = 0  # re-entrant use of the lock file (flock is per open file)
        self.poll()  # re-attach: live runs of an earlier server are followed from here on

    # ------------------------------------------------------------------ public API
    def start(self, req: TrainRequest) -> RunSnapshot:
        """Start a training now, or queue it while its device is busy."""
        device = _check_request(req, self.ws)
        with self._locked():
            self._refresh_all()
            return self._snapshot(self._create(req, device, resume=False, resume_of=None))

    def stop(self, run_id: str) -> RunSnapshot:
        """Running: SIGINT to its process group (the trainer saves a usable adapter).
        Queued: cancelled. Anything else: unchanged."""
        with self._locked():
            rec = self._refresh(self._get(run_id))
            if rec.status == "queued":
                rec.status, rec.ended = "cancelled", time.time()
                self._save(rec)
            elif rec.status == "running" and rec.stop_requested is None:
                if rr.is_alive(rec.pid, rec.proc_start):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(rec.pid, signal.SIGINT)  # own session: pgid == pid
                rec.stop_requested = time.time()
                self._save(rec)
            self._advance_queue()
            return self._snapshot(rec)

    def resume(self, run_id: str) -> RunSnapshot:
        """Continue an interrupted (or stopped) run: same request, ``--resume`` from its
        newest checkpoint (a fresh start when it died before the first one)."""
        with self._locked():
            self._refresh_all()
            old = self._get(run_id)
            if not self._can_resume(old):
                raise StudioError(f"Run {run_id} cannot be resumed: it is {old.status}"
                                  f"{' and was resumed as ' + old.resumed_by if old.resumed_by else ''}.",
                                  "Only interrupted or stopped runs can be resumed, once, while they are "
                                  "their adapter's newest run.")
            req = TrainRequest(**{**old.request, "sets": tuple(old.request.get("sets", ()))})
            new = self._create(req, old.device, resume=self._has_checkpoint(old.adapter), resume_of=old.id)
            old.resumed_by = new.id
            self._save(old)
            return self._snapshot(new)

    def snapshot(self, run_id: str) -> RunSnapshot:
        with self._locked():
            self._refresh_all()
            self._advance_queue()
            return self._snapshot(self._get(run_id))

    def runs(self) -> list[RunSnapshot]:
        """Every run, newest first."""
        with self._locked():
            self.poll()
            return [self._snapshot(r) for r in self._newest_first()]

    def active(self) -> RunSnapshot | None:
        """The newest running run, else the newest queued one, else None."""
        with self._locked():
            self.poll()
            for status in LIVE[::-1]:
                for rec in self._newest_first():
                    if rec.status == status:
                        return self._snapshot(rec)
            return None

    def poll(self) -> None:
        """Refresh every run's status from its records and start queued runs whose device
        is free. The server calls this on a timer; every read above calls it too."""
        with self._locked():
            self._refresh_all()
            self._advance_queue()

    def gpu_busy(self) -> bool:
        """True while a training process is alive on a CUDA device."""
        with self._locked():
            self._refresh_all()
            return any(d.startswith("cuda") for d in self._busy_devices())

    # ------------------------------------------------------------------ records
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self.ws.runs.mkdir(parents=True, exist_ok=True)
            with open(self.ws.runs / ".lock", "a+") as f:
                _flock(f)
                self._depth = 1
                try:
                    yield
                finally:
                    self._depth = 0

    def _folder(self, run_id: str) -> Path:
        return self.ws.runs / run_id

    def _save(self, rec: RunRecord) -> None:
        rec.save(self._folder(rec.id))
        self._records[rec.id] = rec
        self._mtimes[rec.id] = _mtime(self._folder(rec.id) / rr.RECORD)

    def _get(self, run_id: str) -> RunRecord:
        if not isinstance(run_id, str) or not run_id or "/" in run_id or run_id.startswith("."):
            raise StudioError(f"No training run {str(run_id)[:80]!r}.")
        rec = self._records.get(run_id) or RunRecord.load(self._folder(run_id))
        if rec is None:
            raise StudioError(f"No training run {run_id!r}.", "Pick one from the list of runs.")
        self._records[run_id] = rec
        return rec

    def _load_all(self) -> list[RunRecord]:
        """Every record on disk; a run.json is re-read only when its mtime changed."""
        out = []
        for folder in sorted(self.ws.runs.iterdir()) if self.ws.runs.is_dir() else []:
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            mtime, cached = _mtime(folder / rr.RECORD), self._records.get(folder.name)
            if cached is None or self._mtimes.get(folder.name) != mtime:
                cached = RunRecord.load(folder)
                if cached is None or cached.id != folder.name:
                    continue
                self._records[cached.id], self._mtimes[cached.id] = cached, mtime
            out.append(cached)
        return out

    def _newest_first(self) -> list[RunRecord]:
        return sorted(self._records.values(), key=lambda r: (r.created, r.id), reverse=True)

    def _follower(self, rec: RunRecord) -> Progress:
        f = self._followers.get(rec.id)
        if f is None:
            f = self._followers[rec.id] = Follower(self._folder(rec.id) / rr.EVENTS)
        return f.update()

    # ------------------------------------------------------------------ status
    def _refresh_all(self) -> None:
        for rec in self._load_all():
            self._refresh(rec)

    def _refresh(self, rec: RunRecord) -> RunRecord:
        """Derive the status from the events file and the process; persist changes."""
        if rec.status in ("queued", "cancelled") or rec.pid_gone:
            return rec
        proc = self._procs.get(rec.id)
        if proc is not None:  # our own child: the OS knows best (and reaps it, with its exit code)
            alive = proc.poll() is None
        else:  # started by an earlier server: the pid must still be that very process
            alive = rr.is_alive(rec.pid, rec.proc_start)
        prog = self._follower(rec)  # after the liveness check: a dead process wrote all it will
        before = dataclasses.asdict(rec)
        if not alive:
            rec.pid_gone = True
            rec.exit_code = proc.returncode if proc is not None else rec.exit_code
            rec.stderr_tail = rr.tail(self._folder(rec.id) / rr.STDERR, self.settings.stderr_tail_lines)
            self._procs.pop(rec.id, None)
        rec.status, rec.error = _derive(rec, prog, alive)
        if rec.status in ENDED and rec.ended is None:
            rec.ended = time.time()
        if dataclasses.asdict(rec) != before:
            self._save(rec)
        return rec

    def _busy_devices(self) -> set[str]:
        return {r.device for r in self._records.values() if r.pid and not r.pid_gone}

    def _advance_queue(self) -> None:
        busy = self._busy_devices()
        for rec in sorted(self._records.values(), key=lambda r: (r.created, r.id)):
            if rec.status == "queued" and rec.device not in busy:
                self._launch(rec)
                busy.add(rec.device)

    def _queue_position(self, rec: RunRecord) -> int | None:
        if rec.status != "queued":
            return None
        ahead = [r for r in self._records.values() if r.status == "queued" and r.device == rec.device
                 and (r.created, r.id) < (rec.created, rec.id)]
        return len(ahead) + 1

    def _has_checkpoint(self, adapter: str) -> bool:
        folder = self.ws.adapters / adapter / "checkpoints"
        return folder.is_dir() and any(p.name.startswith("step-") for p in folder.iterdir())

    def _can_resume(self, rec: RunRecord) -> bool:
        if rec.status not in ("interrupted", "stopped") or rec.resumed_by:
            return False
        newest = max((r for r in self._records.values() if r.adapter == rec.adapter),
                     key=lambda r: (r.created, r.id))
        if newest.id != rec.id:  # a later run of this adapter owns its checkpoints now
            return False
        return rec.status == "interrupted" or self._has_checkpoint(rec.adapter)

    # ------------------------------------------------------------------ processes
    def _create(self, req: TrainRequest, device: str, resume: bool, resume_of: str | None) -> RunRecord:
        live = [r for r in self._records.values() if r.adapter == req.adapter and r.status in LIVE]
        if live:
            raise StudioError(f"Adapter {req.adapter!r} is already being trained (run {live[0].id}, "
                              f"{live[0].status}).", "Stop that run first or choose another adapter name.")
        queued = [r for r in self._records.values() if r.status == "queued"]
        busy = device in self._busy_devices() or any(r.device == device for r in queued)
        if busy and len(queued) >= self.settings.max_queued:
            raise StudioError(f"The training queue is full ({len(queued)} waiting).",
                              "Wait for a run to finish, or cancel a queued one.")
        rec = RunRecord(id=rr.new_id(req.adapter), adapter=req.adapter, dataset=req.dataset,
                        request=dataclasses.asdict(req), device=device, created=time.time(),
                        resume=resume, resume_of=resume_of)
        rec.args = req.args(device, resume)
        self._save(rec)
        if not busy:
            self._launch(rec)
        return rec

    def _launch(self, rec: RunRecord) -> None:
        folder = self._folder(rec.id)
        cmd = [sys.executable, "-m", "studio", "train", *rec.args, "--events", str(folder / rr.EVENTS)]
        try:
            with open(folder / rr.STDOUT, "ab") as out, open(folder / rr.STDERR, "ab") as err:
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                        start_new_session=True, env=_child_env(self.ws))
        except OSError as e:
            rec.status, rec.error, rec.ended, rec.pid_gone = "failed", f"Could not start training: {e}", \
                time.time(), True
            self._save(rec)
            return
        self._procs[rec.id] = proc
        rec.pid, rec.proc_start = proc.pid, rr.process_start(proc.pid)
        rec.status, rec.started = "running", time.time()
        self._save(rec)
        log.info("run %s started (pid %d): %s", rec.id, proc.pid, " ".join(cmd))

    # ------------------------------------------------------------------ snapshots
    def _snapshot(self, rec: RunRecord) -> RunSnapshot:
        p = self._follower(rec) if rec.pid else Progress()
        req = TrainRequest(**{**rec.request, "sets": tuple(rec.request.get("sets", ()))})
        return RunSnapshot(
            id=rec.id, adapter=rec.adapter, dataset=rec.dataset, status=rec.status, step=p.step, total=p.total,
            loss=p.loss, it_per_s=p.it_per_s if rec.status == "running" else 0.0,
            eta_s=p.eta_s if rec.status == "running" else None, losses=list(p.losses),
            val_losses=list(p.val_losses), warnings=list(p.warnings), samples=list(p.samples), error=rec.error,
            adapter_path=p.adapter_path, created=rec.created, started=rec.started, ended=rec.ended,
            exit_code=rec.exit_code, stderr_tail=rec.stderr_tail, queue_position=self._queue_position(rec),
            can_resume=self._can_resume(rec), device=rec.device, request=req, pid=rec.pid,
            stopping=rec.status == "running" and rec.stop_requested is not None,
            resume_of=rec.resume_of, resumed_by=rec.resumed_by)


def _derive(rec: RunRecord, prog: Progress, alive: bool) -> tuple[str, str]:
    """(status, error) of a started run."""
    if prog.end:
        return prog.end, prog.error
    if alive:
        return "running", ""
    if rec.exit_code is not None and rec.exit_code > 0:  # died before its events file opened
        last = rec.stderr_tail.strip().splitlines()[-1:] or [f"exit code {rec.exit_code}"]
        return "failed", f"The training process failed: {last[0]}"
    how = f" (killed by {_signal_name(-rec.exit_code)})" if rec.exit_code and rec.exit_code < 0 else ""
    return "interrupted", (f"The training process ended before finishing{how}: it was killed, ran out of "
                           "memory, or the machine restarted. Resume continues from its last checkpoint.")


def _mtime(path: Path) -> tuple[int, int]:
    """Changes with every atomic rewrite (new inode) even within one mtime tick."""
    try:
        st = path.stat()
        return st.st_ino, st.st_mtime_ns
    except OSError:
        return -1, -1


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def _check_request(req: TrainRequest, ws: Workspace) -> str:
    """Refuse a request that cannot start (names, dataset, settings); return its device slot."""
    from ..adapters.library import check_name
    from ..data import manifest as mf

    check_name(req.adapter)
    if not (mf.dataset_dir(req.dataset, ws) / "manifest.json").is_file():
        raise StudioError(f"No dataset named {req.dataset!r}.", "Add images to a dataset first.")
    if not isinstance(req.sets, tuple) or not all(isinstance(s, str) for s in req.sets):
        raise StudioError("Settings overrides must be a tuple of 'key=value' strings.")
    apply_sets(TrainSettings(), list(req.sets))  # unknown keys and out-of-range values fail here
    if req.preset:
        from ..train.presets import load_preset

        apply_sets(load_preset(req.preset), list(req.sets))
    return resolve_device(req.device)


def resolve_device(device: str) -> str:
    """The device slot a training occupies: "cpu", "cuda:N", "mps"; "auto" asks torch."""
    if not isinstance(device, str) or not _DEVICE.match(device):
        raise StudioError(f"Device {str(device)[:40]!r} is not known.", "Use auto, cpu, cuda or cuda:N.")
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda:0" if device == "cuda" else device


def _child_env(ws: Workspace) -> dict[str, str]:
    """The training process writes into this workspace and imports this very studio package."""
    pkg_parent = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "STUDIO_OUTPUTS": str(ws.root.resolve()), "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": pkg_parent + (os.pathsep + path if path else "")}


def _flock(f) -> None:
    try:
        import fcntl
    except ImportError:  # not POSIX: one server per workspace
        return
    fcntl.flock(f.fileno(), fcntl.LOCK_EX)
