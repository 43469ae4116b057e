"""The user's whole flow in one browser session, on the tiny model, against `studio serve`:
a sample style set; an upload of photos plus one bad file (its reason shown); a caption
edited and saved; a short training with progress and previews that survives a page reload
and finishes into the Library; generation with that adapter on, off and blended with a
second one; and an export that downloads a file diffusers loads.

One adapter ("spark") is written into the fresh workspace before the server starts, so the
blend has a partner without a second training. Images are compared as the PNG pixels the
page shows.
"""

import re

import numpy as np
import pytest
from servers import events_written, loaded_image, wait_while_progressing

from .adapters import write_adapter
from .studio_page import fill_run, gen_steps, generate, pick, run_status, set_weight, tab

pytestmark = pytest.mark.e2e

RUN_TIMEOUT_MS = 600_000  # a few dozen tiny steps on a busy 2-core CI machine
STALL_S = 300  # the whole run may take longer on a loaded machine, as long as it keeps stepping
ADAPTER = "shop-style"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("outputs")
    write_adapter(tiny_model, root, "spark", seed=1)
    return root


def test_the_whole_flow(page, workspace, tiny_model, tmp_path):
    try_sample_set(page, workspace)
    upload_photos_and_a_bad_file(page, tmp_path / "photos")
    edit_a_caption(page, workspace)
    train_and_reload_mid_run(page, workspace)
    base, on, off, blend = generate_on_off_blended(page)
    assert base.shape == (64, 64, 3)
    assert np.array_equal(off, base), "the adapter toggled off must give exactly the base image"
    for a, b, what in ((on, off, "on vs off"), (blend, off, "blend vs off"), (blend, on, "blend vs on")):
        assert np.abs(a.astype(int) - b).mean() > 0.5, what
    export_and_load(page, tiny_model, tmp_path)


def try_sample_set(page, workspace) -> None:
    images = tab(page, "Images")
    pick(page, images, "Sample style", "pastel")
    images.get_by_role("button", name="Try a sample style set").click()
    page.get_by_text("pastel-sample: accepted 16, refused 0").wait_for()
    thumbs = images.locator("#thumbs img")
    thumbs.first.wait_for()
    assert thumbs.count() >= 8
    # the tiny model's 64 px images are enlarged without blurring
    width, _, rendering = loaded_image(thumbs.first)
    assert (width, rendering) == (64, "pixelated")
    assert (workspace / "datasets" / "pastel-sample" / "manifest.json").is_file()


def upload_photos_and_a_bad_file(page, folder) -> None:
    from studio.models.tiny.sample_data import write_style_set

    write_style_set(folder, "stripes", 6, seed=3)
    bad = folder / "notes.jpg"
    bad.write_text("this is a text file, not a photo")
    files = sorted(str(p) for p in folder.glob("*.png")) + [str(bad)]
    images = tab(page, "Images")
    images.get_by_label("New set name").fill("shop")
    images.get_by_label("Trigger word").fill("stripy")
    images.locator("#upload input[type=file]").set_input_files(files)
    images.locator("#upload").get_by_text("notes", exact=True).wait_for()  # shown as "notes" + ".jpg"
    images.get_by_role("button", name="Add to set").click()
    page.get_by_text("shop: accepted 6, refused 1").wait_for()
    row = images.locator("#ingest-report").get_by_role("row").filter(has_text="notes.jpg")
    assert "refused" in row.inner_text() and "not an accepted format" in row.inner_text()
    assert "6 images, 5 for training, 1 held out" in images.locator("#split-info").inner_text()


def edit_a_caption(page, workspace) -> None:
    from studio.data import manifest as mf
    from studio.paths import Workspace

    images = tab(page, "Images")
    table = images.locator("#captions")
    # the table shows the new set's rows (not the sample set's) before a cell is opened: a cell
    # opened in the old rows closes when the new ones are drawn
    table.get_by_role("gridcell").first.filter(has_text="stripes_000.png").wait_for()
    table.get_by_role("gridcell").nth(2).dblclick()  # first row, caption column
    # the cell's editor is a textarea; the table also holds a hidden file input (CSV drop) that
    # comes first in the page, so "the first input" is not the editor
    editor = table.locator("textarea")
    editor.wait_for(state="visible", timeout=15_000)
    editor.fill("a stripy mug on a shelf")
    editor.press("Enter")
    images.get_by_role("button", name="Save captions").click()
    page.get_by_text("Saved 1 caption in shop").wait_for()
    assert "a stripy mug on a shelf" in [it.caption for it in mf.load("shop", Workspace(workspace)).items]


