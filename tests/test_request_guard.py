"""The request guard (studio/ui/guard.py) in process: which Host names and which Origin /
Referer headers pass, on a small Starlette app with a GET, a POST and a websocket route.
The same guard on a real ``studio serve`` is tested in tests/faults/test_cross_site.py."""

import ipaddress

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from studio.errors import StudioError
from studio.ui.guard import RequestGuard, cross_site, host_rule, parse_allowed_hosts, same_origin, split_host

LOCAL = host_rule("127.0.0.1", "")
PAGE = ('<html><script>window.gradio_config = {"auth_required":true};</script>'
        '<script>window.gradio_api_info = {"named_endpoints":{"/x":{"enum":["zebraplanted"]}}};</script></html>')


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:7860", "localhost", "localhost:7860", "LOCALHOST:7860",
                                  "localhost.:7860", "LocalHost.", "[::1]:7860", "[::1]", "127.0.0.2:80",
                                  "127.0.0.1:1"])  # a port other than the server's: SSH tunnels forward that way
def test_loopback_names_and_addresses_pass(host):
    assert LOCAL.allows(host)


@pytest.mark.parametrize("host", [None, "", "evil.example", "evil.example:7860", "localhost.evil.example",
                                  "127.0.0.1.evil.example", "evil.example.", "localhost:7860@evil.example",
                                  "evil.example/localhost", "[::1", "[evil.example]:7860", "::1", "localhost:x",
                                  "localhost:7860:7860", "0.0.0.0:7860", "192.168.1.5:7860", "localhost evil"])
def test_other_hosts_are_refused(host):
    assert not LOCAL.allows(host)


def test_host_flag_and_allowed_hosts_add_names():
    rule = host_rule("studio.lan", "Box.Example, *.corp.example 10.0.0.7")
    for ok in ("studio.lan:7860", "box.example", "BOX.EXAMPLE.:443", "a.corp.example", "a.b.corp.example",
               "10.0.0.7:7860", "localhost"):
        assert rule.allows(ok), ok
    for bad in ("corp.example", "xcorp.example", "evil.example", "10.0.0.8", "box.example.evil"):
        assert not rule.allows(bad), bad


def test_a_wildcard_bind_accepts_ip_literals_but_not_names():
    """Bound to every interface, the LAN address is a valid Host; an IP literal cannot be rebound."""
    for bind in ("0.0.0.0", "::"):
        rule = host_rule(bind, "")
        assert rule.allows("192.168.1.5:7860") and rule.allows("[fe80::1]:7860") and rule.allows("localhost")
        assert not rule.allows("evil.example:7860") and not rule.allows("0.0.0.0.evil.example")
    assert host_rule("0.0.0.0", "*").allows("anything.example")  # explicitly off


@pytest.mark.parametrize("entry", ["http://studio.lan", "studio.lan:7860", "*", "a*.example", "*example.com",
                                   "stu/dio", "**.example", "a..b", "*.", "[::1]:80"])
def test_allowed_hosts_entries_are_checked(entry):
    if entry == "*":
        assert parse_allowed_hosts(entry) == ["*"]
        return
    with pytest.raises(StudioError, match="--allowed-hosts"):
        parse_allowed_hosts(entry)


def test_split_host_and_same_origin():
    assert split_host("[::1]:7860") == ("::1", 7860) and split_host("LOCALHOST.") == ("localhost", None)
    assert same_origin("http://127.0.0.1:7860", "127.0.0.1:7860")
    assert same_origin("http://localhost.:7860/page?x", "LOCALHOST:7860")
    assert same_origin("http://[::1]:7860", "[::1]:7860")
    assert same_origin("https://studio.example", "studio.example")  # TLS proxy: default port on both sides
    assert same_origin("http://studio.example", "studio.example:80")
    for origin in ("http://127.0.0.1:7861", "http://localhost:7860", "null", "", "file:///tmp/x.html",
                   "http://evil.example", "http://127.0.0.1:7860@evil.example", "https://studio.example:8443",
                   "javascript:alert(1)", "http://[::1"):
        assert not same_origin(origin, "127.0.0.1:7860" if "studio" not in origin else "studio.example"), origin


def _h(**kw) -> Headers:
    return Headers({k.replace("_", "-"): v for k, v in {"host": "127.0.0.1:7860", **kw}.items()})


