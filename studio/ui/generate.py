"""Generate tab: a prompt, every library adapter as a toggle (adding its trigger word) + weight, the
latest result, this page's history, before / after and the compare grid; sampler settings under Advanced.

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
from .common import act, guard
from .drawn import as_file
from .forms import build, field_input, field_of
from .page_state import PageState, triggers_of
from .style_picks import row_values, adapter_follow, adapter_rows, trigger_warnings, with_trigger

if TYPE_CHECKING:
    from .services import Services

log = logging.getLogger(__name__)

SEED_MAX = 2**31 - 1
ENGINE_QUEUE = "generate"  # one concurrency group: the button and the API draw one at a time
# Gallery captions say what was drawn: let them wrap instead of cutting them off, and in the History
# put them under the picture (Gradio lays them over its lower part: a wrapped caption hid half of it).
CSS = """
#result .caption-label, #history .caption-label { white-space: normal !important; overflow: visible !important;
  text-overflow: clip !important; max-width: 100% !important; font-size: 0.8rem; line-height: 1.25; }
#history .thumbnail-lg { display: flex; flex-direction: column; height: auto; }
#history .thumbnail-lg > img { height: auto; aspect-ratio: 1 / 1; flex: none; }
#history .caption-label { position: static !important; border: none !important; opacity: 1 !important; }
/* a long list of styles scrolls in its own box */
#adapters { max-height: 330px; overflow-y: auto; }
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
    return (f"seed {r.seeds[i]} · {w}×{h} · {s.steps} step{'' if s.steps == 1 else 's'} · {s.sampler} · "
            f"guidance {s.guidance:g} · {_adapters(r)}")


def _status(r) -> str:
    w, h = r.images[0].size
    fused = " (fused)" if getattr(r, "fused", False) else ""
    n = len(r.images)
    lines = [f"{n} image{'' if n == 1 else 's'}, {w}×{h}, seed {r.seeds[0]}, {r.seconds:.2f} s — {_adapters(r)}{fused}"]
    lines += [f"⚠ {w}" for w in r.warnings]
    return "\n\n".join(lines)


HISTORY_MAX = 48  # results this page keeps (newest first)
DRAWING = ("**Drawing…** the timer here counts the seconds. The first drawing after the server "
           "starts also loads the model and can take a minute.")
TRIGGER_HELP = ("Tick a style to use it: its **trigger word** is added to the prompt (you can remove it; "
                "without it the style may not show). **Weight**: 1 = the style as trained, 0.5 = half of it, "
                "0 = off; above about 1.5 it usually breaks the picture, below 0 it pushes away from the style.")


def adapter_state(services: "Services") -> gr.State:
    """What the Generate tab's adapter list is drawn from: [[name, trigger], ...], read from disk when
    a page opens (a callable value), so the toggles are drawn once, already complete. Filled later by
    the page's first refresh instead, the list was drawn a second time a moment after load, and a
    click in between named an event the new drawing had replaced: Gradio answered 500 (KeyError) and
    the page showed "Error". Made at the page's root, outside the tabs (build_app): a callable State
    inside a tab that is not shown at load counts as changed once more while the page loads
    (Gradio 6.31), and the list was drawn twice all the same."""
    return gr.State(lambda: library_rows(services))


