"""`studio serve` serves nothing outside the workspace (and Gradio's upload cache), binds
localhost by default, takes a login, and warns when it is open to the network without one."""

import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from conftest import ROOT
from servers import SECRET, free_port

from studio.config import ServeSettings
from studio.errors import StudioError
from studio.paths import Workspace
from studio.ui.guard import RequestGuard
from studio.ui.changes import ChangesRoute
from studio.ui.server import exposure_warning, launch_kwargs, parse_auth


@pytest.fixture(scope="module")
def server(sandbox_server):
    return sandbox_server.url, sandbox_server.ws, sandbox_server.base


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=20) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_file_route_serves_the_workspace(server):
    url, ws, _ = server
    status, body = _get(url + "/gradio_api/file=" + str(ws / "inside.txt"))  # the route works...
    assert status == 200 and body == b"hello from the workspace"


@pytest.mark.parametrize("path", [
    "/file=/etc/passwd", "/gradio_api/file=/etc/passwd", "/gradio_api/file=%2Fetc%2Fpasswd",
    "/gradio_api/file=../../../../../../etc/passwd", "/gradio_api/file=..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/gradio_api/file=%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/gradio_api/file=%252Fetc%252Fpasswd",
    "/gradio_api/file=//etc/passwd", "/file=/proc/self/environ",
])
def test_file_route_refuses_system_files(server, path):  # ...and serves nothing else
    url, _, _ = server
    status, body = _get(url + path)
    assert status >= 400 and b"root:" not in body and b"PATH=" not in body


def test_file_route_refuses_a_sibling_of_the_workspace(server):
    url, ws, base = server
    for path in (str(base / "outside.txt"), f"{ws}/../outside.txt", f"{ws}/%2e%2e/outside.txt",
                 f"{ws}%2F..%2Foutside.txt"):
        status, body = _get(url + "/gradio_api/file=" + path)
        assert status >= 400 and SECRET.encode() not in body, path


def test_source_tree_is_not_served(server):
    url, _, _ = server
    status, body = _get(url + "/gradio_api/file=" + str(ROOT / "pyproject.toml"))
    assert status >= 400 and b"lora-style-studio" not in body


def test_defaults_and_launch_settings(tmp_path):
    s = ServeSettings()
    assert s.host == "127.0.0.1"
    kw = launch_kwargs(s, Workspace(tmp_path), ("me", "pw"))
    assert kw["share"] is False and kw["enable_monitoring"] is False
    assert kw["allowed_paths"] == [str(tmp_path.resolve())]
    assert kw["auth"] == ("me", "pw") and kw["max_file_size"] == f"{s.max_file_size_mb}mb"
    # Host / Origin checks before any route (studio/ui/guard.py), the page's poll route inside them
    guard, poll = kw["app_kwargs"]["middleware"]
    assert guard.cls is RequestGuard and poll.cls is ChangesRoute and guard.kwargs["blank_api_info"] is True
    assert guard.kwargs["rule"].allows("localhost:7860") and not guard.kwargs["rule"].allows("evil.example")
    plain = launch_kwargs(ServeSettings(allowed_hosts="studio.lan"), Workspace(tmp_path), None)
    guard, _ = plain["app_kwargs"]["middleware"]
    assert guard.kwargs["blank_api_info"] is False and guard.kwargs["rule"].allows("studio.lan")


def test_serve_refuses_a_bad_allowed_hosts_entry_before_loading(tmp_path):
    env = {**os.environ, "STUDIO_OUTPUTS": str(tmp_path), "GRADIO_ANALYTICS_ENABLED": "False"}
    r = subprocess.run([sys.executable, "-m", "studio", "serve", "--port", str(free_port()), "--allowed-hosts",
                        "http://studio.lan:7860"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "--allowed-hosts entry" in r.stderr and "Traceback" not in r.stderr


def test_auth_parsing_and_exposure_warning():
    assert parse_auth("") is None
    assert parse_auth("ann:s3cret:x") == ("ann", "s3cret:x")
    with pytest.raises(StudioError, match="USER:PASS"):
        parse_auth("no-colon")
    assert exposure_warning("127.0.0.1", None) is None
    assert exposure_warning("localhost", None) is None
    assert exposure_warning("0.0.0.0", ("a", "b")) is None
    assert "without a login" in exposure_warning("0.0.0.0", None)
    assert "without a login" in exposure_warning("192.168.1.5", None)


def test_cli_prints_the_warning_before_serving(tmp_path):
    """Bound to all interfaces without a login: the warning is printed (the server is then stopped)."""
    env = {**os.environ, "STUDIO_OUTPUTS": str(tmp_path), "GRADIO_ANALYTICS_ENABLED": "False"}
    env.pop("STUDIO_AUTH", None)
    proc = subprocess.Popen([sys.executable, "-m", "studio", "serve", "--host", "0.0.0.0", "--port",
                             str(free_port())], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert "WARNING" in line and "--auth" in line


def test_uploads_stay_inside_the_workspace_unless_told_otherwise(tmp_path, monkeypatch):
    from studio.paths import Workspace
    from studio.ui.server import keep_uploads_in

    ws = Workspace(tmp_path / "outputs")
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    assert keep_uploads_in(ws) == str(ws.uploads) and ws.uploads.parent == ws.root
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "mine"))
    assert keep_uploads_in(ws) == str(tmp_path / "mine")
