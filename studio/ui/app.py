"""The browser studio (Gradio Blocks). Generate tab; more tabs arrive with later features."""

from __future__ import annotations

import dataclasses
import logging

import gradio as gr

from ..config import GenerateSettings, ModelSettings, ServeSettings
from ..errors import StudioError
from ..generate import Engine

log = logging.getLogger(__name__)


def _field(cls: type, name: str) -> dataclasses.Field:
    return {f.name: f for f in dataclasses.fields(cls)}[name]


def _number(cls: type, name: str, label: str, **kw) -> gr.Number:
    f = _field(cls, name)
    return gr.Number(value=f.default, label=label, info=f.metadata["help"], precision=kw.pop("precision", None),
                     minimum=f.metadata.get("min"), maximum=f.metadata.get("max"), **kw)


def generate_tab(engine: Engine) -> None:
    d = GenerateSettings()
    with gr.Row():
        with gr.Column(scale=1):
            prompt = gr.Textbox(value=d.prompt, label="Prompt", info=_field(GenerateSettings, "prompt").metadata["help"],
                                elem_id="prompt")
            negative = gr.Textbox(value=d.negative, label="Negative prompt", elem_id="negative")
            with gr.Row():
                seed = _number(GenerateSettings, "seed", "Seed", precision=0, elem_id="seed")
                steps = _number(GenerateSettings, "steps", "Steps", precision=0)
                guidance = _number(GenerateSettings, "guidance", "Guidance")
            with gr.Row():
                width = _number(GenerateSettings, "width", "Width", precision=0, elem_id="width")
                height = _number(GenerateSettings, "height", "Height", precision=0, elem_id="height")
            button = gr.Button("Generate", variant="primary", elem_id="generate")
        with gr.Column(scale=1):
            image = gr.Image(label="Result", type="pil", elem_id="result", format="png", height=384)
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


def build_app(engine: Engine) -> gr.Blocks:
    with gr.Blocks(title="LoRA Style Studio") as app:
        gr.Markdown(f"# LoRA Style Studio\nBase model: **{engine.model.ref.location}** "
                    f"({engine.model.family}, {engine.model.device}, {str(engine.model.dtype).replace('torch.', '')})")
        with gr.Tab("Generate"):
            generate_tab(engine)
    return app


def launch(model: ModelSettings, serve: ServeSettings, block: bool = True):
    from ..models.loading import load_model

    engine = Engine(load_model(model.model, model.device, model.dtype))
    app = build_app(engine)
    app.queue(max_size=serve.queue_size)
    return app.launch(server_name=serve.host, server_port=serve.port, prevent_thread_lock=not block,
                      max_file_size=f"{serve.max_file_size_mb}mb", enable_monitoring=False,
                      show_error=True, inbrowser=False)