def test_cross_site_rules():
    own = "http://127.0.0.1:7860"
    assert cross_site("POST", _h()) is None  # no Origin, no Referer: a script (gradio_client, curl)
    assert cross_site("POST", _h(origin=own)) is None
    assert cross_site("POST", _h(referer=own + "/?page=x")) is None
    assert "Origin 'null'" in cross_site("POST", _h(origin="null"))
    assert "Origin" in cross_site("POST", _h(origin="http://evil.example", referer=own + "/"))
    assert "Origin" in cross_site("GET", _h(origin="http://evil.example"))  # a cross-site fetch reads nothing
    assert "Referer" in cross_site("POST", _h(referer="http://evil.example/x"))  # Referer only
    assert "Referer" in cross_site("WEBSOCKET", _h(referer="http://evil.example/x"))
    assert cross_site("GET", _h(referer="http://search.example/?q=studio")) is None  # a link to the page


@given(label=st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True),
       tld=st.sampled_from(["example", "com", "localhost.evil", "127.0.0.1.nip.io", "lan"]),
       port=st.one_of(st.none(), st.integers(1, 65535)), upper=st.booleans(), dot=st.booleans())
@settings(max_examples=60, derandomize=True, deadline=None)
def test_no_rebindable_name_passes(label, tld, port, upper, dot):
    """Any name a hostile DNS server could answer for is refused, however it is spelled."""
    name = f"{label}.{tld}" + ("." if dot else "")
    name = name.upper() if upper else name
    host = name if port is None else f"{name}:{port}"
    assert not LOCAL.allows(host) and not host_rule("0.0.0.0", "").allows(host)
    assert cross_site("POST", Headers({"host": "127.0.0.1:7860", "origin": f"http://{host}"})) is not None


@given(st.text(max_size=40))
@settings(max_examples=80, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_arbitrary_host_text_never_crashes_and_only_loopback_passes(text):
    if LOCAL.allows(text):
        host = split_host(text)[0]
        assert host == "localhost" or ipaddress.ip_address(host).is_loopback, text


# --- the middleware on a small app --------------------------------------------------------

def _app(blank: bool = False):
    calls = []

    async def page(request):
        return HTMLResponse(PAGE)

    async def change(request):
        calls.append(await request.body())
        return PlainTextResponse("changed")

    async def ws(websocket):
        await websocket.accept()
        await websocket.send_text("hello")
        await websocket.close()

    app = Starlette(routes=[Route("/", page), Route("/change", change, methods=["POST", "PUT", "DELETE", "PATCH"]),
                            WebSocketRoute("/ws", ws)],
                    middleware=[Middleware(RequestGuard, rule=LOCAL, blank_api_info=blank)])
    return TestClient(app, base_url="http://127.0.0.1:7860"), calls


def test_middleware_refuses_before_the_route_runs():
    client, calls = _app()
    assert client.get("/", headers={"host": "evil.example:7860"}).status_code == 400
    r = client.post("/change", content=b"x", headers={"host": "evil.example", "origin": "http://evil.example"})
    assert r.status_code == 400 and "--allowed-hosts" in r.text
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        r = client.request(method, "/change", content=b"x", headers={"origin": "http://evil.example"})
        assert r.status_code == 403 and "Cross-site request refused" in r.text
        assert client.request(method, "/change", content=b"x", headers={"referer": "http://e.example/"}).status_code == 403
    assert calls == []
    assert client.post("/change", content=b"ok", headers={"origin": "http://127.0.0.1:7860"}).text == "changed"
    assert client.post("/change", content=b"ok2").text == "changed"  # no Origin: a script
    assert calls == [b"ok", b"ok2"]


def test_middleware_guards_websockets():
    client, _ = _app()
    own = {"host": "127.0.0.1:7860", "origin": "http://127.0.0.1:7860"}
    with client.websocket_connect("/ws", headers=own) as ws:
        assert ws.receive_text() == "hello"
    for headers in ({"origin": "http://evil.example"}, {"host": "evil.example"}, {"origin": "null"}):
        with pytest.raises(WebSocketDisconnect):
            with client.websocket_connect("/ws", headers={**own, **headers}) as ws:
                ws.receive_text()


def test_middleware_blanks_the_api_description_in_html_only_when_asked():
    client, _ = _app(blank=True)
    r = client.get("/")
    assert r.status_code == 200 and "zebraplanted" not in r.text and "window.gradio_api_info = null;" in r.text
    assert '"auth_required":true' in r.text and int(r.headers["content-length"]) == len(r.content)
    client, _ = _app(blank=False)
    assert "zebraplanted" in client.get("/").text
