"""Any website can reach the local server (issue 15, class 1), against a real ``studio serve``.

A page on another site, opened in the same browser, can send requests to 127.0.0.1:
- through DNS rebinding (a hostile name resolving to 127.0.0.1): refused by ``Host``;
- as cross-site requests (simple multipart POSTs need no preflight): refused by ``Origin`` /
  ``Referer``, on every route of the installed Gradio (listed from its router, so a route
  added by an upgrade is covered or fails here);
- before login (``--auth``) nothing the server sends names an adapter or an image set.
The page itself (same origin) and scripts (no Origin) keep working.
"""

from __future__ import annotations

import http.client
import http.server
import json
import re
import tempfile
import threading
import urllib.parse
from pathlib import Path

import pytest
import torch
from servers import CHROMIUM, FLAGS, start_server

from studio.adapters.random_lora import write_adapter
from studio.data.ingest import ingest
from studio.models.tiny.sample_data import write_style_set
from studio.paths import Workspace
from studio.ui.changes import ROUTE as CHANGES

ADAPTER, IMAGE_SET = "zebraplanted", "giraffeset"  # planted names the tests look for in every body
FOREIGN = ["http://evil.example", "null", "https://evil.example:443", "http://127.0.0.1:1",
           "http://127.0.0.1.evil.example", "file://"]
HOSTS = ["evil.example", "evil.example:{port}", "127.0.0.1.evil.example:{port}", "localhost.evil.example",
         "evil.example.:{port}", "EVIL.EXAMPLE", "localhost:{port}@evil.example", ""]


def _plant(base: Path) -> Path:
    """A workspace with one adapter and one image set whose names must never leak."""
    ws = base / "outputs"
    sd = {"lora_unet_a.lora_down.weight": torch.zeros(2, 4), "lora_unet_a.lora_up.weight": torch.zeros(4, 2),
          "lora_unet_a.alpha": torch.tensor(2.0)}
    write_adapter(Workspace(ws), ADAPTER, sd, "tiny")
    write_style_set(base / "photos", "neon", 2)
    ingest(IMAGE_SET, sorted((base / "photos").glob("*.png")), ws=Workspace(ws))
    return ws


@pytest.fixture(scope="module")
def open_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("xsite")
    (base / "uploads").mkdir()
    s = start_server(_plant(base), uploads=base / "uploads")
    s.base = base
    yield s
    s.stop()


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("xsite-auth")
    s = start_server(_plant(base), "--auth", "ann:s3cret-pw")
    s.base = base
    yield s
    s.stop()


def _port(s) -> int:
    return urllib.parse.urlsplit(s.url).port


def _req(s, method: str, path: str, headers: dict | None = None, body: bytes | None = None,
         silence: float = 10) -> tuple[int, bytes]:
    """One request with exactly these headers (``host`` replaces the client's own; '' sends none)."""
    headers = dict(headers or {})
    c = http.client.HTTPConnection("127.0.0.1", _port(s), timeout=60)
    try:
        host = headers.pop("host", None)
        c.putrequest(method, path, skip_host=host is not None, skip_accept_encoding=True)
        if host:
            c.putheader("Host", host)
        for k, v in headers.items():
            c.putheader(k, v)
        if body is not None:
            c.putheader("Content-Length", str(len(body)))
        c.endheaders(body)
        r = c.getresponse()
        return r.status, _read(r, c, silence)
    finally:
        c.close()


def _read(r: http.client.HTTPResponse, c: http.client.HTTPConnection, silence: float, cap: int = 8 << 20) -> bytes:
    """The body, or what came of it until ``silence`` s without a byte (some event streams never end)."""
    if c.sock is not None:  # None when the server closes the connection after this response
        c.sock.settimeout(silence)
    out = b""
    try:
        while len(out) < cap and (chunk := r.read1(65536)):
            out += chunk
    except (OSError, ValueError, http.client.HTTPException):  # silence, or a stream cut mid-chunk
        pass
    return out


def _upload_body(name: str, data: bytes) -> tuple[bytes, dict]:
    b = "xsite-boundary"
    body = (f"--{b}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{b}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={b}"}


