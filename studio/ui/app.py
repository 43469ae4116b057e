"""The browser studio: a header and four tabs (Images, Train, Library, Generate).

Each tab lives in its own module and receives the same :class:`~studio.ui.services.Services`.
The header shows the base model and the current training on every tab, read from the job
records on a timer, so a reload or a second browser shows the same truth.
"""

from __future__ import annotations

import html
import logging

import gradio as gr

from .generate import CSS as GENERATE_CSS
from .generate import adapter_state, generate_tab
from .images import images_tab
from .library import CSS as LIBRARY_CSS
from .library import library_tab
from .page_state import PageState
from .services import Services
from .train import train_tab

log = logging.getLogger(__name__)

CSS = """
.gradio-container { max-width: 1260px !important; margin: 0 auto !important; }
/* the tiny model draws 64 px images: enlarge them without blurring */
.pixelated img, .pixelated canvas { image-rendering: pixelated; }
.card { border: 1px solid var(--border-color-primary); border-radius: 10px; padding: 12px;
        background: var(--block-background-fill); }
#header { display: flex; justify-content: space-between; align-items: baseline; flex-wrap: wrap; gap: 8px; }
#header h1 { margin: 0; font-size: 1.6rem; }
.muted { color: var(--body-text-color-subdued); font-size: 0.9rem; }
.job-line { font-size: 0.95rem; }
.progress { height: 14px; border-radius: 7px; background: var(--neutral-200); overflow: hidden; margin: 6px 0; }
.progress > div { height: 100%; background: var(--color-accent); transition: width .5s; }
.status-error { color: var(--error-text-color, #b91c1c); }
.status-ok { color: var(--color-green-600, #15803d); }
/* a button that does nothing now (Stop with no run, Delete… with no adapter) looks it: grey, not red */
button:disabled { filter: grayscale(1); opacity: .55; cursor: not-allowed; }
.page-refresh { display: none !important; }  /* clicked by the page's poller only (studio/ui/changes.py) */
"""
CSS += LIBRARY_CSS + GENERATE_CSS  # the tabs' own rules


def job_line(runner) -> str:
    """One line about the current training for the header (HTML)."""
    if runner is None:
        return '<span class="muted">Training is not available (job runner missing).</span>'
    runner.poll()
    snap = runner.active()
    if snap is None:
        return '<span class="muted">No training running.</span>'
    name = html.escape(snap.adapter)
    if snap.status == "queued":
        return f"Training <b>{name}</b>: queued (position {snap.queue_position})."
    pct = int(100 * snap.step / snap.total) if snap.total else 0
    return (f'Training <b>{name}</b>: {snap.status}, step {snap.step}/{snap.total} ({pct}%)'
            f'<div class="progress" style="max-width:420px"><div style="width:{pct}%"></div></div>')


def base_model_line(kind: str, location: str, family: str, device: str, dtype: str) -> str:
    """"Base model tiny (the built-in demo model) on CPU · float32": what draws, and where."""
    if kind == "tiny":
        what = "**tiny** (the built-in demo model: small, blurry 64 px images)"
    else:
        what = f"**{html.escape(location)}** ({html.escape(family)})"
    where = {"cpu": "CPU", "cuda": "GPU"}.get(device, html.escape(device).replace("cuda:", "GPU "))
    return f"Base model {what} on **{where}** · {html.escape(str(dtype))}"


def header(services: Services, page: PageState) -> None:
    m = services.engine.model
    with gr.Row(elem_id="header"):
        gr.Markdown("# LoRA Style Studio")
        gr.Markdown(base_model_line(m.ref.kind, m.ref.location, m.family, services.device, services.dtype),
                    elem_classes=["muted"], elem_id="base-model")
    job = gr.HTML(elem_id="job-status", elem_classes=["job-line"])

    def line(last):
        now = job_line(services.runner)
        return None if now == last else (now, now)

    page.view([job], line)
    # the same line for API clients (``/job_status``): the page gets it through the page state
    gr.on([], lambda: job_line(services.runner), None, job, api_name="job_status", queue=False,
          show_progress="hidden")


def build_app(services: Services) -> gr.Blocks:
    page = PageState(services)
    with gr.Blocks(title="LoRA Style Studio") as app:
        header(services, page)
        adapters = adapter_state(services)  # at the root, not in its tab: see adapter_state
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab("Images", id="images", elem_id="tab-images"):
                images_tab(services, page)
            with gr.Tab("Train", id="train", elem_id="tab-train"):
                train_tab(services, page)
            with gr.Tab("Library", id="library", elem_id="tab-library"):
                library_tab(services, page)
            with gr.Tab("Generate", id="generate", elem_id="tab-generate"):
                generate_tab(services, page, adapters)
        page.wire(app, tabs)
    return app
