"""Helpers for driving the real studio in headless Chromium: start ``studio serve`` on a
workspace, open a page, and the few steps every browser test takes (switch tab, pick from a
dropdown, fill the training form, generate and read back the image the page shows).

Used by the e2e tests (through ``conftest.py``'s fixtures) and by ``scripts/screenshots.py``.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 800}
SERVER_CMD = os.environ.get("STUDIO_E2E_SERVER")  # dev only: another command that serves the same app

# What is open now, for the report of a failing test (tests/e2e/conftest.py): each server (its
# process and log) and each page with what it printed to its console and whether its renderer crashed.
OPEN_SERVERS: list[tuple[subprocess.Popen, Path]] = []
OPEN_PAGES: list[tuple[object, list[str]]] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


READY = "is running on"  # the line `studio serve` prints once it answers (studio/ui/server.py)
LOCALHOST_CHECK = "When localhost is not accessible"  # Gradio's start-up self-check timed out (a busy machine)


@contextmanager
def studio_server(workspace: Path, timeout_s: float = 360, quiet: bool = False, tries: int = 3,
                  root: Path = ROOT, port: int | None = None) -> Iterator[str]:
    """``studio serve`` from this checkout (or ``root``) on ``workspace`` (STUDIO_OUTPUTS); yields its
    URL. Started again (up to ``tries`` times) when only Gradio's own start-up check of localhost failed."""
    for attempt in range(tries):
        try:
            ctx = _server(workspace, timeout_s, quiet, root, port)
            url = ctx.__enter__()
        except RuntimeError as e:
            if LOCALHOST_CHECK in str(e) and attempt + 1 < tries:
                continue
            raise
        break
    try:
        yield url
    finally:
        ctx.__exit__(None, None, None)


@contextmanager
def _server(workspace: Path, timeout_s: float, quiet: bool, root: Path, port: int | None = None) -> Iterator[str]:
    port = port or free_port()  # (a given port: the same server again, for pages open on it)
    env = {**os.environ, "STUDIO_OUTPUTS": str(workspace), "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}
    env.pop("STUDIO_AUTH", None)
    cmd = [sys.executable, "-m", "studio", "serve", "--port", str(port)]
    if SERVER_CMD:
        cmd = [sys.executable, *SERVER_CMD.split(), str(workspace), str(port)]
    # a file, never an unread pipe: once a pipe's buffer is full the server blocks on its next log line
    log = Path(workspace).parent / f"{Path(workspace).name}-server-{port}.log"
    out = open(log, "w")  # noqa: SIM115 (closed below); quiet servers' logs are read only when they fail
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    OPEN_SERVERS.append((proc, log))
    try:
        yield _wait_up(proc, f"http://127.0.0.1:{port}/", timeout_s, log)
    finally:
        OPEN_SERVERS.remove((proc, log))
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        out.close()
        if quiet:
            log.unlink(missing_ok=True)


def _wait_up(proc: subprocess.Popen, url: str, timeout_s: float, log: Path) -> str:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return _survives_self_check(proc, url, log)
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"studio serve exited:\n{log.read_text() if log.is_file() else ''}")
            time.sleep(0.5)
    raise RuntimeError(f"studio serve did not come up in {timeout_s:.0f} s")


def _survives_self_check(proc: subprocess.Popen, url: str, log: Path, grace_s: float = 20) -> str:
    """Gradio answers before its own check of localhost (which exits the server when it times out
    on a busy machine) has finished: wait for the line `studio serve` prints after that check, or a grace time."""
    end = time.time() + grace_s
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"studio serve exited:\n{log.read_text() if log.is_file() else ''}")
        if log.is_file() and READY in log.read_text(errors="replace"):
            return url
        time.sleep(0.5)
    return url


# Gradio's event stream, teed in the page: every message of a failed event (success false, an
# unexpected error) is kept in window.__studioEventErrors for the failure report. A bare "Error" on
# the page with no traceback in the server log comes from such a message or from the page itself.
TEE_EVENTS = """
(() => {
  window.__studioEventErrors = [];
  const real = window.fetch;
  window.fetch = async (...args) => {
    const r = await real(...args);
    const url = String(args[0] && args[0].url || args[0]);
    if (!url.includes("queue/data") || !r.body) return r;
    const [mine, theirs] = r.body.tee();
    (async () => {
      const reader = mine.getReader(), dec = new TextDecoder();
      let text = "";
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        text += dec.decode(value, {stream: true});
        let i;
        while ((i = text.indexOf("\\n")) >= 0) {
          const line = text.slice(0, i); text = text.slice(i + 1);
          if (/"success":\\s*false|unexpected_error|"msg":\\s*"error"/.test(line))
            window.__studioEventErrors.push(new Date().toISOString() + " " + line.slice(0, 600));
        }
      }
    })().catch(e => e.name === "AbortError" || window.__studioEventErrors.push("tee failed: " + e));
    return new Response(theirs, {status: r.status, statusText: r.statusText, headers: r.headers});
  };
})();
"""


