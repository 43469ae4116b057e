"""Library and Generate tabs in headless Chromium, on the tiny model, as a user would use them.

Two adapters (neon, pastel) and a spare one are written into the server's workspace before it
starts. Images are compared as the PNG pixels the page shows.
"""

import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT

sys.path.insert(0, str(Path(__file__).parent))
from adapters import write_adapter  # noqa: E402

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
SERVER_CMD = os.environ.get("STUDIO_E2E_SERVER")  # dev only: another command that serves the same app
WAIT_MS = 120_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("outputs")
    for i, name in enumerate(["neon", "pastel", "spare"]):
        write_adapter(tiny_model, root, name, seed=i)
    return root


@pytest.fixture(scope="module")
def server(workspace):
    port = _free_port()
    env = {**os.environ, "STUDIO_OUTPUTS": str(workspace), "GRADIO_ANALYTICS_ENABLED": "False"}
    cmd = [sys.executable, "-m", "studio", "serve", "--port", str(port)]
    if SERVER_CMD:
        cmd = [sys.executable, *SERVER_CMD.split(), str(workspace), str(port)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def page(server, workspace):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        pg = browser.new_page(viewport={"width": 1280, "height": 800}, accept_downloads=True)
        pg.goto(server)
        yield pg
        browser.close()


def _shot(page, name: str) -> None:
    """1280-wide full-page screenshot into outputs/screenshots/ (the test runner's workspace)."""
    from studio.paths import Workspace

    out = Workspace().screenshots
    out.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out / f"{name}.png"), full_page=True)


def _generate(page, expect: str) -> np.ndarray:
    """Click Generate, wait for the status naming ``expect`` adapters, return the first image's pixels."""
    page.get_by_role("button", name="Generate", exact=True).click()
    page.locator("#status").get_by_text(expect).wait_for(timeout=WAIT_MS)
    src = page.locator("#result img").first.get_attribute("src")
    png = page.request.get(src).body()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _weight(page, name: str, value: float) -> None:
    box = page.locator(f"#lora-w-{name} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def test_generate_with_adapter_on_off_and_blended(page, workspace):
    page.get_by_role("tab", name="Generate").click()
    page.get_by_label("Steps", exact=True).fill("6")
    neon = page.get_by_label("neon", exact=True)
    pastel = page.get_by_label("pastel", exact=True)
    neon.wait_for(timeout=WAIT_MS)
    base = _generate(page, "no adapters")
    neon.check()
    on = _generate(page, "neon 1")
    neon.uncheck()
    off = _generate(page, "no adapters")
    neon.check()
    pastel.check()
    _weight(page, "neon", 0.5)
    _weight(page, "pastel", 0.5)
    blend = _generate(page, "neon 0.5, pastel 0.5")
    _shot(page, "generate")
    assert base.shape == (64, 64, 3)
    assert np.array_equal(off, base), "toggling the adapter off must give exactly the base image"
    assert np.abs(on.astype(int) - base).mean() > 1.0
    assert np.abs(blend.astype(int) - base).mean() > 1.0
    assert np.abs(blend.astype(int) - on).mean() > 1.0
    for box in (neon, pastel):
        box.uncheck()


def test_prompt_tag_adds_an_adapter(page):
    page.get_by_role("tab", name="Generate").click()
    prompt = page.locator("#prompt textarea")
    prompt.fill("a red mug on a white background <lora:neon:0.8>")
    _generate(page, "neon 0.8")
    prompt.fill("a red mug <lora:nosuch:1>")
    page.get_by_role("button", name="Generate", exact=True).click()
    page.get_by_text("No adapter named 'nosuch'").first.wait_for(timeout=WAIT_MS)
    prompt.fill("a red mug on a white background")


def test_compare_grid_draws_one_labelled_image(page):
    page.get_by_role("tab", name="Generate").click()
    page.get_by_text("Compare grid").click()
    page.get_by_label("Prompts (one per line)").fill("a red mug\na blue lamp")
    page.get_by_label("Adapter sets (one per line)").fill("none\nneon:1\nneon:0.5, pastel:0.5")
    page.get_by_role("button", name="Draw grid").click()
    img = page.locator("#grid img")
    img.wait_for(timeout=WAIT_MS)
    png = page.request.get(img.get_attribute("src")).body()
    grid = Image.open(io.BytesIO(png))
    assert grid.width > 3 * 64 and grid.height > 2 * 64  # three columns, two rows, plus labels
    _shot(page, "generate-grid")


def _pick(page, name: str) -> None:
    page.get_by_role("tab", name="Library").click()
    page.locator("#library-cards").get_by_text(f"{name} ·").first.click()
    page.locator("#library-summary").get_by_text(name).first.wait_for(timeout=WAIT_MS)


def test_export_downloads_a_file_diffusers_loads(page, workspace, tiny_model, tmp_path):
    from safetensors.torch import load_file

    _pick(page, "neon")
    page.get_by_label("Precision").click()
    page.get_by_role("option", name="fp16").click()
    page.get_by_role("button", name="Export", exact=True).click()
    link = page.locator("#export-file a").first
    link.wait_for(timeout=WAIT_MS)
    with page.expect_download() as dl:
        link.click()
    path = tmp_path / dl.value.suggested_filename
    dl.value.save_as(path)
    _shot(page, "library")
    sd = load_file(str(path))
    assert any(k.endswith("lora_down.weight") for k in sd) and all(str(v.dtype) == "torch.float16"
                                                                   for k, v in sd.items() if "weight" in k)
    pipe = tiny_model.pipe
    pipe.load_lora_weights(str(path), adapter_name="exported")
    try:
        assert "exported" in pipe.get_list_adapters().get("unet", [])
    finally:
        pipe.delete_adapters("exported")


def test_import_refuses_a_bad_file_with_its_reason(page, tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\xff" * 64)
    page.get_by_role("tab", name="Library").click()
    page.locator("#import-file input[type=file]").set_input_files(str(bad))
    page.get_by_role("button", name="Import", exact=True).click()
    page.locator("#import-report").get_by_text("Refused").wait_for(timeout=WAIT_MS)


def test_rename_then_delete(page, workspace):
    _pick(page, "spare")
    page.get_by_label("New name").fill("spare2")
    page.get_by_role("button", name="Rename").click()
    page.locator("#library-cards").get_by_text("spare2 ·").first.wait_for(timeout=WAIT_MS)
    assert (workspace / "adapters" / "spare2" / "spare2.safetensors").is_file()
    assert not (workspace / "adapters" / "spare").exists()
    page.get_by_role("button", name="Delete…").click()
    page.get_by_role("button", name="Yes, delete it").click()
    page.locator("#library-message").get_by_text("Deleted").wait_for(timeout=WAIT_MS)
    assert not (workspace / "adapters" / "spare2").exists()
    page.locator("#library-cards").get_by_text("spare2 ·").wait_for(state="detached", timeout=WAIT_MS)
