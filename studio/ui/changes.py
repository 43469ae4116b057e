"""What an open page polls: one short fingerprint of everything the page shows from disk.

Every POLL_S seconds the page asks ``/gradio_api/run/page_changes`` (a plain request that
runs one function, not a queued event with its session state) and runs the page's one refresh
(:mod:`studio.ui.page_state`) only when the answer differs from the last one. While nothing
changes, an open page costs the server a few ``stat`` calls per tick instead of a queued event
that runs every refresher of every tab.

The fingerprint covers what the refreshers read:

- the Library: each adapter folder's files (name, modification time);
- the image sets: each set's ``manifest.json``;
- the trainings: each run folder's ``run.json`` and the size of its ``events.jsonl``; and,
  while a run is queued or running, the job runner's own poll (it starts a queued run whose
  device is free and notices a training process that died without a word, both of which
  rewrite ``run.json``).

Nothing is read but file metadata; the answer is a hash, so it tells a caller nothing about the
names on disk.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .services import Services

JS_POLL = """
() => {
  // The page's one refresh runs when the server's fingerprint changes (studio/ui/changes.py).
  const every = %(ms)d, url = new URL("gradio_api/run/page_changes", document.baseURI);
  let last = null, busy = false;
  const refresh = () => document.getElementById("page-refresh")?.click();
  setInterval(async () => {
    if (busy || document.hidden) return;  // a hidden tab asks nothing; it catches up when shown
    busy = true;
    try {
      const r = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                                  body: '{"data": []}', cache: "no-store"});
      if (!r.ok) throw new Error(String(r.status));
      const now = (await r.json()).data[0];
      if (last !== null && now !== last) refresh();
      last = now;
    } catch (e) {
      refresh();  // no answer (a proxy, a restarted server): refresh as if it changed
      last = null;
    } finally {
      busy = false;
    }
  }, every);
}
"""


def _stat(path: Path) -> tuple[int, int]:
    try:
        s = path.stat()
        return s.st_size, s.st_mtime_ns
    except OSError:
        return 0, 0


def _subfolders(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as it:
            return sorted(Path(e.path) for e in it if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return []


def fingerprint(services: "Services") -> str:
    """A short hash that changes whenever anything an open page shows from disk changes."""
    from ..jobs.records import EVENTS, RECORD
    from .page_state import _stat_key  # the Library part of the page's own change key

    runner = services.runner
    if runner is not None and runner.has_live():
        runner.poll()  # may start a queued run or mark a dead one: both rewrite run.json
    ws = services.ws
    parts: list = []
    for folder in _subfolders(ws.adapters):
        parts.append((folder.name, _stat_key(folder)))
    for folder in _subfolders(ws.datasets):
        parts.append((folder.name, _stat(folder / "manifest.json")))
    for folder in _subfolders(ws.runs):
        parts.append((folder.name, _stat(folder / RECORD), _stat(folder / EVENTS)[0]))
    return hashlib.blake2b(repr(parts).encode(), digest_size=8).hexdigest()