def watch(page):
    """``page``, its console, errors and failed requests noted for :func:`failure_report` until :func:`unwatch`."""
    notes: list[str] = []
    page.add_init_script(TEE_EVENTS)
    page.on("response", lambda r: r.status >= 400 and notes.append(f"HTTP {r.status}: {r.request.method} {r.url}"[:500]))
    page.on("console", lambda m: notes.append(f"console {m.type}: {m.text}"[:500]))
    page.on("pageerror", lambda e: notes.append(f"page error: {e}"[:500]))
    page.on("crash", lambda _: notes.append("RENDERER CRASHED"))
    page.on("requestfailed", lambda r: None if "queue/data" in r.url  # a closed event stream: normal
            else notes.append(f"request failed: {r.method} {r.url} {r.failure}"[:500]))
    OPEN_PAGES.append((page, notes))
    return page


def unwatch(*pages) -> None:
    """Closed pages leave the failure report (call before their browser closes)."""
    OPEN_PAGES[:] = [(p, n) for p, n in OPEN_PAGES if p not in pages]


@contextmanager
def browser_page(url: str, timeout_ms: int = 60_000, before_open=None):
    """A 1280x800 Chromium page on ``url`` (downloads accepted); ``before_open(page)`` runs before the
    page loads (e.g. to hold some of its requests with ``page.route``)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            with _page_in(browser, url, timeout_ms, before_open) as page:
                yield page
        finally:
            browser.close()


def another_page(page, url: str, timeout_ms: int = 60_000, before_open=None):
    """A second page, like :func:`browser_page`'s, in ``page``'s browser. A thread holds one sync
    Playwright at a time: a second ``sync_playwright()`` while a module's ``page`` is open fails with
    "using Playwright Sync API inside the asyncio loop" (CI, 2026-12-02)."""
    return _page_in(page.context.browser, url, timeout_ms, before_open)


@contextmanager
def _page_in(browser, url: str, timeout_ms: int, before_open):
    page = watch(browser.new_page(viewport=VIEWPORT, accept_downloads=True))
    try:
        page.set_default_timeout(timeout_ms)
        if before_open:
            before_open(page)
        page.goto(url)
        yield page
    finally:
        unwatch(page)
        page.close()


def failure_report(tail_lines: int = 250) -> list[tuple[str, str]]:
    """Report sections for a failed test: the tail of each running server's log, with every thread's
    stack (``studio serve`` prints them on SIGUSR1), and for each open page its address, its status
    lines and the last things its console printed."""
    out = []
    for proc, log in OPEN_SERVERS:  # only a started `studio serve` has the handler (else SIGUSR1 ends it)
        started = not SERVER_CMD and log.is_file() and READY in log.read_text(errors="replace")
        if proc.poll() is None and started and hasattr(signal, "SIGUSR1"):
            proc.send_signal(signal.SIGUSR1)
    time.sleep(1.0 if OPEN_SERVERS else 0)
    for _, log in OPEN_SERVERS:
        try:
            lines = log.read_text(errors="replace").splitlines()
        except OSError as e:
            lines = [f"(unreadable: {e})"]
        out.append((f"server log {log.name} (last {tail_lines} lines)", "\n".join(lines[-tail_lines:])))
    for i, (page, notes) in enumerate(OPEN_PAGES):
        try:
            shown = page.evaluate("""() => [...document.querySelectorAll('#status, #run-status, .error, .toast-body')]
                .map(e => `${e.id || e.className}: ${e.innerText.slice(0, 300)}`).join('\\n')""")
            shown += "\n--- failed events (Gradio's stream):\n" + "\n".join(
                page.evaluate("() => (window.__studioEventErrors || []).slice(-20)"))
        except Exception as e:  # noqa: BLE001 - a crashed or closed page: say so
            shown = f"(page unreadable: {e})"
        out.append((f"page {i} {getattr(page, 'url', '?')}", f"{shown}\n--- last console/network notes:\n"
                    + "\n".join(notes[-40:])))
    return out


def tab(page, name: str):
    """Click the tab ``name`` and return its panel."""
    page.get_by_role("tab", name=name).click()
    return page.locator(f"#tab-{name.lower()}")


def pick(page, scope, label: str, option: str) -> None:
    """Choose ``option`` in the dropdown labelled ``label`` inside ``scope``."""
    scope.get_by_label(label).click()
    page.get_by_role("option", name=option, exact=True).click()


def advanced(scope, probe: str):
    """Open the "Advanced settings" accordion in ``scope`` (if the input labelled ``probe`` is hidden)."""
    if not scope.get_by_label(probe, exact=True).is_visible():
        scope.get_by_text("Advanced settings", exact=True).click()
        scope.get_by_label(probe, exact=True).wait_for()
    return scope


def gen_steps(page, steps: int) -> None:
    """Set the Generate tab's sampler steps (under its Advanced settings)."""
    gen = advanced(page.locator("#generate-advanced"), "Steps")
    gen.get_by_label("Steps", exact=True).fill(str(steps))


