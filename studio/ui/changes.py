"""What an open page polls: one short fingerprint of everything the page shows from disk.

Every POLL_S seconds the page asks ``GET /studio_api/changes`` and runs the page's one refresh
(:mod:`studio.ui.page_state`) only when the answer differs from the last one. The route is a
small ASGI middleware (:class:`ChangesRoute`), not a Gradio endpoint: Gradio's own plain-request
route (``/gradio_api/run/...``) spends about 17 ms of CPU per call on its request and session
machinery around a 1 ms function (benchmarks/page_poll.py), a tenth of it here. It sits inside
the request guard (foreign hosts and cross-site requests are refused first) and answers only a
logged-in browser when the server has ``--auth``, as Gradio's routes do.

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
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from .services import Services

ROUTE = "/studio_api/changes"

JS_POLL = """
() => {
  // The page's one refresh runs when the server's fingerprint changes (studio/ui/changes.py).
  const every = %(ms)d, url = new URL("studio_api/changes", document.baseURI);
  let last = null, busy = false;
  const refresh = () => document.getElementById("page-refresh")?.click();
  setInterval(async () => {
    if (busy || document.hidden) return;  // a hidden tab asks nothing; it catches up when shown
    busy = true;
    try {
      const r = await fetch(url, {cache: "no-store", credentials: "same-origin"});
      if (!r.ok) throw new Error(String(r.status));
      const now = await r.text();
      // the first answer refreshes too: it cannot tell what changed between the page's first
      // render and this poll (an adapter made in a terminal a second after the page opened)
      if (now !== last) refresh();
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


def file_key(path: Path) -> tuple[int, int, int]:
    """(size, modification time, inode): files here are replaced whole (a new inode), and a
    modification time alone can repeat for two writes within one clock tick."""
    try:
        s = path.stat()
        return s.st_size, s.st_mtime_ns, s.st_ino
    except OSError:
        return 0, 0, 0


def _subfolders(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as it:
            return sorted(Path(e.path) for e in it if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return []


def fingerprint(services: Services) -> str:
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
        parts.append((folder.name, file_key(folder / "manifest.json")))
    for folder in _subfolders(ws.runs):
        parts.append((folder.name, file_key(folder / RECORD), file_key(folder / EVENTS)[0]))
    return hashlib.blake2b(repr(parts).encode(), digest_size=8).hexdigest()


def logged_in(scope: Scope) -> bool:
    """Would Gradio's own routes let this request through? With ``--auth`` that takes the login
    cookie Gradio set (``access-token[-unsecure]-<cookie id>``, kept in the app's ``tokens``).
    Anything this check does not know (another auth scheme, a Gradio that renamed these) refuses."""
    app = scope.get("app")
    auth, dependency = getattr(app, "auth", None), getattr(app, "auth_dependency", None)
    if auth is None and dependency is None:
        return True
    tokens, cookie_id = getattr(app, "tokens", None), getattr(app, "cookie_id", None)
    if dependency is not None or not isinstance(tokens, dict) or cookie_id is None:
        return False
    cookies = HTTPConnection(scope).cookies
    token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
    return token is not None and token in tokens


class ChangesRoute:
    """ASGI middleware: ``GET /studio_api/changes`` answers ``answer()`` (the fingerprint) as
    plain text, computed in a worker thread; every other request goes on to Gradio."""

    def __init__(self, app: ASGIApp, answer: Callable[[], str]) -> None:
        self.app, self.answer = app, answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != ROUTE:
            return await self.app(scope, receive, send)
        if scope.get("method") not in ("GET", "HEAD"):
            response = PlainTextResponse("GET only\n", status_code=405, headers={"Allow": "GET, HEAD"})
        elif not logged_in(scope):
            response = PlainTextResponse("Not authenticated\n", status_code=401)
        else:
            import anyio

            text = await anyio.to_thread.run_sync(self.answer)
            response = PlainTextResponse(text, headers={"Cache-Control": "no-store"})
        await response(scope, receive, send)