def generate_tab(services: "Services", page: PageState, adapters: gr.State) -> None:
    home = services.device
    history = gr.State([])  # this page's results, newest first: dicts of image, caption, form values
    gallery = gr.Gallery(label="Latest result", columns=2, height="auto", object_fit="contain", format="png",
                         allow_preview=False, fit_columns=False, elem_id="result", elem_classes=["pixelated"],
                         render=False)
    status = gr.Markdown(elem_id="status", render=False)
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=420):
            prompt = field_input(GenerateSettings, "prompt", label="Prompt", lines=2, elem_id="prompt")
            count = field_input(GenerateSettings, "count", label="Images", elem_id="count")
            adapter_slot = gr.Column()  # Generate and Before / after, then the styles (see _adapter_list)
            with gr.Accordion("Advanced settings", open=False, elem_id="generate-advanced"):
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
            policy = gr.Markdown(elem_id="gpu-policy")
        form = [prompt, negative, seed, steps, guidance, sampler, width, height, count]
        with gr.Column(scale=3, min_width=420):
            with gr.Tabs(elem_id="generate-views"):
                with gr.Tab("Latest result", id="latest"):
                    gallery.render()
                    status.render()
                with gr.Tab("History", id="history"):
                    shelf = _history_view()
                with gr.Tab("Compare grid", id="grid"):
                    _grid(services, form)
    outputs = [gallery, status, history]
    picked = gr.State({})  # name -> [ticked, weight, text-encoder weight], as the user left them
    with adapter_slot:
        _adapter_list(services, adapters, form, outputs, home, prompt, history, picked)
    _wire_history(shelf, history, form)
    _api(services, form, [gallery, status], home)

    def follow(lists, prev, current, ticked):  # drawn again only when the library changed
        return adapter_follow(services.library, adapter_rows(lists.adapters, lists.triggers), current, ticked)

    def where(last):  # also moves the pipeline off the GPU while a training uses it
        line = gpu_policy(services, home)
        return None if line == last else (line, line)

    page.follow([adapters, picked, status], follow, [adapters, picked])
    page.view([policy], where)
    dice.click(lambda: random.randint(0, SEED_MAX), None, seed, show_progress="hidden")


def library_rows(services: "Services") -> list[list[str]]:
    """The rows as the library holds them now (read when a page opens: names and records only,
    not the rest of the page's lists)."""
    names = services.library.names()
    return adapter_rows(names, triggers_of(services.library, names))


def _sampler_dropdown() -> gr.Dropdown:
    """The sampler field as a dropdown of the engine's sampler names (default and help from the field)."""
    from ..generate.samplers import NAMES

    f, _ = field_of(GenerateSettings, "sampler")
    return gr.Dropdown(choices=list(NAMES), value=f.default, label="Sampler", info=f.metadata.get("help"),
                       elem_id="sampler")


