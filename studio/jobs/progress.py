"""What a run's events add up to: step, loss curves, warnings, previews, its end.

The runner keeps one :class:`Progress` per run and feeds it only the events appended
since the last poll (:class:`~studio.jobs.events_file.EventReader`), so a page polling
every second costs a ``stat`` per run plus the new lines.
"""

from __future__ import annotations

import dataclasses
import signal
from dataclasses import dataclass, field
from pathlib import Path

from .. import events as ev
from .events_file import EventReader
from .records import RunRecord


@dataclass
class Progress:
    step: int = 0
    total: int = 0
    loss: float | None = None
    it_per_s: float = 0.0
    eta_s: float | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)
    val_losses: list[tuple[int, float]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    samples: list[tuple[int, str, str]] = field(default_factory=list)  # (step, png path, prompt)
    checkpoints: list[str] = field(default_factory=list)
    scorecard: list[dict] = field(default_factory=list)  # one per style-meter round (events.Judged fields)
    recommended: tuple[int, str] | None = None  # (step, reason) of the style meter's pick
    adapter_path: str | None = None
    end: str | None = None  # "finished" | "stopped" | "failed" once a terminal event arrived
    error: str = ""

    def add(self, e: ev.Event) -> None:
        if isinstance(e, ev.Progress):
            self.step, self.total, self.loss = e.step, e.total, e.loss
            self.it_per_s, self.eta_s = e.it_per_s, e.eta_s
            self.losses.append((e.step, e.loss))
        elif isinstance(e, ev.Validation):
            self.val_losses.append((e.step, e.loss))
        elif isinstance(e, ev.Judged):
            self.scorecard = [r for r in self.scorecard if r["step"] != e.step] + [dataclasses.asdict(e)]
            self.recommended = (e.recommended, e.reason) if e.recommended >= 0 else None
        elif isinstance(e, ev.Recommended):
            self.recommended = (e.step, e.reason)
        elif isinstance(e, ev.Warning_):
            self.warnings.append(f"step {e.step}: {e.message}")
        elif isinstance(e, ev.Sample):
            self.samples.extend((e.step, path, prompt) for path, prompt in zip(e.paths, e.prompts))
        elif isinstance(e, ev.Saved):
            if e.kind == "checkpoint":
                self.checkpoints.append(e.path)
        elif isinstance(e, ev.Finished):
            self.step, self.adapter_path, self.eta_s = e.step, e.adapter, 0.0
            self.end = "stopped" if e.stopped_early else "finished"
        elif isinstance(e, ev.Failed):
            self.end, self.error = "failed", e.message


class Follower:
    """A run's events file read incrementally into a :class:`Progress`."""

    def __init__(self, path: Path):
        self.reader = EventReader(path)
        self.progress = Progress()

    def update(self) -> Progress:
        for e in self.reader.read_new():
            self.progress.add(e)
        return self.progress


INTERRUPTED = 130  # `studio` exits so on a second Ctrl-C (no final save)


def derive_status(rec: RunRecord, prog: Progress, alive: bool) -> tuple[str, str]:
    """(status, error) of a started run."""
    if prog.end:
        return prog.end, prog.error
    if alive:
        return "running", ""
    code = rec.exit_code
    if code is not None and code > 0 and code != INTERRUPTED:  # died before its events file opened
        last = rec.stderr_tail.strip().splitlines()[-1:] or [f"exit code {code}"]
        return "failed", f"The training process failed: {last[0]}"
    how = (f" (killed by {_signal_name(-code)})" if code and code < 0 else
           " (interrupted twice)" if code == INTERRUPTED else "")
    return "interrupted", (f"The training process ended before finishing{how}: it was killed, ran out of "
                           "memory, or the machine restarted. Resume continues from its last checkpoint.")


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"
