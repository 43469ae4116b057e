"""The job runner: trainings as background processes, their records, the per-device queue.

See the package docstring (:mod:`studio.jobs`) for the statuses and the GPU policy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator

from ..adapters import busy
from ..config import JobSettings
from ..errors import StudioError
from ..paths import Workspace, flocked
from . import records as rr
from . import launch
from .progress import Follower, Progress, derive_status
from .records import RunRecord
from .types import ENDED, LIVE, RunSnapshot, TrainRequest

log = logging.getLogger(__name__)


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
        self._held: set[str] = set()  # queued runs whose adapter is in use elsewhere (_advance_queue)
        self.poll()  # re-attach: live runs of an earlier server are followed from here on

    # ------------------------------------------------------------------ public API
    def start(self, req: TrainRequest) -> RunSnapshot:
        """Start a training now, or queue it while its device is busy."""
        if isinstance(req.sets, list):
            req = dataclasses.replace(req, sets=tuple(req.sets))
        device = launch.check_request(req, self.ws)
        launch.check_new_adapter(req, self.ws)
        with self._locked():
            self._refresh_all()
            return self._snapshot(self._create(req, device, resume=False, resume_of=None))

    def stop(self, run_id: str, force: bool = False) -> RunSnapshot:
        """Running: SIGINT to its process group, once (the trainer stops at the next step and
        saves a usable adapter). ``force``: SIGKILL now (no final save; the run becomes
        interrupted and can resume from its last checkpoint). Queued: cancelled."""
        with self._locked():
            rec = self._refresh(self._get(run_id))
            if rec.status == "queued":
                rec.status, rec.ended = "cancelled", time.time()
                self._save(rec)
            elif not rec.pid_gone and (force or rec.stop_requested is None) and self._alive(rec):
                with contextlib.suppress(ProcessLookupError):  # own session: pgid == pid
                    os.killpg(rec.pid, signal.SIGKILL if force else signal.SIGINT)
                rec.stop_requested = rec.stop_requested or time.time()
                self._save(rec)
                if force:
                    self._wait_gone(rec)
            self._advance_queue()
            return self._snapshot(self._refresh(rec))

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

    def has_live(self) -> bool:
        """True while a run this runner has read is queued or running (its cache: no disk reads)."""
        with self._lock:
            return any(r.status in LIVE for r in self._records.values())

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
            with flocked(self.ws.runs):
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
        self._mtimes[rec.id] = rr.mtime(self._folder(rec.id) / rr.RECORD)

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
            mtime, cached = rr.mtime(folder / rr.RECORD), self._records.get(folder.name)
            if cached is None or self._mtimes.get(folder.name) != mtime:
                cached = RunRecord.load(folder)
                if cached is None or cached.id != folder.name:
                    continue
                self._records[cached.id], self._mtimes[cached.id] = cached, mtime
            out.append(cached)
        for gone in set(self._records) - {r.id for r in out}:  # run folders deleted by hand
            self._records.pop(gone)
            self._followers.pop(gone, None)
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
        alive = self._alive(rec)
        prog = self._follower(rec)  # after the liveness check: a dead process wrote all it will
        before = dataclasses.asdict(rec)
        if not alive:
            rec.pid_gone = True
            rec.exit_code = proc.returncode if proc is not None else rec.exit_code
            rec.stderr_tail = rr.tail(self._folder(rec.id) / rr.STDERR, self.settings.stderr_tail_lines)
            self._procs.pop(rec.id, None)
        rec.status, rec.error = derive_status(rec, prog, alive)
        if rec.status in ENDED and rec.ended is None:
            rec.ended = time.time()
        if dataclasses.asdict(rec) != before:
            self._save(rec)
        return rec

    def _alive(self, rec: RunRecord) -> bool:
        proc = self._procs.get(rec.id)
        if proc is not None:  # our own child: the OS knows best (and reaps it, with its exit code)
            return proc.poll() is None
        return rr.is_alive(rec.pid, rec.proc_start)  # an earlier server's: must be that very process

    def _wait_gone(self, rec: RunRecord, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self._alive(rec) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _busy_devices(self) -> set[str]:
        return {r.device for r in self._records.values() if r.pid and not r.pid_gone}

    def _advance_queue(self) -> None:
        taken = self._busy_devices()
        self._held = set()
        for rec in sorted(self._records.values(), key=lambda r: (r.created, r.id)):
            if rec.status == "queued" and rec.device not in taken:
                if self._adapter_held(rec):  # it waits for its adapter; the next one in line goes
                    self._held.add(rec.id)
                    continue
                self._launch(rec)
                taken.add(rec.device)

    def _adapter_held(self, rec: RunRecord) -> bool:
        """Whether a training this server does not know of (the CLI, another server), or a change
        from another window, holds the queued run's adapter folder right now. A lock that cannot be
        taken for another reason is not a wait: the launch fails with that reason."""
        try:
            return busy.in_use(self.ws.adapters / rec.adapter)
        except StudioError:
            return False

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
        if not resume:  # (a training this server does not know of: the CLI, another server)
            busy.check_idle(self.ws.adapters / req.adapter, launch.NOT_STARTED)
        queued = [r for r in self._records.values() if r.status == "queued"]
        waits = device in self._busy_devices() or any(r.device == device for r in queued)
        if waits and len(queued) >= self.settings.max_queued:
            raise StudioError(f"The training queue is full ({len(queued)} waiting).",
                              "Wait for a run to finish, or cancel a queued one.")
        rec = RunRecord(id=rr.new_id(req.adapter), adapter=req.adapter, dataset=req.dataset,
                        request=dataclasses.asdict(req), device=device, created=time.time(),
                        resume=resume, resume_of=resume_of)
        rec.args, rec.planned_steps = req.args(device, resume), launch.planned_steps(req)
        self._save(rec)
        if not waits:
            self._launch(rec)
        return rec

    def _launch(self, rec: RunRecord) -> None:
        folder = self._folder(rec.id)
        cmd = launch.command(rec.args, folder / rr.EVENTS)
        try:
            if not rec.resume:
                launch.clear_leftovers(rec.adapter, self.ws)
            with open(folder / rr.STDOUT, "ab") as out, open(folder / rr.STDERR, "ab") as err:
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                        start_new_session=True, env=launch.child_env(self.ws))
        except (OSError, StudioError) as e:  # (a queued run whose adapter a CLI training holds now)
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
        losses, val_losses, samples = self._with_history(rec, p)
        return RunSnapshot(
            id=rec.id, adapter=rec.adapter, dataset=rec.dataset, status=rec.status, step=p.step,
            total=p.total or rec.planned_steps,
            loss=p.loss, it_per_s=p.it_per_s if rec.status == "running" else 0.0,
            eta_s=p.eta_s if rec.status == "running" else None, losses=losses,
            val_losses=val_losses, warnings=list(p.warnings), samples=samples, error=rec.error,
            adapter_path=p.adapter_path, created=rec.created, started=rec.started, ended=rec.ended,
            exit_code=rec.exit_code, stderr_tail=rec.stderr_tail, queue_position=self._queue_position(rec),
            can_resume=self._can_resume(rec), device=rec.device, request=req, pid=rec.pid,
            stopping=rec.status == "running" and rec.stop_requested is not None,
            adapter_in_use=rec.status == "queued" and rec.id in self._held,
            resume_of=rec.resume_of, resumed_by=rec.resumed_by, scorecard=tuple(p.scorecard),
            recommended=p.recommended)

    def _with_history(self, rec: RunRecord, p: Progress) -> tuple[list, list, list]:
        """Curves and previews of a resumed run continue those of the run(s) it resumed, up
        to the checkpoint it started from."""
        losses, vals, samples = list(p.losses), list(p.val_losses), list(p.samples)
        seen, parent_id = {rec.id}, rec.resume_of if rec.resume else None
        while parent_id and parent_id not in seen and parent_id in self._records:
            seen.add(parent_id)
            parent = self._records[parent_id]
            pp = self._follower(parent)
            cut = losses[0][0] - 1 if losses else _step_of(pp.checkpoints[-1] if pp.checkpoints else "")
            losses = [x for x in pp.losses if x[0] <= cut] + losses
            vals = [x for x in pp.val_losses if x[0] <= cut] + vals
            samples = [x for x in pp.samples if x[0] <= cut] + samples
            parent_id = parent.resume_of if parent.resume else None
        return losses, vals, samples


def _step_of(checkpoint: str) -> int:
    """``.../checkpoints/step-0000040`` -> 40 (0 when there is none)."""
    tail = Path(checkpoint).name.removeprefix("step-")
    return int(tail) if tail.isdigit() else 0
