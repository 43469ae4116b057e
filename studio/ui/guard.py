"""Who may talk to the studio's server, checked before any route.

Threat model: the studio listens on this machine, and the person using it also browses the
web. Any page they open can make their browser send requests to ``127.0.0.1:7860``:

- **DNS rebinding** — a hostile name that first resolves to the attacker and then to
  127.0.0.1 makes the page same-origin with the studio, so it can read responses. The
  browser still sends the hostile name in ``Host``: refuse every ``Host`` the server was not
  started for (Starlette's ``TrustedHostMiddleware`` does the same; this one also knows
  ``[::1]:port``, ``localhost.`` and, on a wildcard bind, IP literals, which cannot be rebound).
- **Cross-site requests** — a multipart upload or form post is sent without a CORS preflight,
  and Gradio's CORS middleware only decides who may *read* a response, not whether the request
  runs. Browsers send ``Origin`` (or at least ``Referer``) with such requests: refuse any
  request whose ``Origin`` is not the page's own, and any state-changing one (every method but
  GET/HEAD/OPTIONS, and websockets) whose ``Referer`` is foreign. No ``Origin`` and no
  ``Referer`` is a script (gradio_client, curl), not a page: it passes.
- **Before login** (``--auth``) Gradio's login page embeds the app's API description, which
  names every adapter and image set (dropdown choices): the guard blanks it in every HTML page
  (the page fetches it from the login-checked ``/gradio_api/info`` when it needs it).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import urllib.parse
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import StudioError

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("localhost",)
WILDCARD_BINDS = ("0.0.0.0", "::", "")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
API_INFO = re.compile(rb"(<script>window\.gradio_api_info\s*=\s*).*?(;\s*</script>)", re.S)


def normal_host(name: str) -> str:
    """Compare host names as DNS does: case-insensitive, ``localhost.`` == ``localhost``, no brackets."""
    name = name.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    return name[:-1] if name.endswith(".") else name


def split_host(header: str | None) -> tuple[str, int | None] | None:
    """``Host`` header -> (normal host, port or None); None when it is missing or malformed."""
    if not header or any(c in header for c in "/?#@\\ \t"):
        return None
    try:
        u = urllib.parse.urlsplit("//" + header)
        host, port = u.hostname, u.port
    except ValueError:
        return None
    if not host or (":" in host and not _is_ip(host)):
        return None
    return normal_host(host), port


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def _is_loopback_ip(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class HostRule:
    """The ``Host`` names the server answers to."""
    names: frozenset[str]
    suffixes: tuple[str, ...] = ()  # from "*.example.com" entries: ".example.com"
    any_ip: bool = False  # bound to every interface: an IP literal cannot be rebound
    any_host: bool = False  # "--allowed-hosts '*'": the check is off

    def allows(self, header: str | None) -> bool:
        if self.any_host:
            return True
        parsed = split_host(header)
        if parsed is None:
            return False
        host = parsed[0]
        return (host in self.names or _is_loopback_ip(host) or (self.any_ip and _is_ip(host))
                or any(host.endswith(s) and len(host) > len(s) for s in self.suffixes))


def parse_allowed_hosts(raw: str) -> list[str]:
    """``--allowed-hosts`` ("studio.lan, *.example.com, 192.168.1.5") -> checked, normalised entries."""
    entries = []
    for e in (e for e in re.split(r"[,\s]+", raw or "") if e):
        if e == "*" or _valid_entry(normal_host(e)):
            entries.append(e if e == "*" else normal_host(e))
            continue
        raise StudioError(f"--allowed-hosts entry {e!r} is not a host name, an IP address or '*.domain'.",
                          "Give names as the browser's address bar shows them, without scheme or port, "
                          "separated by commas (e.g. 'studio.lan,192.168.1.5').")
    return entries


def _valid_entry(bare: str) -> bool:
    """'*.domain', an IP address or a plain host name (no scheme, port, path or inner '*')."""
    if _is_ip(bare):
        return True
    name = bare[2:] if bare.startswith("*.") else bare
    return bool(re.fullmatch(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*", name))


def host_rule(bind_host: str, allowed_hosts: str) -> HostRule:
    """Loopback names and addresses, the ``--host`` value and the ``--allowed-hosts`` list."""
    entries = parse_allowed_hosts(allowed_hosts)
    bind = normal_host(bind_host)
    names = {*LOOPBACK_NAMES, *(e for e in entries if "*" not in e)}
    if bind not in WILDCARD_BINDS:
        names.add(bind)
    return HostRule(frozenset(names), tuple(e[1:] for e in entries if e.startswith("*.")),
                    any_ip=bind in WILDCARD_BINDS, any_host="*" in entries)


def same_origin(url: str, host_header: str | None) -> bool:
    """Is ``url`` (an ``Origin`` or ``Referer``) on the host and port this request was sent to?"""
    target = split_host(host_header)
    try:
        u = urllib.parse.urlsplit(url.strip())
        host, port = u.hostname, u.port
    except ValueError:
        return False
    if target is None or u.scheme not in ("http", "https") or not host:
        return False
    default = 443 if u.scheme == "https" else 80
    return normal_host(host) == target[0] and (port or default) == (target[1] or default)


def cross_site(method: str, headers: Headers) -> str | None:
    """Why this request is refused as cross-site, or None when it may pass."""
    host = headers.get("host")
    origin = headers.get("origin")
    if origin is not None:
        return None if same_origin(origin, host) else f"Origin {origin[:80]!r}"
    referer = headers.get("referer")
    if method not in SAFE_METHODS and referer is not None and not same_origin(referer, host):
        return f"Referer {referer[:80]!r}"
    return None


class RequestGuard:
    """ASGI middleware: refuse foreign ``Host`` (400) and cross-site requests (403) before any
    route; with ``blank_api_info``, HTML pages carry no API description (login page leak)."""

    def __init__(self, app: ASGIApp, rule: HostRule, blank_api_info: bool = False) -> None:
        self.app, self.rule, self.blank_api_info = app, rule, blank_api_info

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        method = scope.get("method", "WEBSOCKET")
        if not self.rule.allows(headers.get("host")):
            log.warning("refused a request for host %r (not in --allowed-hosts)", (headers.get("host") or "")[:80])
            return await self._refuse(scope, receive, send, 400, host_message(headers.get("host")))
        why = cross_site(method, headers)
        if why:
            log.warning("refused a cross-site %s %s (%s)", method, scope.get("path", "")[:80], why)
            return await self._refuse(scope, receive, send, 403, f"Cross-site request refused: {why} is not "
                                      "this page's own. Open the studio itself and use it from there.\n")
        if self.blank_api_info and scope["type"] == "http" and method == "GET":
            return await self.app(scope, receive, _blanking(send))
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, text: str) -> None:
        if scope["type"] == "websocket":  # closing before accepting answers the handshake with 403
            await send({"type": "websocket.close", "code": 1008})
            return
        await PlainTextResponse(text, status_code=status)(scope, receive, send)


def host_message(header: str | None) -> str:
    shown = (header or "")[:80]
    return (f"Invalid host header {shown!r}: this studio answers only to the names it was started for "
            "(localhost, its loopback addresses, --host). If you opened it by this name on purpose, restart "
            "`studio serve` with --allowed-hosts NAME.\n")


def _blanking(send: Send) -> Send:
    """Wrap ``send`` so an HTML response goes out with ``window.gradio_api_info = null``."""
    held: list[Message] = []
    body: list[bytes] = []

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            if Headers(raw=message.get("headers", [])).get("content-type", "").startswith("text/html"):
                held.append(message)
                return
        elif held and message["type"] == "http.response.body":
            body.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            data = API_INFO.sub(rb"\1null\2", b"".join(body))
            start = held[0]
            start["headers"] = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            start["headers"].append((b"content-length", str(len(data)).encode()))
            await send(start)
            await send({"type": "http.response.body", "body": data})
            return
        await send(message)

    return wrapped
