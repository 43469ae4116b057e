"""An adapter folder being trained: the training process holds ``.lock`` in it (an advisory
``flock``, released by the OS when the process ends, however it ends). Whatever would change the
adapter under a running training ("Use this checkpoint", a second training of the same name, a
fresh start clearing the last run's checkpoints) holds the same lock while it writes, from the
page, the CLI or another server alike: a training cannot start in the middle of it either."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from ..errors import StudioError
from ..paths import LOCK, flocked

__all__ = ["LOCK", "training", "holding", "check_idle"]


def _busy_error(folder: Path, doing: str) -> StudioError:
    return StudioError(f"Adapter {folder.name!r} is being trained right now: {doing}.",
                       "Wait until its training ends (or stop it), then try again.")


@contextlib.contextmanager
def holding(folder: Path, doing: str) -> Iterator[None]:
    """Hold ``folder``'s lock for a change to it, or refuse at once (``doing``: what was refused)
    while a training (or another change) holds it."""
    with flocked(folder, wait=False) as held:
        if not held:
            raise _busy_error(folder, doing)
        yield


def training(folder: Path) -> Iterator[None]:
    """Held for the whole of a training into ``folder``."""
    return holding(folder, "another training writes into it")


def check_idle(folder: Path, doing: str) -> None:
    """Refuse now (a :class:`StudioError`) what a training of ``folder`` would not allow."""
    if folder.is_dir():
        with holding(folder, doing):
            pass
