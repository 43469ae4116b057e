"""Library and Generate tab features the whole-flow test (``test_flow.py``) does not walk:
``<lora:…>`` prompt tags, the compare grid, a bad size or a bad import refused with its
reason, rename and delete.

Two adapters (neon, pastel), a second version of neon (neon-v2, same trigger word) and a spare
one are written into the server's workspace before it starts.
"""

import io
import json
import time

import pytest
from PIL import Image
from playwright.sync_api import expect

from .adapters import write_adapter
from .studio_page import advanced, another_page, gen_steps, generate, set_weight, shown_image, tab

pytestmark = pytest.mark.e2e

WAIT_MS = 120_000
FIRST_WAIT_MS = 300_000  # the first draw also loads the pipeline (once failed at 120 s in CI)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("outputs")
    for i, name in enumerate(["neon", "pastel", "spare"]):
        write_adapter(tiny_model, root, name, seed=i)
    write_adapter(tiny_model, root, "neon-v2", seed=3, trigger="neon")  # a second version of one style
    return root


def test_prompt_tag_adds_an_adapter(page):
    tab(page, "Generate")
    prompt = page.locator("#prompt textarea")
    prompt.fill("a red mug on a white background <lora:neon:0.8>")
    assert generate(page, "neon 0.8", FIRST_WAIT_MS).shape == (64, 64, 3)
    prompt.fill("a red mug <lora:nosuch:1>")
    page.get_by_role("button", name="Generate", exact=True).click()
    page.get_by_text("No adapter named 'nosuch'").first.wait_for(timeout=WAIT_MS)
    prompt.fill("a red mug on a white background")


def test_generate_clicked_the_moment_it_shows_draws_while_the_page_is_slow_to_load(page, server):
    """A slow server (a busy machine) is made here by holding every queued request the page sends
    while it loads, among them the run of the Generate tab's adapter list that registers the button's
    handler. Whenever the Generate button is on the page, a click on it must draw: before the fix a
    button drawn outside that render was shown, enabled, with no handler, and an early click was lost."""
    held, holding = [], [True]

    def hold(route):
        (held.append if holding[0] else lambda r: r.continue_())(route)

    with another_page(page, server, before_open=lambda pg: pg.route("**/queue/join*", hold)) as pg:
        tab(pg, "Generate")
        button = pg.get_by_role("button", name="Generate", exact=True)
        deadline = time.monotonic() + 60
        while not held and time.monotonic() < deadline:  # the page has asked for its first renders
            pg.wait_for_timeout(200)
        assert held, "the page sent no queued request while loading (nothing was held)"
        pg.wait_for_timeout(1500)  # the page as it looks to a user while the server is slow
        early = button.is_visible()
        if early:
            button.click()  # the click a user makes the moment they see the button
        holding[0] = False
        for route in held:
            route.continue_()
        if not early:
            button.click()  # it is drawn together with its handler: the first click possible
        pg.locator("#status").get_by_text("no adapters").wait_for(timeout=FIRST_WAIT_MS)


def test_a_page_draws_its_adapter_list_once(page, server):
    """The Generate tab's adapter list is drawn by ``@gr.render``. Drawn a second time while a page
    loads, a click in between named events the second drawing had replaced: Gradio answered 500
    (KeyError: fn_index) and the page said "Error" (CI, 2026-12-03). Counted from the page's own
    requests: every drawing is one queued request for the render's event."""
    joins = []

    def note(request):
        if "/queue/join" in request.url:
            joins.append(json.loads(request.post_data or "{}").get("fn_index"))

    with another_page(page, server, before_open=lambda pg: pg.on("request", note)) as pg:
        renders = pg.evaluate("() => window.gradio_config.dependencies.filter(d => d.render_id !== null"
                              " && d.render_id !== undefined).map(d => d.id)")
        assert len(renders) == 1, renders  # the adapter list is the page's one render
        tab(pg, "Generate")
        pg.get_by_role("button", name="Generate", exact=True).wait_for()
        pg.locator("#lora-on-neon").wait_for()
        pg.wait_for_timeout(3000)  # the page's first refresh, and anything it sets off
        for name in ("Images", "Generate"):  # a tab switch refreshes the page state too
            tab(pg, name)
            pg.wait_for_timeout(1500)
    assert [f for f in joins if f in renders] == renders, joins


