"""Training events as JSON lines: the sink the trainer writes and the reader the job runner polls.

One JSON object per line, ``{"type": "progress", "t": <unix time>, ...fields}``, flushed
line by line so that a reader sees every event as soon as it happens. The reader keeps its
file offset: each poll parses only the bytes appended since the last one, and a line that
is still being written (no newline yet) waits for the next poll.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import types
import typing
from pathlib import Path
from typing import IO, Any

from .. import events as ev

log = logging.getLogger(__name__)

TYPES: dict[str, type] = {"progress": ev.Progress, "validation": ev.Validation, "judged": ev.Judged,
                          "recommended": ev.Recommended, "sample": ev.Sample,
                          "saved": ev.Saved, "warning": ev.Warning_, "finished": ev.Finished,
                          "failed": ev.Failed}
NAMES = {cls: name for name, cls in TYPES.items()}
_FIELDS = {name: frozenset(f.name for f in dataclasses.fields(cls)) for name, cls in TYPES.items()}
_HINTS = {name: typing.get_type_hints(cls) for name, cls in TYPES.items()}
_REQUIRED = {name: frozenset(f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                             and f.default_factory is dataclasses.MISSING) for name, cls in TYPES.items()}
TERMINAL = (ev.Finished, ev.Failed)


def to_json(e: ev.Event, t: float | None = None) -> str:
    record = {"type": NAMES[type(e)], "t": round(time.time() if t is None else t, 3), **dataclasses.asdict(e)}
    return json.dumps(record, ensure_ascii=False, allow_nan=True)


def from_json(record: dict[str, Any]) -> ev.Event | None:
    """The event a JSON object stands for; None for unknown types, missing fields or a field whose
    value is not of its declared type (a newer writer, a damaged or hand-edited file): every reader
    of events (the runner's progress, the page) can then trust the types."""
    kind = record.get("type", "")
    cls = TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        return None
    names = _FIELDS[kind]
    fields = {k: _tupled(v) for k, v in record.items() if k in names}
    if not _REQUIRED[kind] <= fields.keys() or not all(fits(v, _HINTS[kind][k]) for k, v in fields.items()):
        log.warning("skipped an events line of type %r with missing or wrong-typed fields", kind)
        return None
    return cls(**fields)


def fits(value: Any, hint: Any) -> bool:
    """Whether a parsed JSON value is of the type an event field declares (int, float, bool, str,
    ``X | None``, ``tuple[X, ...]``, ``tuple[X, Y]``). An int is a float; a bool is neither."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return any(fits(value, a) for a in args)
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(fits(v, args[0]) for v in value)
        return len(value) == len(args) and all(fits(v, a) for v, a in zip(value, args))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _tupled(v: Any) -> Any:
    """JSON arrays back to the tuples the events were written with (nested ones too)."""
    return tuple(_tupled(x) for x in v) if isinstance(v, list) else v


class JsonlSink:
    """Appends every event to ``path`` as one flushed JSON line. ``fail(message)`` records
    an error that happened outside the trainer (setup, crash) unless a terminal event exists."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f: IO[str] | None = open(self.path, "a", encoding="utf-8")
        self.step = 0
        self.terminal = False

    def emit(self, e: ev.Event) -> None:
        if self._f is None:
            return
        self.step = max(self.step, getattr(e, "step", 0))
        self.terminal = self.terminal or isinstance(e, TERMINAL)
        self._f.write(to_json(e) + "\n")
        self._f.flush()

    def fail(self, message: str) -> None:
        if not self.terminal:
            self.emit(ev.Failed(self.step, message))

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


class Tee:
    """Sends each event to several sinks (tqdm in the terminal + the JSON-lines file)."""

    def __init__(self, *sinks: ev.Sink):
        self.sinks = [s for s in sinks if s is not None]

    def emit(self, e: ev.Event) -> None:
        for s in self.sinks:
            s.emit(e)


class EventReader:
    """Reads a growing events file incrementally: ``read_new()`` returns only new events."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.offset = 0
        self._partial = b""

    def read_new(self) -> list[ev.Event]:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        if size < self.offset:  # replaced or truncated: start over
            self.offset, self._partial = 0, b""
        if size == self.offset:
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(size - self.offset)
        self.offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        lines = [line for line in lines if line.strip()]
        try:  # one parse for the whole chunk (a restarted server reads long files once)
            records = json.loads(b"[" + b",".join(lines) + b"]")
        except ValueError:  # a damaged line somewhere: line by line, skipping it
            records = [_parse(line) for line in lines]
        return [e for e in map(_event, records) if e is not None]


def _parse(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        log.warning("skipped a damaged events line: %r", line[:200])
        return None


def _event(record: Any) -> ev.Event | None:
    return from_json(record) if isinstance(record, dict) else None


def read_events(path: Path) -> list[ev.Event]:
    """Every complete event in ``path`` (tests, tools)."""
    return EventReader(path).read_new()
