"""Generate tab: prompt and sampler settings, every library adapter as a toggle + weight, results, compare grid.

The adapter toggles are drawn by ``@gr.render`` from the library's names, which follow the page
state (:mod:`studio.ui.page_state`), so an adapter that a training just finished appears without a restart. Sliders are
keyed by adapter name: re-drawing the list keeps what the user set.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING

import gradio as gr

from ..config import GenerateSettings
from ..errors import StudioError
from .common import guard
from .forms import build, field_input, field_of
from .page_state import PageState

if TYPE_CHECKING:
    from .services import Services

log = logging.getLogger(__name__)

SEED_MAX = 2**31 - 1
ENGINE_QUEUE = "generate"  # one concurrency group: the button and the API draw one at a time
# Gallery captions say what was drawn: let them wrap instead of cutting them off.
CSS = """
#result .caption-label { white-space: normal !important; overflow: visible !important;
  text-overflow: clip !important; max-width: 100% !important; font-size: 0.8rem; line-height: 1.25; }
"""


FIELDS = ["prompt", "negative", "seed", "steps", "guidance", "sampler", "width", "height", "count"]


def gpu_policy(services: "Services", home: str) -> str:
    """Put the pipeline where the policy says (the CPU while a training uses the GPU, else ``home``);
    return the line that tells the user."""
    if not home.startswith("cuda"):
        return "Generation runs on the **CPU**, beside any training (both share the processor)."
    busy = services.runner is not None and services.runner.gpu_busy()
    target = "cpu" if busy else home
    if services.device != target:
        services.engine.to(target)
    if busy:
        return "A training is using the GPU: generation runs on the **CPU** until it ends (slower)."
    return f"Generation runs on the **GPU** ({home}); while a training uses the GPU it moves to the CPU."


def _adapters(r) -> str:
    return ", ".join(w.label for w in r.loras) or "no adapters"


def _caption(r, i: int) -> str:
    s = r.settings
    w, h = r.images[i].size
    return (f"seed {r.seeds[i]} · {w}×{h} · {s.steps} steps · {s.sampler} · guidance {s.guidance:g}"
            f" · {_adapters(r)}")


def _status(r) -> str:
    w, h = r.images[0].size
    fused = " (fused)" if getattr(r, "fused", False) else ""
    lines = [f"{len(r.images)} image(s), {w}×{h}, seed {r.seeds[0]}, {r.seconds:.2f} s — {_adapters(r)}{fused}"]
    lines += [f"⚠ {w}" for w in r.warnings]
    return "\n\n".join(lines)


def generate_tab(services: "Services", page: PageState) -> None:
    home = services.device
    names = gr.State([])
    gallery = gr.Gallery(label="Results", columns=2, height="auto", object_fit="contain", format="png",
                         allow_preview=False, fit_columns=False, elem_id="result", elem_classes=["pixelated"],
                         render=False)
    status = gr.Markdown(elem_id="status", render=False)
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=420):
            prompt = field_input(GenerateSettings, "prompt", label="Prompt", lines=2, elem_id="prompt")
            negative = field_input(GenerateSettings, "negative", label="Negative prompt", elem_id="negative")
            with gr.Row(equal_height=True):
                seed = field_input(GenerateSettings, "seed", label="Seed", elem_id="seed", scale=3)
                dice = gr.Button("Random seed", elem_id="random-seed", scale=1, min_width=120, size="md")
            with gr.Row():
                steps = field_input(GenerateSettings, "steps", label="Steps", elem_id="steps")
                guidance = field_input(GenerateSettings, "guidance", label="Guidance", elem_id="guidance")
                sampler = _sampler_dropdown()
            with gr.Row():
                width = field_input(GenerateSettings, "width", label="Width", elem_id="width")
                height = field_input(GenerateSettings, "height", label="Height", elem_id="height")
                count = field_input(GenerateSettings, "count", label="Images", elem_id="count")
            form = [prompt, negative, seed, steps, guidance, sampler, width, height, count]
            button = gr.Button("Generate", variant="primary", elem_id="generate", render=False)
            gr.Markdown("**Adapters** — tick to use, drag to weigh; 0 = off.", elem_id="adapters-title")
            with gr.Group(elem_id="adapters"):
                _adapter_list(services, names, form, button, [gallery, status], home)
            button.render()
            policy = gr.Markdown(elem_id="gpu-policy")
        with gr.Column(scale=3, min_width=420):
            gallery.render()
            status.render()
    _grid(services, form)
    _api(services, form, [gallery, status], home)

    def follow(lists, prev, current):
        now = list(lists.adapters)
        return gr.skip() if now == current else now

    def where(last):  # also moves the pipeline off the GPU while a training uses it
        line = gpu_policy(services, home)
        return None if line == last else (line, line)

    page.follow([names], follow, [names])
    page.view([policy], where)
    dice.click(lambda: random.randint(0, SEED_MAX), None, seed)


def _sampler_dropdown() -> gr.Dropdown:
    """The sampler field as a dropdown of the engine's sampler names (default and help from the field)."""
    from ..generate.samplers import NAMES

    f, _ = field_of(GenerateSettings, "sampler")
    return gr.Dropdown(choices=list(NAMES), value=f.default, label="Sampler", info=f.metadata.get("help"),
                       elem_id="sampler")


