"""The fingerprint an open page polls (studio/ui/changes.py): it changes whenever something the
page shows from disk changes, and only then — an idle page must not refresh for nothing, and a
page must never miss a change (it would show a stale list until reloaded)."""

import os
import time
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studio.paths import Workspace
from studio.ui.changes import ROUTE, fingerprint, logged_in


def _touch(path, text="x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    # a later write in the same clock tick must still count: move the mtime on explicitly
    t = time.time_ns() + int(1e9) * (1 + len(text))
    os.utime(path, ns=(t, t))


# what the page shows: a change to any of these must change the fingerprint
SHOWN = {
    "adapter added": lambda ws: _touch(ws.adapters / "neon2" / "neon2.safetensors"),
    "adapter file rewritten": lambda ws: _touch(ws.adapters / "neon" / "neon.safetensors", "longer"),
    "adapter card picture added": lambda ws: _touch(ws.adapters / "neon" / "after.png"),
    "adapter deleted": lambda ws: [p.unlink() for p in (ws.adapters / "neon").iterdir()]
    and (ws.adapters / "neon").rmdir(),
    "image set added": lambda ws: _touch(ws.datasets / "more" / "manifest.json"),
    "captions saved": lambda ws: _touch(ws.datasets / "shop" / "manifest.json", "{}"),
    "run record rewritten": lambda ws: _touch(ws.runs / "r1" / "run.json", "{...}"),
    "training stepped": lambda ws: (ws.runs / "r1" / "events.jsonl").open("a").write('{"step": 2}\n'),
    "run started": lambda ws: _touch(ws.runs / "r2" / "run.json"),
}
# what it does not show: a refresh for these would be wasted
NOT_SHOWN = {
    "generated image saved": lambda ws: _touch(ws.images / "a.png"),
    "image added to a set (manifest unchanged)": lambda ws: _touch(ws.datasets / "shop" / "images" / "b.png"),
    "run's stderr grew": lambda ws: _touch(ws.runs / "r1" / "stderr.log", "warning"),
    "upload cache": lambda ws: _touch(ws.root / ".uploads" / "u.png"),
    "staging folder": lambda ws: _touch(ws.adapters / ".stage" / "t.safetensors"),
}


def _workspace(root):
    ws = Workspace(root)
    _touch(ws.adapters / "neon" / "neon.safetensors")
    _touch(ws.adapters / "neon" / "adapter.json")
    _touch(ws.datasets / "shop" / "manifest.json")
    _touch(ws.runs / "r1" / "run.json")
    (ws.runs / "r1" / "events.jsonl").write_text('{"step": 1}\n')
    return ws


def _services(ws, runner=None):
    return SimpleNamespace(ws=ws, runner=runner)


@pytest.mark.parametrize("change", sorted(SHOWN))
def test_every_change_the_page_shows_changes_the_fingerprint(tmp_path, change):
    ws = _workspace(tmp_path)
    before = fingerprint(_services(ws))
    assert fingerprint(_services(ws)) == before  # nothing changed: the same answer
    SHOWN[change](ws)
    assert fingerprint(_services(ws)) != before, change


@pytest.mark.parametrize("change", sorted(NOT_SHOWN))
def test_changes_the_page_does_not_show_leave_it_alone(tmp_path, change):
    ws = _workspace(tmp_path)
    before = fingerprint(_services(ws))
    NOT_SHOWN[change](ws)
    assert fingerprint(_services(ws)) == before, change


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(sorted(SHOWN) + sorted(NOT_SHOWN)), min_size=1, max_size=6))
def test_any_sequence_changes_it_exactly_when_a_shown_change_is_in_it(tmp_path_factory, changes):
    ws = _workspace(tmp_path_factory.mktemp("ws"))
    before = fingerprint(_services(ws))
    for c in changes:
        try:
            (SHOWN.get(c) or NOT_SHOWN[c])(ws)
        except FileNotFoundError:  # e.g. "adapter deleted" twice: the second does nothing
            pass
    assert (fingerprint(_services(ws)) != before) == any(c in SHOWN for c in changes), changes


def test_the_answer_names_nothing_on_disk(tmp_path):
    ws = _workspace(tmp_path)
    got = fingerprint(_services(ws))
    assert len(got) == 16 and all(c in "0123456789abcdef" for c in got)


class _Runner:
    def __init__(self, live):
        self.live, self.polls = live, 0

    def has_live(self):
        return self.live

    def poll(self):
        self.polls += 1


def test_the_job_runner_polls_only_while_a_run_is_live(tmp_path):
    """A queued run starts and a silently dead one is noticed through runner.poll() (which rewrites
    run.json); with nothing live the fingerprint costs stat calls only."""
    ws = _workspace(tmp_path)
    idle, live = _Runner(False), _Runner(True)
    fingerprint(_services(ws, idle))
    fingerprint(_services(ws, live))
    assert (idle.polls, live.polls) == (0, 1)


def test_gradios_queue_looks_for_work_at_a_calm_pace():
    """With no page open, Gradio's queue woke every 1 ms (a tenth of a core here): the server
    sets its idle sleeps; a Gradio that renames them fails here instead of silently costing CPU."""
    import gradio as gr

    from studio.ui.server import PROGRESS_IDLE_S, QUEUE_IDLE_S, calm_queue

    with gr.Blocks() as app:
        gr.Markdown("x")
    app.queue()
    calm_queue(app)
    assert (app._queue.sleep_when_free, app._queue.progress_update_sleep_when_free) == (QUEUE_IDLE_S, PROGRESS_IDLE_S)


def _scope(app, cookie: str | None = None) -> dict:
    headers = [(b"cookie", cookie.encode())] if cookie else []
    return {"type": "http", "method": "GET", "path": ROUTE, "headers": headers, "app": app}


def test_the_poll_route_lets_through_only_whom_gradio_would():
    """No --auth: anyone the guard let in; with --auth only Gradio's login cookie (either spelling),
    and nothing when the app's auth is of a kind this check does not know."""
    open_app = SimpleNamespace(auth=None, auth_dependency=None)
    assert logged_in(_scope(open_app))
    app = SimpleNamespace(auth=[("ann", "pw")], auth_dependency=None, tokens={"t0k": "ann"}, cookie_id="c1")
    assert not logged_in(_scope(app))
    assert not logged_in(_scope(app, "access-token-c1=forged"))
    assert not logged_in(_scope(app, "access-token-c2=t0k"))  # another app's cookie
    assert logged_in(_scope(app, "access-token-c1=t0k")) and logged_in(_scope(app, "x=1; access-token-unsecure-c1=t0k"))
    assert not logged_in(_scope(SimpleNamespace(auth=None, auth_dependency=lambda r: "ann"), "access-token-c1=t0k"))
    assert not logged_in(_scope(SimpleNamespace(auth=[("ann", "pw")], auth_dependency=None), "access-token-c1=t0k"))
