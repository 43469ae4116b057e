"""Train tab: settings, preflight, start/stop/resume, live progress from the job records."""

from __future__ import annotations

import gradio as gr

from .services import Services


def train_tab(services: Services) -> None:
    gr.Markdown("Train (in progress)")