def _adapter_list(services: "Services", adapters: gr.State, form: list, outputs: list, home: str,
                  prompt: gr.Textbox, history: gr.State, picked: gr.State) -> None:
    """The Generate and Before / after buttons, then a toggle (+ its trigger word) + weight (+ text-encoder
    weight under Advanced) per adapter. The buttons' events take the toggles as inputs, so they are
    registered in this render; the buttons are drawn by it too, so a button is never on the page
    without its handler (drawn outside, a click before the render's first run came back from the
    server did nothing: a lost click on a busy machine, tests/e2e/test_library_generate.py in CI)."""
    from ..generate.tags import MAX_WEIGHT

    @gr.render(inputs=adapters)  # on page load and whenever the library changes
    def draw(current: list):
        with gr.Row(key="generate-buttons"):  # above the styles: on the first screen however many there are
            button = gr.Button("Generate", variant="primary", elem_id="generate", scale=2, key="generate")
            compare = gr.Button("Before / after", elem_id="before-after", scale=1, key="before-after")
        gr.Markdown("*Before / after* draws the same picture with the ticked styles off, then on.",
                    elem_classes=["muted"], key="before-after-help")
        gr.Markdown(TRIGGER_HELP, elem_id="adapters-title", key="adapters-title")
        with gr.Group(elem_id="adapters", key="adapters"):
            if not current:
                gr.Markdown("No styles in the library yet: train one in the Train tab. (`<lora:name:weight>` "
                            "tags in the prompt work once there are.)", elem_id="no-adapters")
            toggles, weights = [], []
            # keys keep a user's ticks and weights when the list is drawn again; an adapter renamed
            # meanwhile has a new key and gets its old name's values from the row (adapter_follow)
            for n, trig, on0, w0, _ in map(row_values, current):
                with gr.Row(elem_classes="adapter-row"):
                    box = gr.Checkbox(label=n, value=on0, key=f"on-{n}", elem_id=f"lora-on-{n}",
                                      interactive=True, scale=1, min_width=140,
                                      info=f"trigger word: {trig}" if trig else "no trigger word")
                    toggles.append(box)
                    weights.append(_weight(f"{n} weight", f"w-{n}", f"lora-w-{n}", MAX_WEIGHT, value=w0, scale=3))
            with gr.Accordion("Advanced: text-encoder weights", open=False, key="te-accordion"):
                separate = gr.Checkbox(label="Set text-encoder weights separately", value=False, key="te-separate",
                                       elem_id="te-separate",
                                       interactive=True,
                                       info="Off: the text encoder uses each adapter's weight above.")
                tes = [_weight(f"{n} text-encoder weight", f"te-{n}", f"lora-te-{n}", MAX_WEIGHT, value=te0)
                       for n, _, _, _, te0 in map(row_values, current)]
        current = [row[:2] for row in current]
        triggers = dict((n, t) for n, t in current)
        for (n, _), box, w, te in zip(current, toggles, weights, tes):  # what is ticked, by name (adapter_follow)
            gr.on([box.change, w.change, te.change], lambda on, a, b, p, n=n: {**(p or {}), n: [bool(on), a, b]},
                  [box, w, te, picked], picked, queue=False, show_progress="hidden", trigger_mode="always_last")
        # ticking adds the trigger to the prompt, unticking takes it out (A1111's activation text), unless
        # another ticked style has the same word (two versions of one style: neon, neon-v2)
        for box, (n, trig) in zip(toggles, current):
            if trig:
                same = [b for b, (m, t) in zip(toggles, current) if m != n and t.lower() == trig.lower()]
                box.input(lambda on, text, *others, t=trig: with_trigger(text, t, on or any(others)),
                          [box, prompt, *same], prompt, show_progress="hidden", queue=False)

        def picks_of(values):
            k = len(current)
            fixed, rest = values[:len(form)], values[len(form):]
            on, w, sep, te, past = rest[:k], rest[k:2 * k], rest[2 * k], rest[2 * k + 1:3 * k + 1], rest[-1]
            picks = [(n, float(w[i]), float(te[i]) if sep else None) for i, (n, _) in enumerate(current) if on[i]]
            gpu_policy(services, home)
            return list(fixed), picks, past

        def click(*values):
            return run(services, *picks_of(values), triggers)

        def before_after(*values):
            fixed, picks, past = picks_of(values)
            return compare_run(services, fixed, picks, past, triggers)

        inputs = [*form, *toggles, *weights, separate, *tes, history]
        for btn, fn in ((button, click), (compare, before_after)):
            btn.click(lambda: DRAWING, None, outputs[1], queue=False, show_progress="hidden")
            # the timer (and a refusal's badge) on the status line: the last picture stays until a new one
            act(btn.click, refused_in_status(fn), inputs, outputs, on=outputs[1], concurrency_limit=1,
                concurrency_id=ENGINE_QUEUE)


def refused_in_status(fn):
    """A refused drawing (a size the model cannot draw, an adapter gone) is said on the status line
    under the picture, in place of "Drawing…", and the last picture stays: raised, it left "Drawing…"
    there under a red badge and the reason only in a toast that goes away (newcomer review, 2026-12-08)."""
    def run(*values):
        try:
            return fn(*values)
        except StudioError as e:
            return gr.skip(), f"⚠ **Not drawn:** {e}", gr.skip()
    return run


def _api(services: "Services", form: list, outputs: list, home: str) -> None:
    """The Generate tab as an API endpoint (``/generate``, e.g. for ``gradio_client``): the form's
    fields; adapters come from ``<lora:name:weight>`` tags in the prompt. The button's event
    cannot be the endpoint: it is drawn per page by ``@gr.render`` and no client sees it. Both
    share one concurrency group, so the page and API callers wait in the same line."""
    def generate(*values):
        gpu_policy(services, home)
        return run(services, list(values), [])[:2]

    gr.on([], guard(generate), form, outputs, api_name="generate", concurrency_limit=1,
          concurrency_id=ENGINE_QUEUE, show_progress="hidden")