def test_unticking_one_version_keeps_the_trigger_word_the_other_still_needs(page):
    tab(page, "Generate")
    prompt = page.locator("#prompt textarea")
    prompt.fill("a red mug")
    for name in ("neon", "neon-v2"):
        page.locator(f"#lora-on-{name} input").check()
    expect(prompt).to_have_value("a red mug, neon")  # added once
    page.locator("#lora-on-neon-v2 input").uncheck()
    page.wait_for_timeout(500)  # (the untick's own event, sent without the queue)
    expect(prompt).to_have_value("a red mug, neon")  # neon is still ticked and needs it
    page.locator("#lora-on-neon input").uncheck()
    expect(prompt).to_have_value("a red mug")


def test_a_refused_drawing_says_why_under_the_picture_and_keeps_it(page):
    """Out of range or unfit values (a width the model cannot draw, 4096 px, steps 0): the reason on
    the status line in place of "Drawing…", the last picture still shown, no red badge over it."""
    tab(page, "Generate")
    page.locator("#prompt textarea").fill("a red mug on a white background")
    generate(page, "no adapters", FIRST_WAIT_MS)
    before = shown_image(page, page.locator("#result img").first)
    gen = advanced(page.locator("#generate-advanced"), "Width")
    for field, value, reason in (("#width", "70", "multiples of 16"), ("#width", "4096", "at most 256 px"),
                                 ("#steps", "0", "Use a value from 1 to 150")):
        gen.locator(f"{field} input").fill(value)
        page.get_by_role("button", name="Generate", exact=True).click()
        page.locator("#status").get_by_text(reason).wait_for(timeout=WAIT_MS)
        expect(page.locator("#status")).to_contain_text("Not drawn")
        assert shown_image(page, page.locator("#result img").first) == before
        assert page.locator("#result .wrap span.error, #status .wrap span.error").count() == 0
        gen.locator(f"{field} input").fill("0" if field == "#width" else "25")


def test_compare_grid_draws_one_labelled_image(page):
    tab(page, "Generate")
    gen_steps(page, 4)  # six cells: keep each one cheap
    page.get_by_role("tab", name="Compare grid").click()
    page.get_by_label("Prompts (one per line)").fill("a red mug\na blue lamp")
    page.get_by_label("Adapter sets (one per line)").fill("none\nneon:1\nneon:0.5, pastel:0.5")
    page.get_by_role("button", name="Draw grid").click()
    img = page.locator("#grid img")
    img.wait_for(timeout=WAIT_MS)
    grid = Image.open(io.BytesIO(shown_image(page, img)))
    assert grid.width > 3 * 64 and grid.height > 2 * 64  # three columns, two rows, plus labels


def _choose(page, name: str) -> None:
    tab(page, "Library")
    page.locator("#library-cards").get_by_text(f"{name} ·").first.click()
    page.locator("#library-summary").get_by_text(name).first.wait_for(timeout=WAIT_MS)


