"""Leftovers of killed imports, blends and exports, removed when the library is opened.

Only the studio's own temporary names are touched, and only when they are older than this
process (so a writer running beside it keeps its files):

* ``adapters/.staging-<pid>-*/`` — an import, blend or duplicate being assembled (``Library.add``);
  kept while process ``<pid>`` still runs (it may be about to rename it into place);
* ``adapters/<name>/.<file>.<8 chars>.tmp`` and ``exports/.<file>.<8 chars>.tmp`` — the temp file of
  :func:`studio.paths.atomic_write_bytes` (``tempfile.mkstemp`` names).

Anything else — user files, hidden files of other tools, folders without these names — stays.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

from ..paths import Workspace

log = logging.getLogger(__name__)

STAGING = re.compile(r"^\.staging-(?:(\d+)-)?[A-Za-z0-9_]+\Z")
TMP_FILE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp\Z")  # mkstemp(prefix=".<name>.", suffix=".tmp")
_done: set[str] = set()


def process_start() -> float:
    """When this process started (seconds since the epoch)."""
    import psutil

    return psutil.Process().create_time()


def _newest(path: Path) -> float:
    """The newest modification time of ``path`` and, for a folder, of everything directly in it."""
    times = [path.lstat().st_mtime]
    if path.is_dir() and not path.is_symlink():
        times += [p.lstat().st_mtime for p in path.iterdir()]
    return max(times)


def _writer_alive(pid: int | None, newest: float) -> bool:
    """Whether the process named in a staging folder may still be writing it (started before its
    newest file, so not a later process that reused the pid)."""
    import psutil

    if pid is None or pid == os.getpid():
        return False
    try:
        return psutil.Process(pid).create_time() <= newest + 2.0
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def _candidates(ws: Workspace):
    """(path, pid or None) of every studio temp name in the library and the exports folder."""
    for folder in (ws.adapters, ws.exports):
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            m = STAGING.match(p.name) if folder == ws.adapters else None
            if m and p.is_dir() and not p.is_symlink():
                yield p, int(m.group(1)) if m.group(1) else None
            elif TMP_FILE.match(p.name) and p.is_file() and not p.is_symlink():
                yield p, None
            elif folder == ws.adapters and p.is_dir() and not p.is_symlink() and not p.name.startswith("."):
                for q in p.iterdir():
                    if TMP_FILE.match(q.name) and q.is_file() and not q.is_symlink():
                        yield q, None


def clean(ws: Workspace, started: float | None = None) -> list[Path]:
    """Remove the stale temp names (see the module doc); return what was removed."""
    started = process_start() if started is None else started
    removed = []
    try:
        found = list(_candidates(ws))
    except OSError as e:
        log.warning("could not look for stale temporary files in %s: %s", ws.root, e)
        return removed
    for path, pid in found:
        try:
            newest = _newest(path)
            if newest >= started or _writer_alive(pid, newest):
                continue
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError as e:  # gone meanwhile, or not ours to remove: leave it
            log.debug("kept %s: %s", path, e)
            continue
        removed.append(path)
        log.info("removed %s (left by a killed import, blend or export)", path)
    return removed


def clean_once(ws: Workspace) -> None:
    """:func:`clean`, once per workspace and process (every ``Library(...)`` calls this)."""
    key = str(ws.root.resolve())
    if key not in _done:
        _done.add(key)
        clean(ws)