def _duplicate(s, new: str, headers: dict) -> tuple[int, bytes]:
    body = json.dumps({"data": [ADAPTER, new]}).encode()
    return _req(s, "POST", "/gradio_api/call/do_duplicate", {"Content-Type": "application/json", **headers}, body)


def _state(s) -> dict[str, int]:
    """Every file under the workspace's library and sets and the upload cache (what a request could change)."""
    roots = [s.ws / "adapters", s.ws / "datasets", s.base / "uploads", s.ws / ".uploads"]
    return {str(p): p.stat().st_size for r in roots if r.is_dir() for p in r.rglob("*") if p.is_file()}


def _leaks(body: bytes) -> bool:
    return ADAPTER.encode() in body or IMAGE_SET.encode() in body


def _routes() -> list[tuple[str, str]]:
    """(method, path) for every route of the installed Gradio, with the studio's own middleware:
    a route added by an upgrade is probed here without a change to this file."""
    import gradio as gr
    from gradio.routes import App
    from starlette.routing import Mount, WebSocketRoute

    from studio.config import ServeSettings
    from studio.ui.server import launch_kwargs

    with gr.Blocks() as demo:
        gr.Markdown("routes")
    kw = launch_kwargs(ServeSettings(), Workspace(Path(tempfile.mkdtemp(prefix="studio-routes-"))), None)
    found: list[tuple[str, str]] = []

    def walk(routes, prefix=""):
        for r in routes:
            if hasattr(r, "original_router"):
                walk(r.original_router.routes, prefix)
            elif isinstance(r, Mount):
                walk(r.routes, prefix + r.path) if r.routes else found.append(("GET", prefix + r.path + "/x"))
            elif isinstance(r, WebSocketRoute):
                found.append(("WEBSOCKET", prefix + r.path))
            else:
                for m in sorted(getattr(r, "methods", None) or ["GET"]):
                    found.append((m, prefix + re.sub(r"\{[^}]*\}", "x", r.path)))
    walk(App.create_app(demo, app_kwargs=kw["app_kwargs"]).routes)
    found.append(("GET", CHANGES))  # the studio's own route (a middleware: not in Gradio's router)
    return sorted(set(found))


