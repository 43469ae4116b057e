"""Library tab. (Placeholder: the Library tab proper is built on branch ui2 and replaces this file.)"""

from __future__ import annotations

import gradio as gr

from .services import Services


def library_tab(services: Services) -> None:
    names = services.library.names()
    gr.Markdown("Adapters in the library: " + (", ".join(names) if names else "none yet."),
                elem_id="library-placeholder")
