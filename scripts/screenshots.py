"""Screenshots of every tab mid-flow, at 1280x800, in headless Chromium.

    python scripts/screenshots.py [--out outputs/screenshots] [--readme docs/train-tab.png]

Starts `studio serve` on a scratch workspace (your outputs/ is not touched except for the
screenshots), makes a sample style set, starts a short training from the Train tab's first
screen (as a first-time user: never Advanced), and photographs each tab: ``<tab>.png`` (the
1280x800 viewport) and ``<tab>-full.png`` (the whole page). The Train tab mid-run is also
written, downscaled, to ``docs/train-tab.png`` for the README, and the finished run's style
meter (scorecard and checkpoints compared) to ``docs/style-meter.png``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from e2e.studio_page import browser_page, studio_server, tab  # noqa: E402

WAIT_MS = 900_000


def shoot(page, out: Path, name: str) -> None:
    page.wait_for_timeout(1500)  # let plots and images settle
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(out / f"{name}.png"))
    page.screenshot(path=str(out / f"{name}-full.png"), full_page=True)
    print(f"wrote {out / name}.png and {name}-full.png")


def top(page, name: str):
    panel = tab(page, name)
    page.evaluate("window.scrollTo(0, 0)")
    return panel


def flow(page, out: Path, readme: Path) -> None:
    images = top(page, "Images")
    images.get_by_role("button", name="Try a sample style set").click()
    page.get_by_text("neon-sample: accepted").wait_for(timeout=WAIT_MS)
    shoot(page, out, "images")

    train = top(page, "Train")  # as a first-time user: the first screen only, never Advanced
    train.get_by_label("Adapter name").fill("neon")
    train.get_by_label("Training length (steps)", exact=True).fill("60")
    train.get_by_label("Training length (steps)", exact=True).press("Tab")
    train.locator("#train-estimate").get_by_text("Time:").wait_for(timeout=WAIT_MS)
    shoot(page, out, "train-before-start")
    train.get_by_role("button", name="Start training").click()
    page.locator("#previews img").first.wait_for(timeout=WAIT_MS)  # the first style-meter round
    page.wait_for_timeout(6000)  # a few more loss points
    shoot(page, out, "train")
    write_readme_png(out / "train.png", readme)

    page.locator("#run-status[data-status=finished]").wait_for(timeout=WAIT_MS)
    shoot(page, out, "train-finished")
    page.locator("#scorecard-verdict").get_by_text("Recommended: step").wait_for(timeout=WAIT_MS)
    page.get_by_role("button", name="Compare checkpoints").click()
    page.locator("#checkpoint-grid img").wait_for(timeout=WAIT_MS)
    page.wait_for_function("() => document.querySelector('#checkpoint-grid img').complete", timeout=WAIT_MS)
    card = page.locator("#scorecard").first  # Gradio gives a group's id to two nested elements
    card.scroll_into_view_if_needed()
    page.wait_for_timeout(1500)
    card.screenshot(path=str(out / "style-meter.png"))
    write_readme_png(out / "style-meter.png", readme.parent / "style-meter.png")
    library = top(page, "Library")
    library.locator("#library-cards").get_by_text("neon ·").first.click()
    library.locator("#library-summary").get_by_text("neon").first.wait_for(timeout=WAIT_MS)
    shoot(page, out, "library")
    gen = top(page, "Generate")
    gen.locator("#prompt textarea").fill("a red mug")
    gen.get_by_label("neon", exact=True).check()  # adds the trigger word to the prompt
    gen.get_by_role("button", name="Generate", exact=True).click()
    page.locator("#status").get_by_text("neon 1").wait_for(timeout=WAIT_MS)
    gen.get_by_role("button", name="Before / after").click()
    gen.locator("#result").get_by_text("before:").first.wait_for(timeout=WAIT_MS)
    shoot(page, out, "generate")
    gen.get_by_role("tab", name="History").click()
    shoot(page, out, "generate-history")


def write_readme_png(src: Path, dest: Path) -> None:
    from PIL import Image

    dest.parent.mkdir(parents=True, exist_ok=True)
    img = Image.open(src).convert("RGB")
    img = img.resize((960, round(img.height * 960 / img.width)), Image.Resampling.LANCZOS)
    # octree keeps small areas of their own colour (a plot's thin lines); median cut over 128 colours
    # merged the style meter's purple line into its grey one
    img.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(dest, optimize=True)
    print(f"wrote {dest} ({dest.stat().st_size // 1024} KB)")


def main() -> int:
    from studio.paths import Workspace

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Workspace().screenshots, help="folder for the PNGs")
    p.add_argument("--readme", type=Path, default=ROOT / "docs" / "train-tab.png", help="README image")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="studio-shots-") as scratch:
        with studio_server(Path(scratch), timeout_s=300, quiet=True) as url, browser_page(url) as page:
            flow(page, args.out, args.readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
