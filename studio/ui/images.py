"""Images tab: build a dataset from uploads or a sample style set."""

from __future__ import annotations

import gradio as gr

from .services import Services


def images_tab(services: Services) -> None:
    gr.Markdown("Images (in progress)")
