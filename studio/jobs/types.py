"""What the page sends (:class:`TrainRequest`) and reads back (:class:`RunSnapshot`)."""

from __future__ import annotations

from dataclasses import dataclass

LIVE = ("queued", "running")
ENDED = ("finished", "stopped", "failed", "interrupted", "cancelled")


@dataclass(frozen=True)
class TrainRequest:
    adapter: str
    dataset: str
    preset: str | None = None
    sets: tuple[str, ...] = ()  # "key=value" overrides, as `studio train --set`
    model: str = "tiny"
    device: str = "auto"
    dtype: str = "auto"
    replace: bool = False  # allow overwriting an existing adapter of this name

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
    adapter_in_use: bool = False  # queued, and its adapter is in use elsewhere (a terminal's training)
    resume_of: str | None = None
    resumed_by: str | None = None
    scorecard: tuple = ()  # style-meter rows (dicts of events.Judged fields), oldest first
    recommended: tuple[int, str] | None = None  # (step, reason) of the style meter's pick

    @property
    def live(self) -> bool:
        return self.status in LIVE

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total) if self.total else 0.0
