"""Background trainings that outlive the browser tab and the server.

Each training is its own OS process (``python -m studio train ... --events FILE``) in its
own session, so closing the tab, reloading the page, or stopping/restarting ``studio serve``
never touches it. Its records live in ``outputs/runs/<id>/``: ``run.json`` (request,
arguments, device, pid + process start time, status, times, exit code, stderr tail;
rewritten atomically), ``events.jsonl`` (one JSON object per trainer event) and the
process's ``stdout.log`` / ``stderr.log``. A new :class:`JobRunner` on the same workspace
re-attaches to live runs: it checks that the recorded pid is alive *and* is the process
that was started (start time), and follows its events.

Statuses, derived from the records on every poll:
``queued`` (waiting for its device; cancellable), ``running``, ``finished``, ``stopped``
(Stop sends SIGINT to the process group: the trainer stops at the next step and still
writes a usable adapter), ``failed`` (with the trainer's message), ``interrupted`` (no live
process and no final event: killed, out of memory, machine restarted — Resume runs the same
request with ``--resume`` from the newest checkpoint), ``cancelled`` (removed from the queue).
One training per device at a time (``cpu`` and each ``cuda:N`` separately); others wait in
a bounded queue (``JobSettings.max_queued``). Whoever polls (the server's timer) starts
the next queued run when its device is free.

GPU policy: while a training runs on a CUDA device, the server's generation pipeline moves
to the CPU (slower, but generating keeps working) and moves back when the GPU is free.
This package only provides the signal, :meth:`JobRunner.gpu_busy`; the generate engine
moves itself. On a CPU-only machine training and generation run side by side on the CPU.

Imports neither torch (except to resolve ``device="auto"``) nor gradio.
"""

from .launch import resolve_device
from .records import RunRecord
from .runner import JobRunner
from .types import RunSnapshot, TrainRequest

__all__ = ["JobRunner", "RunRecord", "RunSnapshot", "TrainRequest", "resolve_device"]