def train_and_reload_mid_run(page, workspace) -> None:
    train = tab(page, "Train")
    pick(page, train, "Image set", "shop")
    # enough steps after the first preview (step 12) that the reload lands mid-run on a fast CPU too
    fill_run(train, ADAPTER, steps=60, sample_every=12, extra=(("Warmup steps", 2),))
    train.get_by_role("button", name="Start training").click()
    page.get_by_text(f"Training {ADAPTER} started").wait_for()
    page.locator("#run-status[data-status=running]").wait_for(timeout=RUN_TIMEOUT_MS)
    page.locator("#previews img").first.wait_for(timeout=RUN_TIMEOUT_MS)  # the first preview (step 12)
    assert "step" in page.locator("#run-stats").inner_text()

    page.reload()  # closing/reloading the tab never touches the job
    tab(page, "Train")
    page.locator("#run-status").wait_for()
    assert run_status(page) == "running"
    assert ADAPTER in page.locator("#run-card").inner_text()
    assert ADAPTER in page.locator("#job-status").inner_text()  # the header, on every tab
    page.locator("#previews img").first.wait_for()

    finished = page.locator("#run-status[data-status=finished]")
    wait_while_progressing(finished.is_visible, lambda: events_written(workspace), STALL_S,
                           "the Train tab to show the run finished")
    assert "is in the Library" in page.locator("#run-status").inner_text()
    assert page.locator("#previews img").count() >= 2
    assert (workspace / "adapters" / ADAPTER / f"{ADAPTER}.safetensors").is_file()
    page.locator("#runs").get_by_text("finished").locator("visible=true").first.wait_for()  # a hidden copy sizes the table
    tab(page, "Library")
    page.locator("#library-cards").get_by_text(f"{ADAPTER} ·").first.wait_for()


def generate_on_off_blended(page):
    gen = tab(page, "Generate")
    gen_steps(page, 6)
    mine = gen.get_by_label(ADAPTER, exact=True)
    spark = gen.get_by_label("spark", exact=True)
    mine.wait_for()
    base = generate(page, "no adapters")
    mine.check()
    on = generate(page, f"{ADAPTER} 1")
    mine.uncheck()
    off = generate(page, "no adapters")
    mine.check()
    spark.check()
    set_weight(page, ADAPTER, 0.5)
    set_weight(page, "spark", 0.5)
    blend = generate(page, f"{ADAPTER} 0.5, spark 0.5")
    return base, on, off, blend


def export_and_load(page, tiny_model, tmp_path) -> None:
    from safetensors.torch import load_file

    library = tab(page, "Library")
    library.locator("#library-cards").get_by_text(f"{ADAPTER} ·").first.click()
    library.locator("#library-summary").get_by_text(ADAPTER).first.wait_for()
    # before exporting: a file made on the tiny model fits only it (A1111 would load it and change nothing)
    library.locator("#export-fits").get_by_text("only fits that model").wait_for()
    library.get_by_role("button", name="Export", exact=True).click()
    link = library.get_by_role("button", name=re.compile(r"^Download .+\.safetensors$"))
    link.wait_for()
    with page.expect_download() as dl:
        link.click()
    path = tmp_path / dl.value.suggested_filename
    dl.value.save_as(path)
    sd = load_file(str(path))
    assert any(k.endswith("lora_down.weight") for k in sd)
    pipe = tiny_model.pipe
    pipe.load_lora_weights(str(path), adapter_name="exported")
    try:
        assert "exported" in pipe.get_list_adapters().get("unet", [])
    finally:
        pipe.delete_adapters("exported")
