"""The Images and Train tabs in headless Chromium, as a user drives them: a sample style
set; an upload of photos plus one bad file (its reason shown); a caption edited and saved;
a short training with progress and previews that survives a page reload and finishes; and
Stop mid-run, which still leaves a usable adapter."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
RUN_TIMEOUT_MS = 600_000  # a few dozen tiny steps on a busy 2-core CI machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("outputs")


@pytest.fixture(scope="module")
def server(outputs):
    port = _free_port()
    env = {**os.environ, "STUDIO_OUTPUTS": str(outputs), "GRADIO_ANALYTICS_ENABLED": "False"}
    env.pop("STUDIO_AUTH", None)
    proc = subprocess.Popen([sys.executable, "-m", "studio", "serve", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stdout.read())
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("studio serve did not come up in 180 s")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        pg = browser.new_page(viewport={"width": 1280, "height": 800})
        pg.set_default_timeout(60_000)
        pg.goto(server)
        yield pg
        browser.close()


def _tab(page, name: str):
    page.get_by_role("tab", name=name).click()
    return page.locator(f"#tab-{name.lower()}")


def _pick(page, scope, label: str, option: str) -> None:
    scope.get_by_label(label).click()
    page.get_by_role("option", name=option, exact=True).click()


def test_sample_style_set(page, outputs):
    images = _tab(page, "Images")
    _pick(page, images, "Sample style", "pastel")
    images.get_by_role("button", name="Try a sample style set").click()
    page.get_by_text("pastel-sample: accepted 16, refused 0").wait_for()
    thumbs = images.locator("#thumbs img")
    thumbs.first.wait_for()
    assert thumbs.count() >= 8
    # the tiny model's 64 px images are enlarged without blurring
    assert thumbs.first.evaluate("e => [e.naturalWidth, getComputedStyle(e).imageRendering]") == [64, "pixelated"]
    assert (outputs / "datasets" / "pastel-sample" / "manifest.json").is_file()


def test_upload_photos_and_a_bad_file(page, tmp_path):
    from studio.models.tiny.sample_data import write_style_set

    write_style_set(tmp_path, "stripes", 6, seed=3)
    bad = tmp_path / "notes.jpg"
    bad.write_text("this is a text file, not a photo")
    files = sorted(str(p) for p in tmp_path.glob("*.png")) + [str(bad)]
    images = _tab(page, "Images")
    images.get_by_label("New set name").fill("shop")
    images.get_by_label("Trigger word").fill("stripy")
    images.locator("#upload input[type=file]").set_input_files(files)
    images.locator("#upload").get_by_text("notes", exact=True).wait_for()  # shown as "notes" + ".jpg"
    images.get_by_role("button", name="Add to set").click()
    page.get_by_text("shop: accepted 6, refused 1").wait_for()
    report = images.locator("#ingest-report")
    row = report.get_by_role("row").filter(has_text="notes.jpg")
    assert "refused" in row.inner_text() and "not an accepted format" in row.inner_text()
    assert "6 images, 5 for training, 1 held out" in images.locator("#split-info").inner_text()


def test_edit_a_caption_and_save(page, outputs):
    from studio.data import manifest as mf
    from studio.paths import Workspace

    images = _tab(page, "Images")
    table = images.locator("#captions")
    table.get_by_role("gridcell").nth(2).dblclick()  # first row, caption column
    editor = table.locator("textarea, input").first
    editor.fill("a stripy mug on a shelf")
    editor.press("Enter")
    images.get_by_role("button", name="Save captions").click()
    page.get_by_text("Saved 1 caption in shop").wait_for()
    captions = [it.caption for it in mf.load("shop", Workspace(outputs)).items]
    assert "a stripy mug on a shelf" in captions


def _fill_run(train, adapter: str, steps: int, sample_every: int) -> None:
    train.get_by_label("Adapter name").fill(adapter)
    train.get_by_label("Steps", exact=True).fill(str(steps))
    train.get_by_label("Batch size").fill("2")
    adv = train.page.locator("#advanced")
    if not adv.get_by_label("Preview every N steps").is_visible():
        adv.get_by_text("Advanced settings").click()
    for label, value in (("Preview every N steps", sample_every), ("Validate every N steps", sample_every),
                         ("Checkpoint every", sample_every), ("Sample steps", 4)):
        adv.get_by_label(label).fill(str(value))
        adv.get_by_label(label).press("Tab")


def _status(page) -> str:
    return page.locator("#run-status").get_attribute("data-status")


def test_train_shows_progress_survives_a_reload_and_finishes(page, server, outputs):
    train = _tab(page, "Train")
    _pick(page, train, "Image set", "shop")
    _fill_run(train, "shop-style", steps=24, sample_every=8)
    train.get_by_role("button", name="Start training").click()
    page.get_by_text("Training shop-style started").wait_for()
    page.locator("#run-status[data-status=running]").wait_for(timeout=RUN_TIMEOUT_MS)
    page.locator("#previews img").first.wait_for(timeout=RUN_TIMEOUT_MS)  # the first preview (step 8)
    assert "step" in page.locator("#run-stats").inner_text()

    page.reload()  # closing/reloading the tab never touches the job
    _tab(page, "Train")
    page.locator("#run-status").wait_for()
    assert _status(page) == "running"
    assert "shop-style" in page.locator("#run-card").inner_text()
    assert "shop-style" in page.locator("#job-status").inner_text()  # the header, on every tab
    page.locator("#previews img").first.wait_for()

    page.locator("#run-status[data-status=finished]").wait_for(timeout=RUN_TIMEOUT_MS)
    assert "is in the Library" in page.locator("#run-status").inner_text()
    assert page.locator("#previews img").count() >= 2
    assert (outputs / "adapters" / "shop-style" / "shop-style.safetensors").is_file()
    page.locator("#runs").get_by_text("finished").first.wait_for()


def test_stop_mid_run_leaves_a_usable_adapter(page, outputs):
    from diffusers import StableDiffusionPipeline

    train = _tab(page, "Train")
    _fill_run(train, "shop-stopped", steps=400, sample_every=0)
    train.get_by_role("button", name="Start training").click()
    page.get_by_text("Training shop-stopped started").wait_for()
    page.locator("#run-status[data-status=running]").wait_for(timeout=RUN_TIMEOUT_MS)
    page.locator("#run-stats").get_by_text("step 2/400").or_(
        page.locator("#run-stats").get_by_text("step 3/400")).wait_for(timeout=RUN_TIMEOUT_MS)
    train.get_by_role("button", name="Stop").click()
    page.get_by_text("Stopping shop-stopped").wait_for()
    page.locator("#run-status[data-status=stopped]").wait_for(timeout=RUN_TIMEOUT_MS)
    path = outputs / "adapters" / "shop-stopped" / "shop-stopped.safetensors"
    loaded = StableDiffusionPipeline.lora_state_dict(str(path))  # diffusers' own loader reads it
    state = loaded[0] if isinstance(loaded, tuple) else loaded
    assert any("lora" in k for k in state)


def test_bad_settings_are_refused_before_a_job_starts(page, outputs):
    train = _tab(page, "Train")
    train.get_by_label("Adapter name").fill("../escape")
    train.get_by_role("button", name="Start training").click()
    page.get_by_text("is not allowed").first.wait_for()
    runs_before = len(list((outputs / "runs").iterdir()))
    train.get_by_label("Adapter name").fill("shop-style")  # already in the library
    train.get_by_role("button", name="Start training").click()
    page.get_by_text("already exists").first.wait_for()
    assert len(list((outputs / "runs").iterdir())) == runs_before