def fill_run(train, adapter: str, steps: int, sample_every: int, batch: int = 2, sample_steps: int = 4,
             extra: tuple[tuple[str, object], ...] = ()) -> None:
    """Fill the Train tab for a short run: name, steps, batch, how often to preview/validate/checkpoint."""
    train.get_by_label("Adapter name").fill(adapter)
    train.get_by_label("Training length (steps)", exact=True).fill(str(steps))
    adv = advanced(train.page.locator("#advanced"), "Batch size")
    adv.get_by_label("Batch size", exact=True).fill(str(batch))
    for label, value in (("Preview every N steps", sample_every), ("Validate every N steps", sample_every),
                         ("Checkpoint every", sample_every), ("Sample steps", sample_steps), *extra):
        adv.get_by_label(label, exact=True).fill(str(value))
        adv.get_by_label(label, exact=True).press("Tab")


def run_status(page) -> str | None:
    return page.locator("#run-status").get_attribute("data-status")


SHOWN_BYTES_JS = """async el => {
    const r = await fetch(el.currentSrc || el.src);
    if (!r.ok) throw new Error(`${r.status} ${r.statusText} for ${el.currentSrc || el.src}`);
    const bytes = new Uint8Array(await r.arrayBuffer());
    let s = "";
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(s);
}"""


def shown_image(page, img, timeout_ms: int = 60_000) -> bytes:
    """The file an ``<img>`` on the page shows: once the browser reports it loaded (``complete``,
    a real width), fetched by the browser itself. (Playwright's own request context does not
    retry a kept-alive connection the server has just closed, and under load that read as
    ECONNRESET: a test failure with nothing wrong in the product.)"""
    import base64

    el = img.element_handle(timeout=timeout_ms)
    page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=el, timeout=timeout_ms)
    return base64.b64decode(page.evaluate(SHOWN_BYTES_JS, el))


def png_pixels(page, img) -> "np.ndarray":  # noqa: F821
    """The RGB pixels of the PNG an ``<img>`` on the page shows."""
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(shown_image(page, img))).convert("RGB"))


def generate(page, expect: str, timeout_ms: int = 120_000):
    """Click Generate, wait for the status line naming ``expect`` (e.g. "neon 1", "no adapters"),
    return the first result's pixels."""
    page.get_by_role("button", name="Generate", exact=True).click()
    page.locator("#status").get_by_text(expect).wait_for(timeout=timeout_ms)
    return png_pixels(page, page.locator("#result img").first)


def plot_series(page, elem_id: str) -> tuple[dict[str, bool], set[str]]:
    """A Gradio plot as drawn: each legend entry with whether it lies inside the plot's box (not cut
    off below it), and the colours of its lines."""
    got = page.evaluate("""(id) => {
      const box = document.getElementById(id).getBoundingClientRect();
      const svg = document.querySelector('#' + id + ' svg');
      if (!svg) return [[], []];
      const legend = [...svg.querySelectorAll('[aria-roledescription=legend] text')]
        .filter(t => t.textContent).map(t => {
          const r = t.getBoundingClientRect();
          return [t.textContent, r.height > 0 && r.top >= box.top && r.bottom <= box.bottom]; });
      const lines = [...svg.querySelectorAll('path[aria-roledescription="line mark"]')].map(p => p.getAttribute('stroke'));
      return [legend, lines]; }""", elem_id)
    return dict(got[0]), set(got[1])


def set_weight(page, adapter: str, value: float) -> None:
    box = page.locator(f"#lora-w-{adapter} input[type=number]")
    box.fill(str(value))
    box.press("Enter")