def test_import_refuses_a_bad_file_with_its_reason(page, tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\xff" * 64)
    tab(page, "Library")
    page.locator("#import-file input[type=file]").set_input_files(str(bad))
    page.get_by_role("button", name="Import", exact=True).click()
    page.locator("#import-report").get_by_text("Refused").wait_for(timeout=WAIT_MS)


def test_rename_then_delete(page, workspace):
    """Rename and delete; a style ticked in Generate follows its rename (still ticked, same weight)
    and its deletion is said there, not drawn without a word."""
    tab(page, "Generate")
    page.locator("#lora-on-spare input").check()
    set_weight(page, "spare", 0.6)
    page.wait_for_timeout(500)  # (the tick's and the weight's own events, sent without the queue)
    _choose(page, "spare")
    page.get_by_label("New name").fill("spare2")
    page.get_by_role("button", name="Rename").click()
    page.locator("#library-cards").get_by_text("spare2 ·").first.wait_for(timeout=WAIT_MS)
    assert (workspace / "adapters" / "spare2" / "spare2.safetensors").is_file()
    assert not (workspace / "adapters" / "spare").exists()
    tab(page, "Generate")
    expect(page.locator("#lora-on-spare2 input")).to_be_checked(timeout=WAIT_MS)
    expect(page.locator("#lora-w-spare2 input[type=number]")).to_have_value("0.6")
    expect(page.locator("#status")).to_contain_text("spare was renamed spare2")
    _choose(page, "spare2")
    page.get_by_role("button", name="Delete…").click()
    page.get_by_role("button", name="Yes, delete it").click(timeout=WAIT_MS)  # one event: 60 s ran out at load 8
    page.locator("#library-message").get_by_text("Deleted").wait_for(timeout=WAIT_MS)
    assert not (workspace / "adapters" / "spare2").exists()
    page.locator("#library-cards").get_by_text("spare2 ·").wait_for(state="detached", timeout=WAIT_MS)
    tab(page, "Generate")
    expect(page.locator("#status")).to_contain_text("spare2 was ticked here and is no longer in the Library",
                                                    timeout=WAIT_MS)
    assert page.locator("#lora-on-spare2").count() == 0


def test_a_refresh_that_left_before_a_rename_does_not_undo_it(page, server, workspace):
    """A refresh carries the page's values of the moment it left. Sent just before a rename's answer
    arrived, it still named the old adapter; answered after the rename, it found that name gone and
    cleared the pick: Delete stayed disabled (CI, 2026-12-05, under load). Made certain here: the
    refresh's request is held until the rename is done and shown."""
    held, holding = [], [True]  # (is a refresh, route, its values): held while the test orders them

    def hold(route):
        if not holding[0]:
            return route.continue_()
        body = json.loads(route.request.post_data or "{}")
        held.append((body.get("fn_index") in refreshes, route, body.get("data")))

    def sent(pg, refresh: bool):
        for _ in range(WAIT_MS // 100):  # (route handlers run only inside Playwright calls)
            if any(r == refresh for r, _, _ in held):
                return
            pg.wait_for_timeout(100)
        raise AssertionError(f"the {'refresh' if refresh else 'rename'} was not sent: {held}")

    with another_page(page, server) as pg:
        refreshes = pg.evaluate("() => window.gradio_config.dependencies.filter(d => d.api_name === 'page_state')"
                                ".map(d => d.id)")
        assert refreshes
        _choose(pg, "pastel")
        pg.get_by_label("New name").fill("pastel-b")
        pg.route("**/queue/join*", hold)
        pg.get_by_role("button", name="Rename").click()
        sent(pg, refresh=False)
        pg.evaluate("() => document.getElementById('page-refresh').click()")  # the poller's click, now
        sent(pg, refresh=True)
        holding[0] = False  # (unroute would let the held ones go on its own)
        refresh = [(route, data) for r, route, data in held if r]
        assert all("pastel" in data and "pastel-b" not in data for _, data in refresh)  # it names the old one
        for r, route, _ in held:
            if not r:
                route.continue_()  # the rename (and whatever else its click sent) first
        pg.locator("#library-message").get_by_text("Renamed").wait_for(timeout=WAIT_MS)
        assert (workspace / "adapters" / "pastel-b").is_dir()
        for route, _ in refresh:
            route.continue_()  # answered now: it names "pastel", which is gone
        pg.wait_for_timeout(3000)
        assert pg.locator("#library-delete").is_enabled()
        pg.locator("#library-summary").get_by_text("pastel-b").first.wait_for(timeout=WAIT_MS)


def test_rename_and_delete_wait_for_a_training_started_in_a_terminal(page, workspace):
    """A training this server does not know of (``studio train`` in a terminal) holds the adapter's
    folder: the page's Rename and Delete say so and change nothing; once it ends they work."""
    from studio.adapters import busy

    folder = workspace / "adapters" / "neon"
    files = sorted(p.name for p in folder.iterdir() if p.name != busy.LOCK)
    _choose(page, "neon")
    with busy.training(folder):  # this test's process: another process than the server's
        page.get_by_label("New name").fill("neon-renamed")
        page.get_by_role("button", name="Rename").click()
        page.locator(".toast-body").get_by_text("is in use right now").first.wait_for(timeout=WAIT_MS)
        page.get_by_role("button", name="Delete…").click()
        page.get_by_role("button", name="Yes, delete it").click(timeout=WAIT_MS)
        page.locator(".toast-body").get_by_text("it was not deleted").first.wait_for(timeout=WAIT_MS)
        assert sorted(p.name for p in folder.iterdir() if p.name != busy.LOCK) == files
        assert not (workspace / "adapters" / "neon-renamed").exists()
    page.get_by_role("button", name="Rename").click()  # ended: the same click works
    page.locator("#library-message").get_by_text("Renamed").wait_for(timeout=WAIT_MS)
    assert (workspace / "adapters" / "neon-renamed" / "neon-renamed.safetensors").is_file()
