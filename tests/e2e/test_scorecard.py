"""Is it learned? In the browser: a short run shows the style meter's scorecard (rows per
preview round, the recommended checkpoint marked with its reason), previews drawn beside the
base model's image (before|after), "Compare checkpoints" draws the run's checkpoints side by side,
and "Use this checkpoint" saves a checkpoint as a new adapter that the Library lists."""

import re

import pytest
from PIL import Image
from servers import loaded_image

from studio.data.ingest import ingest
from studio.generate.grid import MIN_CELL, PAD
from studio.models.tiny.sample_data import write_style_set
from studio.paths import Workspace
from studio.ui.scorecard import COLORS
from studio.ui.train_view import COLORS as LOSS_COLORS

from .studio_page import fill_run, pick, plot_series, studio_server, tab

pytestmark = pytest.mark.e2e

RUN_TIMEOUT_MS = 600_000
ADAPTER = "meter-run"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    write_style_set(root.parent / "neon-src", "neon", 6)
    ingest("neon", [root.parent / "neon-src"], ws=Workspace(root))
    return root


@pytest.fixture(scope="module")
def server(workspace):
    with studio_server(workspace, timeout_s=600) as url:  # a busy shared CPU imports slowly
        yield url


def test_scorecard_previews_and_use_this_checkpoint(page, workspace):
    train = tab(page, "Train")
    for name in ("Use this checkpoint", "Compare checkpoints"):  # nothing to use or compare before a run
        assert page.get_by_role("button", name=name).is_disabled(), name
    pick(page, train, "Image set", "neon")
    fill_run(train, ADAPTER, steps=8, sample_every=4, sample_steps=2, extra=(("Judge first", 2),))
    train.get_by_role("button", name="Start training").click()
    page.get_by_text(f"Training {ADAPTER} started").wait_for()
    page.locator("#run-status[data-status=finished]").wait_for(timeout=RUN_TIMEOUT_MS)

    table = page.locator("#scorecard-table")
    for step in ("2", "4", "8"):  # the early round, then every 4 steps
        table.get_by_role("gridcell", name=step, exact=True).first.wait_for()
    verdict = page.locator("#scorecard-verdict")
    verdict.get_by_text(re.compile(r"(Recommended|Best so far): step")).wait_for()  # (8 steps may not learn it)
    assert "—" in verdict.inner_text()  # with its reason
    # the style meter's two lines in their own colours, each named in a legend that is not cut off
    legend, lines = plot_series(page, "style-plot")
    assert legend == {"style %": True, "leak %": True} and lines == set(COLORS.values()), (legend, lines)
    # both loss lines, although the page drew the plot before the first held-out check (Gradio keeps
    # the series of a plot's first value: a later one was never drawn)
    legend, lines = plot_series(page, "loss-plot")
    assert legend == {"training": True, "validation": True} and lines == set(LOSS_COLORS.values()), (legend, lines)

    samples = sorted((workspace / "adapters" / ADAPTER / "samples").glob("step-0000002-*.png"))
    with Image.open(samples[0]) as im:
        assert im.size == (2 * 64 + 2, 64)  # the base model's image beside the adapter's
    page.locator("#previews img").first.wait_for()

    # the run's checkpoints side by side: a label column, the base, then one column per judged round
    page.get_by_role("button", name="Compare checkpoints").click()
    w, h, _ = loaded_image(page.locator("#checkpoint-grid img"), timeout=RUN_TIMEOUT_MS / 1000)
    assert w == (1 + 1 + 3) * (MIN_CELL + PAD), (w, h)

    ckpt = page.locator("#scorecard-checkpoint")
    ckpt.click()
    page.get_by_role("option", name="step 2 ·").first.click()
    page.locator("#scorecard-new-name").get_by_role("textbox").fill("meter-early")
    page.get_by_role("button", name="Use this checkpoint").click()
    page.get_by_text("now in the Library as the new adapter").wait_for()
    assert (workspace / "adapters" / "meter-early" / "meter-early.safetensors").is_file()
    tab(page, "Library")
    page.locator("#library-cards").get_by_text("meter-early").first.wait_for()

    # the run's adapter renamed since (here by another window's Library): its checkpoints went with it
    from studio.adapters.library import Library

    Library(Workspace(workspace)).rename(ADAPTER, "meter-renamed")
    tab(page, "Train")
    page.locator("#scorecard-checkpoint").click()
    page.get_by_role("option", name="step 4 ·").first.click()
    page.locator("#scorecard-new-name").get_by_role("textbox").fill("meter-middle")
    page.get_by_role("button", name="Use this checkpoint").click()
    page.get_by_text("Step 4 of meter-renamed is now in the Library as the new adapter").wait_for()
    assert (workspace / "adapters" / "meter-middle" / "meter-middle.safetensors").is_file()
