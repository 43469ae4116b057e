"""An adapter folder in use: a training holds ``.lock`` in it for its whole run (an advisory
``flock``, released by the OS when the process ends, however it ends). Whatever changes the
folder ("Use this checkpoint", rename, delete, a fresh start clearing the last run's checkpoints)
holds the same lock while it writes, from the page, the CLI or another server alike, and is
refused at once while someone else holds it: no training starts in the middle of such a change,
and no change lands in the middle of a training."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from ..errors import StudioError
from ..paths import LOCK, flocked

__all__ = ["LOCK", "training", "holding", "check_idle", "in_use"]


def _in_use(folder: Path, doing: str) -> StudioError:
    return StudioError(f"Adapter {folder.name!r} is in use right now (being trained, or changed from another "
                       f"window or terminal): {doing}.", "Try again once that has ended.")


@contextlib.contextmanager
def holding(folder: Path, doing: str, create: bool = False) -> Iterator[None]:
    """Hold ``folder``'s lock for a change to it, or refuse at once (``doing``: what was refused,
    e.g. "it was not renamed") while someone else holds it. The folder must exist unless ``create``."""
    with flocked(folder, wait=False, create=create) as held:
        if not held:
            raise _in_use(folder, doing)
        yield


def training(folder: Path) -> Iterator[None]:
    """Held for the whole of a training into ``folder`` (made if new)."""
    return holding(folder, "a second training of it was not started", create=True)


def check_idle(folder: Path, doing: str) -> None:
    """Refuse now (a :class:`StudioError`) what a training of ``folder`` would not allow."""
    if folder.is_dir():
        with holding(folder, doing):
            pass


def in_use(folder: Path) -> bool:
    """Whether someone else holds ``folder``'s lock right now (False when there is no folder).
    A lock that cannot be taken for another reason (a folder in its place) is a StudioError."""
    if not folder.is_dir():
        return False
    with flocked(folder, wait=False, create=False) as held:
        return not held
