"""Drive the real studio in headless Chromium: open the page, generate an image."""

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import ROOT

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = _free_port()
    env = {**os.environ, "STUDIO_OUTPUTS": str(tmp_path_factory.mktemp("outputs")),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen([sys.executable, "-m", "studio", "serve", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
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
        raise RuntimeError("studio serve did not come up in 120 s")
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        pg = browser.new_page()
        pg.goto(server)
        pg.get_by_role("tab", name="Generate").click()
        yield pg
        browser.close()


def test_generate_tab_draws_an_image(page):
    page.locator("#prompt textarea").fill("a yellow ball on a blue background")
    page.click("#generate")
    img = page.locator("#result img")
    img.wait_for(timeout=60_000)
    page.get_by_text("seed 0").wait_for(timeout=60_000)
    assert "64×64" in page.locator("#status").inner_text()
    natural = page.evaluate("() => document.querySelector('#result img').naturalWidth")
    assert natural == 64


def test_bad_size_shows_an_error_not_a_crash(page):
    page.locator("#width input").fill("70")
    page.click("#generate")
    page.get_by_text("multiples of 16").first.wait_for(timeout=30_000)
    page.locator("#width input").fill("0")
