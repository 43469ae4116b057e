"""Screenshots of every tab mid-flow, at 1280x800, in headless Chromium.

    python scripts/screenshots.py [--out outputs/screenshots] [--readme docs/train-tab.png]

Starts `studio serve` on a scratch workspace (your outputs/ is not touched except for the
screenshots), makes a sample style set, starts a short training, and photographs each tab:
``<tab>.png`` (the 1280x800 viewport) and ``<tab>-full.png`` (the whole page). The Train tab
mid-run is also written, downscaled, to ``docs/train-tab.png`` for the README.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
WAIT_MS = 900_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(workspace: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "STUDIO_OUTPUTS": str(workspace), "GRADIO_ANALYTICS_ENABLED": "False",
           "PYTHONPATH": str(ROOT)}
    env.pop("STUDIO_AUTH", None)
    proc = subprocess.Popen([sys.executable, "-m", "studio", "serve", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url
        except OSError:
            if proc.poll() is not None:
                raise SystemExit("studio serve exited; run it by hand to see why")
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("studio serve did not come up in 300 s")


def shoot(page, out: Path, name: str) -> None:
    page.wait_for_timeout(1500)  # let plots and images settle
    page.screenshot(path=str(out / f"{name}.png"))
    page.screenshot(path=str(out / f"{name}-full.png"), full_page=True)
    print(f"wrote {out / name}.png and {name}-full.png")


def tab(page, name: str):
    page.get_by_role("tab", name=name).click()
    page.evaluate("window.scrollTo(0, 0)")
    return page.locator(f"#tab-{name.lower()}")


def flow(page, out: Path, readme: Path) -> None:
    images = tab(page, "Images")
    images.get_by_role("button", name="Try a sample style set").click()
    page.get_by_text("neon-sample: accepted").wait_for(timeout=WAIT_MS)
    shoot(page, out, "images")

    train = tab(page, "Train")
    train.get_by_label("Adapter name").fill("neon")
    train.get_by_label("Steps", exact=True).fill("40")
    train.get_by_label("Batch size").fill("2")
    page.locator("#advanced").get_by_text("Advanced settings").click()
    for label, value in (("Preview every N steps", 10), ("Validate every N steps", 5), ("Sample steps", 8)):
        page.locator("#advanced").get_by_label(label).fill(str(value))
        page.locator("#advanced").get_by_label(label).press("Tab")
    page.locator("#advanced").get_by_text("Advanced settings").click()  # fold it again
    train.get_by_role("button", name="Start training").click()
    page.locator("#previews img").nth(1).wait_for(timeout=WAIT_MS)  # first preview (two prompts)
    page.locator("#run-stats").get_by_text("step 1", exact=False).wait_for(timeout=WAIT_MS)
    page.wait_for_timeout(6000)  # a few more loss points
    shoot(page, out, "train")
    write_readme_png(out / "train.png", readme)

    page.locator("#run-status[data-status=finished]").wait_for(timeout=WAIT_MS)
    shoot(page, out, "train-finished")
    tab(page, "Library")
    shoot(page, out, "library")
    gen = tab(page, "Generate")
    prompt = gen.get_by_label("Prompt", exact=True)
    if prompt.count():
        prompt.first.fill("a red mug, neon style")
    gen.get_by_role("button", name="Generate").first.click()
    gen.locator("img").first.wait_for(timeout=WAIT_MS)
    shoot(page, out, "generate")


def write_readme_png(src: Path, dest: Path) -> None:
    from PIL import Image

    dest.parent.mkdir(parents=True, exist_ok=True)
    img = Image.open(src).convert("RGB")
    img = img.resize((960, round(img.height * 960 / img.width)), Image.Resampling.LANCZOS)
    img.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(dest, optimize=True)
    print(f"wrote {dest} ({dest.stat().st_size // 1024} KB)")


def main() -> int:
    from playwright.sync_api import sync_playwright

    from studio.paths import Workspace

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Workspace().screenshots, help="folder for the PNGs")
    p.add_argument("--readme", type=Path, default=ROOT / "docs" / "train-tab.png", help="README image")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="studio-shots-") as scratch:
        proc, url = start_server(Path(scratch))
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.set_default_timeout(60_000)
                page.goto(url)
                flow(page, args.out, args.readme)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
