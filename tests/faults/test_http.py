"""HTTP faults (issue 11, part "HTTP") against a real ``studio serve``.

- Every route of the installed Gradio that takes a path, a file name or a URL (listed from
  its router, so an upgrade that adds one fails here until it is classified) is probed with
  paths outside the workspace: absolute, ``..``, percent-encoded, double-encoded, through the
  upload cache, through an uploaded file's name, through a symlink, and as the ``path`` of a
  file handed to the API. Nothing outside the workspace and Gradio's upload cache is served
  or read.
- An upload over ``--max-file-size-mb`` is refused with a message that says so, and nothing
  of it is stored; the page shows the limit.
- Two ingests into one image set at the same moment (the page's two buttons, two browsers,
  an API client) both land: the manifest lists every accepted image and only those.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from servers import CHROMIUM, FLAGS, ROOT, SECRET

from studio.data import ingest as ingest_mod
from studio.data import manifest as mf
from studio.models.tiny.sample_data import write_style_set
from studio.paths import Workspace
from studio.ui import images

DEEP = "../" * 14  # more than enough to climb from Gradio's package folders to /
FILE_ROUTES = {  # GET routes that take a path, file name or URL: each is probed below
    "/gradio_api/file={path_or_url:path}", "/gradio_api/file/{path:path}", "/static/{path:path}",
    "/assets/{path:path}", "/svelte/{path:path}", "/gradio_api/proxy={url_path:path}",
    "/gradio_api/custom_component/{id}/{environment}/{type}/{file_name}",
}
NOT_FILES = {  # parameterised GET routes that read no file named by the request (why)
    "/gradio_api/run-history/records/{endpoint}/{record_id}/assets/{asset_id}",  # hub bucket; needs sign-in
    "/gradio_api/stream/{session_hash}/{run}/{component_id}/playlist.m3u8",  # in-memory streams
    "/gradio_api/stream/{session_hash}/{run}/{component_id}/{segment_id}.{ext}",
    "/gradio_api/stream/{session_hash}/{run}/{component_id}/playlist-file",  # a stream's own temp file
    "/gradio_api/heartbeat/{session_hash}", "/gradio_api/call/{api_name}/{event_id}",
    "/gradio_api/call/v2/{api_name}/{event_id}", "/monitoring/{key}",  # monitoring is off
    "/pwa_icon/{size}",  # pwa=False; size is an int
}


def _get_routes() -> set[str]:
    import gradio as gr
    from gradio.routes import App

    with gr.Blocks() as demo:
        gr.Markdown("routes")
    found = set()

    def walk(routes):
        for r in routes:
            if hasattr(r, "path"):
                if "GET" in (getattr(r, "methods", None) or ()) and "{" in r.path:
                    found.add(r.path)
            elif hasattr(r, "original_router"):
                walk(r.original_router.routes)
    walk(App.create_app(demo).routes)
    return found


def test_every_parameterised_route_of_this_gradio_is_classified(tally):
    routes = _get_routes()
    unknown = routes - FILE_ROUTES - NOT_FILES
    tally.record("http", "route list", f"{len(routes)} parameterised GET routes", not unknown)
    assert not unknown, f"new Gradio routes to probe or classify: {sorted(unknown)}"
    assert FILE_ROUTES <= routes, sorted(FILE_ROUTES - routes)


def _raw(url: str, path: str, method: str = "GET", body: bytes | None = None,
         headers: dict | None = None) -> tuple[int, bytes]:
    """One request with ``path`` sent exactly as written (no client-side normalising)."""
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def _variants(target: Path, near: Path) -> list[str]:
    """Ways to name ``target`` (outside) from a route: absolute, via ``near`` (inside) and ``..``,
    encoded once and twice, doubled slashes, backslashes."""
    t, rel = str(target), f"{near}/../{target.name}" if target.parent == near.parent else f"{near}/{DEEP}{target}"
    enc = urllib.parse.quote(t, safe="")
    return [t, enc, urllib.parse.quote(enc, safe=""), "/" + t, rel, rel.replace("..", "%2e%2e"),
            rel.replace("/", "%2F"), rel.replace("/", "\\"), t.replace("/", "//")]


def _secrets(server) -> list[Path]:
    return [server.base / "outside.txt", server.base / "beside-uploads.txt", Path("/etc/passwd"),
            ROOT / "pyproject.toml"]


def _refused(status: int, body: bytes) -> bool:
    return status >= 400 and SECRET.encode() not in body and b"root:" not in body and b"lora-style-studio" not in body


def _probe(server, paths: list[str], tally, kind: str) -> None:
    bad = []
    for p in paths:
        status, body = _raw(server.url, p)
        ok = _refused(status, body)
        tally.record("http", kind, p[:120], ok, status=status)
        if not ok:
            bad.append((p, status, body[:80]))
    assert not bad, bad


def test_file_routes_serve_nothing_outside(sandbox_server, tally):
    s = sandbox_server
    paths = []
    for secret in _secrets(s):
        for v in _variants(secret, s.ws):
            paths += [f"/gradio_api/file={v}", f"/gradio_api/file/{v}", f"/file={v}"]
        for v in _variants(secret, s.uploads):
            paths.append(f"/gradio_api/file={v}")
    _probe(s, paths, tally, "file route")


@pytest.mark.parametrize("route", ["/static/", "/assets/", "/svelte/"])
def test_static_routes_do_not_climb_out_of_gradio(sandbox_server, route, tally):
    s = sandbox_server
    assert _raw(s.url, "/static/img/logo.svg")[0] == 200  # the route works...
    paths = []
    for secret in _secrets(s):
        climb = DEEP + str(secret).lstrip("/")
        paths += [route + climb, route + climb.replace("..", "%2e%2e"), route + climb.replace("/", "%2F"),
                  route + urllib.parse.quote(str(secret), safe=""), route + "/" + str(secret)]
    _probe(s, paths, tally, route.strip("/") + " route")  # ...and serves nothing else


def test_proxy_and_component_routes_refuse(sandbox_server, tally):
    s = sandbox_server
    inside = urllib.parse.quote(f"{s.url}/gradio_api/file={s.base / 'outside.txt'}", safe="")
    paths = [f"/gradio_api/proxy=file://{s.base / 'outside.txt'}", "/gradio_api/proxy=file:///etc/passwd",
             f"/gradio_api/proxy={s.url}/gradio_api/file={s.ws / 'inside.txt'}", f"/gradio_api/proxy={inside}",
             "/gradio_api/proxy=http://169.254.169.254/latest/meta-data/",
             f"/gradio_api/file={s.url}/gradio_api/file={s.base / 'outside.txt'}",  # the file route fetching a URL
             "/gradio_api/file=http://127.0.0.1:22/", "/gradio_api/file=file:///etc/passwd"]
    for name in ("textbox", "gallery", "file"):  # real component ids; the template folder is the guard
        paths += [f"/gradio_api/custom_component/{name}/client/..%2F..%2F..%2F/{DEEP}etc%2Fpasswd",
                  f"/gradio_api/custom_component/{name}/client/{urllib.parse.quote(DEEP, safe='')}etc/passwd",
                  f"/gradio_api/custom_component/{name}/server/..%2F..%2F..%2F..%2F..%2F..%2F..%2F/pyproject.toml"]
    _probe(s, paths, tally, "proxy/component route")


def _upload(url: str, name: str, data: bytes) -> tuple[int, bytes]:
    boundary = "studio-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return _raw(url, "/gradio_api/upload", "POST", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})


def _tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def test_uploaded_paths_serve_only_the_upload(sandbox_server, tally):
    s = sandbox_server
    before = _tree(s.base)
    status, body = _upload(s.url, "../../../escape.txt", b"uploaded bytes")
    assert status == 200, body
    path = Path(json.loads(body)[0])
    assert path.resolve().is_relative_to(s.uploads.resolve()) and path.name == "escape.txt"
    new = set(_tree(s.base)) - set(before)
    assert new and all(n.startswith("uploads/") for n in new), new  # the name did not climb out
    assert _raw(s.url, f"/gradio_api/file={path}") == (200, b"uploaded bytes")
    paths = [f"/gradio_api/file={path}/../../../beside-uploads.txt", f"/gradio_api/file={path.parent}/../../outside.txt",
             f"/gradio_api/file={path.parent}/%2e%2e/%2e%2e/outside.txt",
             f"/gradio_api/file={urllib.parse.quote(str(path.parent) + '/../../outside.txt', safe='')}"]
    link = s.ws / "link-to-outside.txt"  # a symlink in the workspace does not lend its target
    link.unlink(missing_ok=True)
    link.symlink_to(s.base / "outside.txt")
    paths.append(f"/gradio_api/file={link}")
    _probe(s, paths, tally, "upload path")


def _call(url: str, api: str, data: list) -> tuple[str, str]:
    """Call an endpoint like any HTTP client would (no gradio_client help): (event, data) of its end."""
    req = urllib.request.Request(f"{url}/gradio_api/call/{api}", json.dumps({"data": data}).encode(),
                                 {"Content-Type": "application/json"})
    event_id = json.loads(urllib.request.urlopen(req, timeout=60).read())["event_id"]
    text = urllib.request.urlopen(f"{url}/gradio_api/call/{api}/{event_id}", timeout=120).read().decode()
    events = [blk for blk in text.strip().split("\n\n") if blk.startswith("event:")]
    last = events[-1].splitlines()
    return last[0].removeprefix("event:").strip(), last[1].removeprefix("data:").strip() if len(last) > 1 else ""


def test_api_file_paths_outside_the_upload_cache_are_not_read(sandbox_server, tally):
    """The API takes files as {"path": ...}: a path that was not uploaded must not be ingested."""
    s = sandbox_server
    private = s.base / "private"
    write_style_set(private, "neon", 2)
    pngs = sorted(private.glob("*.png"))
    for target in [*pngs, Path("/etc/passwd"), s.ws / ".." / "private" / pngs[0].name, s.uploads / ".." / pngs[1].name]:
        fd = {"path": str(target), "meta": {"_type": "gradio.FileData"}, "orig_name": target.name}
        event, data = _call(s.url, "add_images", [None, "stolen", "", [fd]])
        ok = event == "error" and not (s.ws / "datasets" / "stolen").exists()
        tally.record("http", "API file path", str(target)[-60:], ok, event=event, message=data[:120])
        assert ok, (target, event, data)
    _, body = _upload(s.url, pngs[0].name, pngs[0].read_bytes())  # the same file, uploaded: accepted
    fd = {"path": json.loads(body)[0], "meta": {"_type": "gradio.FileData"}, "orig_name": pngs[0].name}
    event, data = _call(s.url, "add_images", [None, "uploaded", "", [fd]])
    assert event == "complete" and "accepted 1, refused 0" in data, (event, data)


def test_an_upload_over_the_limit_is_refused_and_nothing_is_stored(sandbox_server, tally):
    s = sandbox_server
    before = _tree(s.base)
    status, body = _upload(s.url, "big.png", b"\0" * (2 * 1024 * 1024))  # the server's limit is 1 MB
    msg = body.decode(errors="replace")
    ok = status == 413 and "maximum allowed size" in msg and _tree(s.base) == before
    tally.record("http", "oversized upload", "2 MB over a 1 MB limit", ok, status=status)
    assert ok, (status, msg, set(_tree(s.base)) ^ set(before))
    status, _ = _upload(s.url, "small.bin", b"\1" * (512 * 1024))  # under the limit: still accepted
    assert status == 200


def test_the_page_says_an_upload_is_too_big(sandbox_server, tmp_path, tally):
    from playwright.sync_api import sync_playwright

    big = tmp_path / "huge.png"
    big.write_bytes(b"\0" * (2 * 1024 * 1024))
    before = _tree(sandbox_server.base)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(sandbox_server.url)
            page.locator("#upload input[type=file]").set_input_files(str(big))
            note = page.get_by_text("exceed the maximum allowed size").first
            note.wait_for()
            text = note.inner_text()
        finally:
            browser.close()
    ok = "1" in text and "MB" in text.upper() and _tree(sandbox_server.base) == before
    tally.record("http", "oversized upload (page)", "2 MB over a 1 MB limit", ok)
    assert ok, text


def _consistent(ws: Workspace, name: str) -> tuple[int, set[str]]:
    m = mf.load(name, ws)
    listed = {it.file for it in m.items}
    on_disk = {f"images/{p.name}" for p in (mf.dataset_dir(name, ws) / "images").iterdir()}
    assert listed == on_disk, f"unlisted: {on_disk - listed}, missing: {listed - on_disk}"
    assert len(listed) == len(m.items), "an image is listed twice"
    return len(m.items), listed


def test_two_ingests_into_one_set_both_land(tmp_path, monkeypatch, tally):
    """Regression: the page's upload and sample buttons (separate queues) ran two ingests into
    one set at once; the last manifest save dropped the other's images (16 of 21 listed)."""
    write_style_set(tmp_path / "photos", "neon", 5)
    ws = Workspace(tmp_path / "outputs")
    services = SimpleNamespace(ws=ws, family="tiny")
    real = ingest_mod._one

    def slow(*a, **kw):  # widen the window: each image takes a little longer
        time.sleep(0.03)
        return real(*a, **kw)
    monkeypatch.setattr(ingest_mod, "_one", slow)
    files = [str(p) for p in sorted((tmp_path / "photos").glob("*.png"))]
    got: dict[str, object] = {}
    threads = [threading.Thread(target=lambda: got.update(files=images.add_files(services, None, "ds", "", files))),
               threading.Thread(target=lambda: got.update(sample=images.add_sample(services, "pastel", None, "ds", "")))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    accepted = sum(len(r.accepted) for _, r in got.values())
    n, _ = _consistent(ws, "ds")
    tally.record("http", "concurrent ingest", "upload + sample set into one set (in process)", n == accepted == 21)
    assert n == accepted == 5 + images.SAMPLE_COUNT


def test_two_clients_ingest_into_one_set_at_once(sandbox_server, tmp_path, tally):
    from gradio_client import Client, handle_file

    s = sandbox_server
    write_style_set(tmp_path / "photos", "stripes", 6, seed=4)
    files = [handle_file(str(p)) for p in sorted((tmp_path / "photos").glob("*.png"))]
    a, b = Client(s.url, verbose=False), Client(s.url, verbose=False)
    jobs = [a.submit(None, "together", "", files, api_name="/add_images"),
            b.submit("neon", None, "together", "", api_name="/add_sample")]
    out = [j.result(timeout=180) for j in jobs]
    n, _ = _consistent(Workspace(s.ws), "together")
    ok = n == 6 + images.SAMPLE_COUNT and all("accepted" in str(o[2]) for o in out)
    tally.record("http", "concurrent ingest", "two API clients, one set", ok)
    assert ok, (n, [o[2] for o in out])