def _weight(label: str, key: str, elem_id: str, limit: float, value: float = 1.0, **kw) -> gr.Slider:
    return gr.Slider(-limit, limit, value=value, step=0.05, label=label, key=key, elem_id=elem_id, interactive=True,
                     **kw)


def run(services: "Services", values: list, picks: list[tuple[str, float, float]], past: list | None = None,
        triggers: dict[str, str] | None = None):
    """Generate with the form's settings and the toggled adapters (prompt tags add to them); the
    result also goes to the top of this page's history."""
    from ..generate.tags import LoraWeight

    s = build(GenerateSettings(), FIELDS, list(values))
    r = services.engine.generate(s, loras=[LoraWeight(n, u, t) for n, u, t in picks])
    items = [(as_file(img), _caption(r, i)) for i, img in enumerate(r.images)]  # (files: ui/drawn.py)
    notes = trigger_warnings(values[0], picks, triggers or {})
    status = _status(r) + "".join(f"\n\n⚠ {n}" for n in notes)
    said = f"“{r.settings.prompt}” · "
    entries = [{"image": img, "caption": said + cap, "values": list(values)} for img, cap in items]
    return items, status, (entries + list(past or []))[:HISTORY_MAX]


def compare_run(services: "Services", values: list, picks: list, past: list | None, triggers: dict[str, str]):
    """Before / after: the same seed and settings with the ticked styles off (and prompt tags
    and trigger words taken out), then on."""
    import re

    if not picks and "<lora:" not in (values[0] or ""):
        raise StudioError("No style is ticked.", "Tick a style under the prompt, then press Before / after.")
    plain = re.sub(r"<lora:[^>]*>", "", values[0] or "")
    for n, *_ in picks:
        if triggers.get(n):
            plain = with_trigger(plain, triggers[n], False)
    before = run(services, [plain.strip() or values[0], *values[1:]], [], past, triggers)
    after = run(services, values, picks, before[2], triggers)
    items = [(before[0][0][0], "before: " + before[0][0][1]), (after[0][0][0], "after: " + after[0][0][1])]
    return items, "Before | after: the same prompt and seed without the adapters, then with them. " + after[1], after[2]


def _history_view():
    gr.Markdown("Everything drawn on this page, newest first. Click a picture, then *Use these settings* "
                "to draw it again or vary it.", elem_classes=["muted"])
    shelf = gr.Gallery(label="History", columns=4, height="auto", object_fit="contain", format="png",
                       allow_preview=True, fit_columns=False, elem_id="history", elem_classes=["pixelated"])
    with gr.Row():
        chosen = gr.Markdown("No picture picked.", elem_id="history-picked")
        reuse = gr.Button("Use these settings", elem_id="history-reuse", interactive=False)
    return shelf, chosen, reuse


def _wire_history(view, history: gr.State, form: list) -> None:
    shelf, chosen, reuse = view
    index = gr.State(None)
    history.change(lambda h: [(e["image"], e["caption"]) for e in h], history, shelf, show_progress="hidden")

    def picked(h, evt: gr.SelectData):
        if not h or not 0 <= evt.index < len(h):
            return None, "No picture picked.", gr.update(interactive=False)
        return evt.index, f"Picked: {h[evt.index]['caption']}", gr.update(interactive=True)

    def use(h, i):
        if i is None or not h or i >= len(h):
            raise gr.Error("Click a picture in the history first.")
        return h[i]["values"]

    shelf.select(picked, history, [index, chosen, reuse], show_progress="hidden")
    reuse.click(use, [history, index], form, show_progress="hidden")


def _grid(services: "Services", form: list) -> None:
    with gr.Group(elem_id="grid-section"):
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
        return as_file(services.engine.grid(p_list, sets, s).image)

    go.click(guard(draw), [prompts, sets, *form], image, concurrency_limit=1)
