"""An adapter folder being trained: the training process holds ``.lock`` in it (an
advisory ``flock``, released by the OS when the process ends, however it ends). Whatever would
change the adapter under a running training (\"Use this checkpoint\", a second training of the
same name) checks it first, from the page, the CLI or another server alike."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from ..errors import StudioError

LOCK = ".lock"  # the one name every studio lock file has (runs/, datasets/NAME/)


def _busy_error(folder: Path, doing: str) -> StudioError:
    return StudioError(f"Adapter {folder.name!r} is being trained right now: {doing}.",
                       "Wait until its training ends (or stop it), then try again.")


def _take(f) -> bool:
    try:
        import fcntl
    except ImportError:  # not POSIX: no check
        return True
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def training(folder: Path) -> Iterator[None]:
    """Held for the whole of a training into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK, "a+") as f:
        if not _take(f):
            raise _busy_error(folder, "another training writes into it")
        yield


def check_idle(folder: Path, doing: str) -> None:
    """A :class:`StudioError` while a training holds ``folder`` (``doing``: what was refused)."""
    path = folder / LOCK
    if path.is_symlink() or not path.is_file():
        return
    with open(path, "a+") as f:  # (taken and at once released by closing)
        if not _take(f):
            raise _busy_error(folder, doing)
