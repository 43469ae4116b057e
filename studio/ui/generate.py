"""Generate tab. (Placeholder moved from app.py; the Generate tab proper is built on branch ui2.)"""

from __future__ import annotations

import gradio as gr

from ..config import GenerateSettings
from ..errors import StudioError
from .forms import field_input
from .services import Services


def generate_tab(services: Services) -> None:
    engine = services.engine
    with gr.Row():
        with gr.Column(scale=1):
            prompt = field_input(GenerateSettings, "prompt", label="Prompt", elem_id="prompt")
            negative = field_input(GenerateSettings, "negative", label="Negative prompt", elem_id="negative")
            with gr.Row():
                seed = field_input(GenerateSettings, "seed", label="Seed", elem_id="seed")
                steps = field_input(GenerateSettings, "steps", label="Steps")
                guidance = field_input(GenerateSettings, "guidance", label="Guidance")
            with gr.Row():
                width = field_input(GenerateSettings, "width", label="Width", elem_id="width")
                height = field_input(GenerateSettings, "height", label="Height", elem_id="height")
            button = gr.Button("Generate", variant="primary", elem_id="generate")
        with gr.Column(scale=1):
            image = gr.Image(label="Result", type="pil", elem_id="result", format="png", height=384,
                             elem_classes=["pixelated"])
            status = gr.Markdown(elem_id="status")

    def run(prompt, negative, seed, steps, guidance, width, height):
        try:
            s = GenerateSettings(prompt=prompt, negative=negative, seed=int(seed), steps=int(steps),
                                 guidance=float(guidance), width=int(width or 0), height=int(height or 0))
            r = engine.generate(s)
        except StudioError as e:
            raise gr.Error(str(e)) from None
        return r.image, f"{r.image.width}×{r.image.height}, seed {s.seed}, {r.seconds:.2f} s"

    button.click(run, [prompt, negative, seed, steps, guidance, width, height], [image, status],
                 concurrency_limit=1)
