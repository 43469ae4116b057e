"""``studio serve``: launch the page with safe defaults.

Localhost only unless told otherwise; optional login (``--auth USER:PASS`` or ``STUDIO_AUTH``);
uploads capped; analytics and monitoring off; the file route serves only the workspace
(and Gradio's own upload cache); a bounded queue; no share links; foreign ``Host`` names and
cross-site requests refused before any route (:mod:`studio.ui.guard`).
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Callable

from ..config import ModelSettings, ServeSettings
from ..errors import StudioError
from ..paths import Workspace
from .guard import parse_allowed_hosts

log = logging.getLogger(__name__)


def parse_auth(raw: str) -> tuple[str, str] | None:
    """'USER:PASS' -> (user, pass); empty -> None (no login)."""
    raw = (raw or "").strip()
    if not raw:
        return None
    user, sep, password = raw.partition(":")
    if not sep or not user or not password:
        raise StudioError("--auth / STUDIO_AUTH must look like USER:PASS.",
                          "Give a user name and a password separated by a colon.")
    return user, password


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost: assume it is reachable


def exposure_warning(host: str, auth: tuple[str, str] | None) -> str | None:
    """The warning ``studio serve`` prints when the page is open to the network without a login."""
    if is_loopback(host) or auth:
        return None
    return (f"WARNING: the studio listens on {host} without a login: anyone who can reach this machine "
            "can train, generate and read your outputs folder. Add --auth USER:PASS (or set STUDIO_AUTH), "
            "or serve on 127.0.0.1 and use an SSH tunnel.")


def launch_kwargs(serve: ServeSettings, ws: Workspace, auth: tuple[str, str] | None,
                  changes: Callable[[], str] = lambda: "") -> dict:
    """Everything :meth:`gradio.Blocks.launch` gets; kept apart so tests can read it. ``changes``
    answers the page's poll (studio/ui/changes.py), behind the request guard."""
    from starlette.middleware import Middleware

    from .app import CSS
    from .changes import JS_POLL, ChangesRoute
    from .guard import RequestGuard, host_rule
    from .keep import js_keep
    from .page_state import POLL_S

    ws.root.mkdir(parents=True, exist_ok=True)
    guard = Middleware(RequestGuard, rule=host_rule(serve.host, serve.allowed_hosts), blank_api_info=auth is not None)
    return dict(app_kwargs={"middleware": [guard, Middleware(ChangesRoute, answer=changes)]}, server_name=serve.host, server_port=serve.port, auth=auth, share=False,
                max_file_size=f"{serve.max_file_size_mb}mb", enable_monitoring=False,
                allowed_paths=[str(ws.root.resolve())], show_error=True, inbrowser=False,
                footer_links=["settings"], css=CSS, js=f"() => {{ ({JS_POLL % {'ms': int(POLL_S * 1000)}})(); ({js_keep()})(); }}", quiet=True, ssr_mode=False, mcp_server=False, pwa=False)


def keep_uploads_in(ws: Workspace) -> str:
    """Gradio's upload cache goes inside the workspace (its default, /tmp/gradio, is shared by every
    Gradio app on the machine), unless GRADIO_TEMP_DIR already says where. Before gradio is imported."""
    return os.environ.setdefault("GRADIO_TEMP_DIR", str(ws.uploads))


QUEUE_IDLE_S = 0.05  # how often Gradio's queue looks for work when it has none (its Windows figure)
PROGRESS_IDLE_S = 0.1  # ... and for progress updates to send


def calm_queue(app) -> None:
    """Gradio's queue looks for new work every 1 ms while it has none (and for progress every
    10 ms), on Linux: over a thousand wake-ups a second, about a tenth of a core on a 2-core machine
    with no page open (benchmarks/page_poll.py). 50 ms is its own figure on Windows; a queued
    event starts at most that much later."""
    q = getattr(app, "_queue", None)
    if q is None or not hasattr(q, "sleep_when_free") or not hasattr(q, "progress_update_sleep_when_free"):
        log.warning("Gradio's queue has changed: its idle polling is left as it is")
        return
    q.sleep_when_free = QUEUE_IDLE_S
    q.progress_update_sleep_when_free = PROGRESS_IDLE_S


def launch(model: ModelSettings, serve: ServeSettings, block: bool = True, **runner_kw):
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    keep_uploads_in(Workspace())
    auth = parse_auth(serve.auth or os.environ.get("STUDIO_AUTH", ""))  # the CLI prints exposure_warning
    parse_allowed_hosts(serve.allowed_hosts)  # a bad entry fails before the model loads
    from .app import build_app
    from .services import build_services

    services = build_services(model, serve, **runner_kw)
    app = build_app(services)
    app.queue(max_size=serve.queue_size, default_concurrency_limit=1)
    calm_queue(app)
    from .changes import fingerprint

    kw = launch_kwargs(serve, services.ws, auth, changes=lambda: fingerprint(services))
    result = app.launch(prevent_thread_lock=True, **kw)
    # our own line instead of Gradio's (whose "set share=True" hint does not apply: no share links here);
    # printed once Gradio's own check that the page answers has passed
    print(f"LoRA Style Studio is running on {app.local_url} (Ctrl-C stops it; trainings keep running)",
          flush=True)
    if block:
        app.block_thread()
    return result