def _adapter_list(services: "Services", names: gr.State, form: list, button: gr.Button, outputs: list,
                  home: str) -> None:
    """Toggle + weight (+ text-encoder weight under Advanced) per adapter; wires the Generate button."""
    from ..generate.tags import MAX_WEIGHT

    @gr.render(inputs=names)  # on page load and whenever the names change
    def draw(current: list[str]):
        if not current:
            gr.Markdown("No adapters in the library yet. `<lora:name:weight>` tags work once there are.",
                        elem_id="no-adapters")
        toggles, weights = [], []
        for n in current:  # keys keep a user's ticks and weights when the list is drawn again
            with gr.Row(elem_classes="adapter-row"):
                toggles.append(gr.Checkbox(label=n, value=False, key=f"on-{n}", elem_id=f"lora-on-{n}",
                                           interactive=True, scale=1, min_width=140))
                weights.append(_weight(f"{n} weight", f"w-{n}", f"lora-w-{n}", MAX_WEIGHT, scale=3))
        with gr.Accordion("Advanced: text-encoder weights", open=False, key="te-accordion"):
            separate = gr.Checkbox(label="Set text-encoder weights separately", value=False, key="te-separate",
                                   interactive=True, info="Off: the text encoder uses each adapter's weight above.")
            tes = [_weight(f"{n} text-encoder weight", f"te-{n}", f"lora-te-{n}", MAX_WEIGHT) for n in current]

        def click(*values):
            k = len(current)
            fixed, rest = values[:len(form)], values[len(form):]
            on, w, sep, te = rest[:k], rest[k:2 * k], rest[2 * k], rest[2 * k + 1:]
            picks = [(n, float(w[i]), float(te[i]) if sep else None) for i, n in enumerate(current) if on[i]]
            gpu_policy(services, home)
            return run(services, fixed, picks)

        button.click(guard(click), [*form, *toggles, *weights, separate, *tes], outputs, concurrency_limit=1,
                     concurrency_id=ENGINE_QUEUE)


def _api(services: "Services", form: list, outputs: list, home: str) -> None:
    """The Generate tab as an API endpoint (``/generate``, e.g. for ``gradio_client``): the form's
    fields; adapters come from ``<lora:name:weight>`` tags in the prompt. The button's event
    cannot be the endpoint: it is drawn per page by ``@gr.render`` and no client sees it. Both
    share one concurrency group, so the page and API callers wait in the same line."""
    def generate(*values):
        gpu_policy(services, home)
        return run(services, list(values), [])

    gr.on([], guard(generate), form, outputs, api_name="generate", concurrency_limit=1,
          concurrency_id=ENGINE_QUEUE, show_progress="hidden")


def _weight(label: str, key: str, elem_id: str, limit: float, **kw) -> gr.Slider:
    return gr.Slider(-limit, limit, value=1.0, step=0.05, label=label, key=key, elem_id=elem_id, interactive=True, **kw)


def run(services: "Services", values: list, picks: list[tuple[str, float, float]]):
    """Generate with the form's settings and the toggled adapters (prompt tags add to them)."""
    from ..generate.tags import LoraWeight

    s = build(GenerateSettings(), FIELDS, list(values))
    r = services.engine.generate(s, loras=[LoraWeight(n, u, t) for n, u, t in picks])
    return [(img, _caption(r, i)) for i, img in enumerate(r.images)], _status(r)


def _grid(services: "Services", form: list) -> None:
    with gr.Accordion("Compare grid", open=False, elem_id="grid-section"):
        gr.Markdown("One image per prompt × adapter set, all at the seed and settings above; "
                    "rows are prompts, columns adapter sets.")
        with gr.Row():
            prompts = gr.Textbox(value=GenerateSettings().prompt, lines=3, label="Prompts (one per line)",
                                 elem_id="grid-prompts")
            sets = gr.Textbox(value="none", lines=3, label="Adapter sets (one per line)", elem_id="grid-sets",
                              info="none · neon:1 · neon:0.5, pastel:0.5 (name:weight[:text-encoder weight])")
        go = gr.Button("Draw grid", elem_id="grid-button")
        image = gr.Image(label="Grid", type="pil", format="png", interactive=False, elem_id="grid",
                         elem_classes=["pixelated"])

    def draw(p_text, s_text, *values):
        from ..generate.tags import parse_spec

        s = build(GenerateSettings(), FIELDS, list(values))
        p_list = [p.strip() for p in p_text.splitlines() if p.strip()]
        sets = [[] if line.strip().lower() in ("none", "-") else
                [parse_spec(x.strip()) for x in line.split(",") if x.strip()]
                for line in s_text.splitlines() if line.strip()]
        if not p_list or not sets:
            raise StudioError("The grid needs at least one prompt and one adapter set.",
                              "Write one per line; 'none' is the base model.")
        return services.engine.grid(p_list, sets, s).image

    go.click(guard(draw), [prompts, sets, *form], image, concurrency_limit=1)