def _ws_headers() -> dict:
    return {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


def test_forged_host_is_refused_before_any_route(open_server, tally):
    """DNS rebinding: the hostile page is same-origin with itself, yet reads nothing and changes nothing."""
    s, port = open_server, _port(open_server)
    before = _state(s)
    adapter_json = f"/gradio_api/file={s.ws / 'adapters' / ADAPTER / 'adapter.json'}"
    assert _req(s, "GET", adapter_json)[0] == 200  # the route serves it to the page itself...
    bad = []
    for h in [h.format(port=port) for h in HOSTS]:
        origin = {"Origin": f"http://{h}"} if h else {}
        upload, ctype = _upload_body("rebound.txt", b"from a rebound page")
        tries = [_req(s, "GET", adapter_json, {"host": h}), _req(s, "GET", "/config", {"host": h}),
                 _duplicate(s, "rebound", {"host": h, **origin}),
                 _req(s, "POST", "/gradio_api/upload", {"host": h, **origin, **ctype}, upload)]
        for status, body in tries:
            ok = status == 400 and not _leaks(body)
            tally.record("http", "forged Host", h or "(none)", ok, status=status)
            if not ok:
                bad.append((h, status, body[:100]))
    assert not bad, bad  # ...and to no other name
    assert _state(s) == before


def test_loopback_spellings_still_reach_the_page(open_server, tally):
    s, port = open_server, _port(open_server)
    for h in (f"localhost:{port}", f"LOCALHOST.:{port}", f"[::1]:{port}", f"127.0.0.1:{port + 1}", "localhost"):
        # the library's own file names the planted adapter (the page's lists are filled after load,
        # so /config names none): what a rebinding page must not read, this Host may
        status, body = _req(s, "GET", f"/gradio_api/file={s.ws / 'adapters' / ADAPTER / 'adapter.json'}", {"host": h})
        tally.record("http", "loopback Host", h, status == 200)
        assert status == 200 and ADAPTER.encode() in body, (h, status)


def test_foreign_origin_upload_is_refused_and_nothing_is_stored(open_server, tally):
    s = open_server
    before = _state(s)
    body, ctype = _upload_body("csrf.txt", b"cross-site bytes")
    for headers in [{"Origin": o} for o in FOREIGN] + [{"Referer": "http://evil.example/page.html"}]:
        status, out = _req(s, "POST", "/gradio_api/upload", {**headers, **ctype}, body)
        ok = status == 403 and b"Cross-site request refused" in out
        tally.record("http", "cross-site upload", json.dumps(headers), ok, status=status)
        assert ok, (headers, status, out[:200])
    assert _state(s) == before, set(_state(s)) ^ set(before)


def test_foreign_origin_is_refused_on_every_route(open_server, tally):
    """Every (method, path) of the installed Gradio, with a foreign Origin and with a forged Host."""
    s = open_server
    routes = _routes()
    assert ("POST", "/gradio_api/upload") in routes and ("POST", "/gradio_api/queue/join") in routes
    assert len(routes) > 60
    before, bad = _state(s), []
    for method, path in routes:
        for headers, want in (({"Origin": "http://evil.example"}, 403), ({"host": "evil.example"}, 400),
                              ({"Referer": "http://evil.example/"}, 403)):
            if "Referer" in headers and method in ("GET", "HEAD", "OPTIONS"):
                continue  # a link from another site to the page is fine: it changes nothing
            extra = _ws_headers() if method == "WEBSOCKET" else {}
            status, body = _req(s, "GET" if method == "WEBSOCKET" else method, path, {**headers, **extra},
                                b"{}" if method not in ("GET", "HEAD", "OPTIONS", "WEBSOCKET") else None)
            ok = status == want and not _leaks(body)
            if not ok:
                bad.append((method, path, headers, status, body[:80]))
        tally.record("http", "cross-site route", f"{method} {path}", not any(b[:2] == (method, path) for b in bad))
    assert not bad, bad
    assert _state(s) == before


def test_same_origin_page_and_scripts_still_work(open_server, tally):
    s = open_server
    body, ctype = _upload_body("own.txt", b"from the page itself")
    for headers in ({"Origin": s.url}, {"Referer": s.url + "/"}, {}):  # the page; an old browser; a script
        status, out = _req(s, "POST", "/gradio_api/upload", {**headers, **ctype}, body)
        assert status == 200 and Path(json.loads(out)[0]).read_bytes() == b"from the page itself", (headers, out)
    status, out = _duplicate(s, "copied", {"Origin": s.url})
    assert status == 200, out
    event = json.loads(out)["event_id"]
    status, out = _req(s, "GET", f"/gradio_api/call/do_duplicate/{event}", {"Origin": s.url}, silence=300)
    ok = status == 200 and b"event: complete" in out and (s.ws / "adapters" / "copied" / "adapter.json").is_file()
    tally.record("http", "same-origin requests", "upload, upload (Referer), upload (script), duplicate", ok)
    assert ok, out[-300:]


def test_before_login_nothing_names_an_adapter(auth_server, tally):
    """With --auth, every GET route (and the file route on the library's own files) before login."""
    s = auth_server
    paths = [p for m, p in _routes() if m in ("GET", "HEAD")]
    paths += ["/", "/?page=", "/?deep_link=x", "/gradio_api/runs", "/gradio_api/info?all_endpoints=true",
              f"/gradio_api/file={s.ws / 'adapters' / ADAPTER / 'adapter.json'}",
              f"/gradio_api/file={s.ws / 'adapters' / ADAPTER / (ADAPTER + '.safetensors')}",
              f"/gradio_api/file={s.ws / 'datasets' / IMAGE_SET / 'manifest.json'}"]
    bad = []
    for p in paths:
        status, body = _req(s, "GET", p)
        ok = not _leaks(body)
        tally.record("http", "before login", p[:120], ok, status=status)
        if not ok:
            bad.append((p, status))
    assert not bad, bad
    assert _req(s, "GET", CHANGES)[0] == 401  # the page's poll answers only a logged-in browser
    assert _req(s, "GET", "/")[0] == 200  # the login page is served...
    c = http.client.HTTPConnection("127.0.0.1", _port(s), timeout=60)  # ...and after logging in, the names are
    c.request("POST", "/login", "username=ann&password=s3cret-pw",
              {"Content-Type": "application/x-www-form-urlencoded", "Origin": s.url})
    r = c.getresponse()
    r.read()
    cookies = "; ".join(v.split(";")[0] for k, v in r.getheaders() if k.lower() == "set-cookie")
    assert r.status == 200 and cookies, r.status
    for p, name in ((f"/gradio_api/file={s.ws / 'adapters' / ADAPTER / 'adapter.json'}", ADAPTER),
                    (f"/gradio_api/file={s.ws / 'datasets' / IMAGE_SET / 'manifest.json'}", IMAGE_SET)):
        status, body = _req(s, "GET", p, {"Cookie": cookies})
        assert status == 200 and name.encode() in body, (p, status)  # (the plant is visible after login)
    status, body = _req(s, "GET", CHANGES, {"Cookie": cookies})
    assert status == 200 and re.fullmatch(rb"[0-9a-f]{16}", body), (status, body)


def test_cross_site_login_post_is_refused(auth_server, tally):
    s = auth_server
    status, _ = _req(s, "POST", "/login", {"Content-Type": "application/x-www-form-urlencoded",
                                          "Origin": "http://evil.example"}, b"username=ann&password=s3cret-pw")
    tally.record("http", "cross-site upload", "login form from another site", status == 403)
    assert status == 403


class _Hostile(http.server.BaseHTTPRequestHandler):
    """A page on another origin (another port) that posts an upload to the studio."""
    def do_GET(self):
        body = b"<html><body>hostile page</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


POST_UPLOAD = """async (url) => {
    const fd = new FormData();
    fd.append("files", new Blob(["posted by a page"]), "page.txt");
    try { const r = await fetch(url + "/gradio_api/upload", {method: "POST", body: fd, mode: "no-cors",
                                                               credentials: "include"});
          return r.type + ":" + r.status; } catch (e) { return "error:" + e; }
}"""


def test_a_real_browser_page_on_another_origin_cannot_upload(open_server, tally):
    """Chromium itself: a hostile page's cross-site multipart POST is refused (nothing stored), while the
    studio's own page, logged in or not, still uploads and shows the library."""
    from playwright.sync_api import sync_playwright

    s = open_server
    hostile = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    threading.Thread(target=hostile.serve_forever, daemon=True).start()
    uploads = s.base / "uploads"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
            try:
                page = browser.new_page()
                page.set_default_timeout(60_000)
                page.goto(f"http://127.0.0.1:{hostile.server_address[1]}/")
                before = _state(s)
                page.evaluate(POST_UPLOAD, s.url)
                refused = _state(s) == before
                page.goto(s.url)
                page.get_by_role("tab", name="Library").click()
                page.get_by_text(ADAPTER).first.wait_for()
                page.evaluate(POST_UPLOAD, s.url)
                stored = [p for p in uploads.rglob("page.txt") if p.read_bytes() == b"posted by a page"]
            finally:
                browser.close()
    finally:
        hostile.shutdown()
    tally.record("http", "cross-site upload", "Chromium page on another origin", refused)
    assert refused, "the hostile page's upload was stored"
    assert stored, "the studio's own page could not upload"


def test_the_login_page_works_in_a_browser(auth_server):
    """The login page carries no API description; after logging in the page fetches it and works."""
    from playwright.sync_api import sync_playwright

    s = auth_server
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(s.url)
            assert ADAPTER not in page.content()
            page.get_by_label("username").fill("ann")
            page.get_by_label("password").fill("s3cret-pw")
            page.get_by_role("button", name="Login").click()
            page.get_by_role("tab", name="Library").click()
            page.get_by_text(ADAPTER).first.wait_for()
        finally:
            browser.close()
