"""Training events and the Sink protocol. Imports no torch and no gradio.

The trainer only ever calls ``sink.emit(event)``; the CLI (tqdm), the job runner (UI)
and tests are just different sinks.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Progress:
    step: int
    total: int
    loss: float
    lr: float
    it_per_s: float
    eta_s: float


@dataclass(frozen=True)
class Validation:
    step: int
    loss: float
    best: bool  # this is the best validation loss so far
    overfitting: bool = False  # validation rose while training loss fell


@dataclass(frozen=True)
class Judged:
    """One style-meter round (``studio.judge``): the scorecard row of checkpoint ``step``."""
    step: int
    style: float  # %: 0 = the base model's images, 100 = as near the set's style as its held-out photos
    copy: float  # nearest-training-photo distance relative to held-out photos (nan = unknown)
    leak: float  # %: how far trigger-free images change, as a share of the way from the base to the style
    val_loss: float | None
    copying: bool  # copy is below the copy threshold: the adapter reproduces its training photos
    checkpoint: str  # this checkpoint's .safetensors ("Use this checkpoint"), "" if not kept
    recommended: int  # step of the recommended checkpoint so far (-1: none)
    reason: str  # why that one


@dataclass(frozen=True)
class Recommended:
    """The pick made final before the adapter is written: the close checkpoints judged again on
    more captions (``judge_confirm``); ``scores`` are (step, style %) of that second look."""
    step: int
    reason: str
    scores: tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class Sample:
    step: int
    prompts: tuple[str, ...]
    paths: tuple[str, ...]  # PNG files, written before the event


@dataclass(frozen=True)
class Saved:
    step: int
    path: str
    kind: str  # "checkpoint" | "adapter"


@dataclass(frozen=True)
class Warning_:
    step: int
    message: str


@dataclass(frozen=True)
class Finished:
    step: int
    adapter: str  # path of the final .safetensors
    chosen: str  # "best" | "last" | "recommended"
    stopped_early: bool
    seconds: float


@dataclass(frozen=True)
class Failed:
    step: int
    message: str


Event = Progress | Validation | Judged | Recommended | Sample | Saved | Warning_ | Finished | Failed


class Sink(Protocol):
    def emit(self, event: Event) -> None: ...


@dataclass
class ListSink:
    """Collects events (tests, job records)."""

    events: list[Any] = field(default_factory=list)

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


class StopToken:
    """Set from any thread (UI button, Ctrl-C) to stop training at the next step."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def stop(self) -> None:
        self._event.set()

    @property
    def stopped(self) -> bool:
        return self._event.is_set()
