"""The Train tab while one run trains and a second waits: the running run stays in the main
panel with the queued one listed under it, and a reloaded page shows the running run's image
set (not the alphabetically last one)."""

import re

import pytest

from .studio_page import fill_run, pick, tab

pytestmark = pytest.mark.e2e

RUN_TIMEOUT_MS = 600_000


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    from studio.data.ingest import ingest
    from studio.models.tiny.sample_data import write_style_set
    from studio.paths import Workspace

    root = tmp_path_factory.mktemp("outputs")
    for name, style in (("aaa-set", "stripes"), ("zzz-set", "neon")):
        photos = tmp_path_factory.mktemp(name)
        write_style_set(photos, style, 6, seed=3)
        ingest(name, [photos], ws=Workspace(root))
    return root


def test_running_run_stays_in_front_of_a_queued_one_and_after_a_reload(page, workspace):
    train = tab(page, "Train")
    pick(page, train, "Image set", "aaa-set")
    fill_run(train, "first", steps=2000, sample_every=0)
    train.get_by_role("button", name="Start training").click()
    page.locator("#run-status[data-status=running]").wait_for(timeout=RUN_TIMEOUT_MS)
    pick(page, train, "Image set", "zzz-set")
    train.get_by_label("Adapter name").fill("second")
    train.get_by_role("button", name="Start training").click()
    page.get_by_text("Training second queued").wait_for()
    card = page.locator("#run-card")
    card.locator("#run-queue").get_by_text("second").wait_for()
    assert "first" in card.locator("b").first.inner_text()
    assert page.locator("#run-status").get_attribute("data-status") == "running"

    page.reload()
    train = tab(page, "Train")
    page.locator("#run-card #run-queue").get_by_text("second").wait_for()
    assert page.locator("#run-status").get_attribute("data-status") == "running"
    assert "first" in page.locator("#run-card b").first.inner_text()
    assert train.get_by_label("Image set").input_value() == "aaa-set"
    # ... and its settings, not the preset's (a newcomer read "300" beside a run of 2000 steps)
    assert train.get_by_label("Training length (steps)").input_value() == "2000"

    # clean up (a training outlives the server): cancel the queued run, stop the running one
    from studio.jobs import JobRunner
    from studio.paths import Workspace

    runner = JobRunner(Workspace(workspace))
    runner.stop(next(r.id for r in runner.runs() if r.adapter == "second"))
    train.get_by_role("button", name="Stop").click()
    page.get_by_text("Stopping first").wait_for()
    # the main panel then shows the newest run (the cancelled one): the past-runs table says it
    page.locator("#runs").get_by_text("stopped").locator("visible=true").first.wait_for(timeout=RUN_TIMEOUT_MS)

    # an earlier run picked is shown, then the other one (the view is drawn for the pick: PageState.view)
    for name in ("first", "second"):
        train.get_by_label("Show an earlier run").click()
        page.get_by_role("option", name=re.compile(f"^{name} ·")).click()
        page.wait_for_function(f"() => document.querySelector('#run-card b')?.innerText.includes('{name}')",
                               timeout=RUN_TIMEOUT_MS)
        assert page.locator("#run-status").get_attribute("data-status") in ("stopped", "cancelled", "failed")
