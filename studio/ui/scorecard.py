"""Train tab: "Is it learned?" — the style meter of the shown run (a plot beside the loss, the
scorecard table with the recommended checkpoint and its reason), "Use this checkpoint" and
"Compare checkpoints" (a grid of the run's checkpoints, base first, at one seed).

Everything shown comes from the run's ``judged`` events (``RunSnapshot.scorecard``); the button
calls :func:`studio.judge.use.use_checkpoint`. Hooked into ui/train.py with one call.
"""

from __future__ import annotations

import math
from typing import Any

import gradio as gr

from ..errors import StudioError
from ..judge.scorecard import leak_words, pick_label, shown
from .common import guard
from .drawn import as_file
from .generate import ENGINE_QUEUE
from .page_state import Picker
from .train_view import line_plot, step_axis

HEADERS = ["Step", "Style %", "Copy", "Leak %", "Val loss", "Note"]
COLORS = {"style %": "#7c3aed", "leak %": "#94a3b8"}
HELP = ("**Style %**: how far the adapter's images have moved from the base model's (same prompts, same "
        "seeds) toward your set's colours, contrast and texture — 0 % = the base model, 100 % = as close as "
        "your own held-out photos; below 0 = further from your style than the base model. **Copy**: how "
        "close its images come to one of your training photos, compared with your held-out photos (1 = as "
        "close as those; above 1 = further, the usual case; below {threshold} = it copies). "
        "**Leak %**: how far it moves images whose prompt lacks the trigger word toward your style, as a "
        "share of the way (0 % = only with the trigger; half the style score or more = it restyles "
        "everything; a little below 0 = they moved slightly away, the noise of a few drawn images).")




def table(snap: Any | None) -> list[list[Any]]:
    if snap is None:
        return []
    pick = snap.recommended[0] if snap.recommended else None
    out = []
    for r in snap.scorecard:
        note = "; ".join(x for x in (f"★ {pick_label(_number(r['style']))}" if r["step"] == pick else "",
                                     "copies training photos" if r["copying"] else "") if x)
        out.append([r["step"], shown(r["style"], ".0f"), shown(r["copy"], ".2f"), shown(r["leak"], ".0f"),
                    shown(r["val_loss"], ".4f"), note])
    return out


def plot(snap: Any | None) -> dict | None:
    if snap is None or not snap.scorecard:
        return None
    rows = [[int(r["step"]), float(r[k]), name] for r in snap.scorecard for k, name in (("style", "style %"),
                                                                                          ("leak", "leak %"))
            if r[k] is not None and math.isfinite(float(r[k]))]  # a figure the meter could not tell is left out
    return line_plot(rows, "percent", COLORS)


def verdict(snap: Any | None) -> str:
    if snap is None or not snap.scorecard:
        return "No style-meter round yet: the first comes a few steps into a run."
    if not snap.recommended:
        return ""
    step, reason = snap.recommended
    row = next((r for r in snap.scorecard if r["step"] == step), None)
    words = leak_words(_number(row["style"]), _number(row["leak"])) if row else ""
    label = pick_label(_number(row["style"]) if row else math.nan).capitalize()
    return f"**{label}: step {step}** — {reason}." + (f"  \n{words}" if words else "")


def _number(v) -> float:
    return math.nan if v is None else float(v)  # (NaN travels as null in the events file)


def checkpoint_choices(snap: Any | None) -> list[tuple[str, int]]:
    if snap is None:
        return []
    return [(f"step {r['step']} · style {shown(r['style'], '.0f')} %", int(r["step"]))
            for r in snap.scorecard if r.get("checkpoint")]


def use(services, snap: Any | None, step, new_name: str) -> str:
    from ..judge.use import use_checkpoint

    if snap is None or step is None:
        raise StudioError("No checkpoint chosen.", "Pick a checkpoint of a run in the list.")
    if snap.live:
        raise StudioError(f"The run of {snap.adapter!r} is still going: it writes its own adapter at the end.",
                          "Wait until it ends (or press Stop), then use a checkpoint.")
    adapter = services.library.current_name(snap.adapter)  # (renamed since the run: its new name)
    done = use_checkpoint(adapter, int(step), (new_name or "").strip() or None, services.ws)
    if done == adapter and services.engine is not None:
        services.engine.unload(done)  # the Generate tab draws the new weights, not the loaded old ones
    where = f"as **{done}**" if done == adapter else f"as the new adapter **{done}**"
    return f"Step {int(step)} of {adapter} is now in the Library {where}."


def compare(services, snap: Any | None):
    """The checkpoints of the shown run side by side (base first) on the page's own pipeline."""
    from ..config import GenerateSettings
    from ..judge.grid import checkpoint_grid

    if snap is None:
        raise StudioError("No run chosen.", "Pick a run in the list.")
    return as_file(checkpoint_grid(services.engine, services.library.current_name(snap.adapter), None,
                                   GenerateSettings(steps=_preview_steps(snap), seed=0), ws=services.ws).image)


def _preview_steps(snap) -> int:
    """The sampler steps the run's own previews used (its preset and overrides)."""
    from ..config import TrainSettings
    from ..overlay import apply_sets
    from ..train.presets import load_preset

    req = snap.request
    try:
        base = load_preset(req.preset) if req is not None and req.preset else TrainSettings()
        return apply_sets(base, list(req.sets) if req is not None else []).sample_steps
    except StudioError:  # a preset deleted since: the field's default
        return TrainSettings.sample_steps


def block(services, page, run_pick: gr.Dropdown, shown_run) -> None:
    """The scorecard panel; ``shown_run(services, pick) -> (snapshot, all)`` picks the run shown."""
    from ..config import TrainSettings

    with gr.Group(elem_id="scorecard"):
        gr.Markdown("### Is it learned? The style meter", elem_id="scorecard-title")
        # a chart title, not a block label: Gradio does not count a label in the chart's height, and
        # the legend below the axis is cut off (tests/e2e/test_scorecard.py checks it shows)
        meter = gr.LinePlot(None, x="step", y="percent", color="series", color_map=COLORS, height=230,
                            title="Style meter (per preview round)", elem_id="style-plot", x_title="step",
                            y_title="%", color_title="")
        verdict_md = gr.Markdown(verdict(None), elem_id="scorecard-verdict")
        rows = gr.Dataframe(headers=HEADERS, value=[], label="Scorecard: one row per checkpoint", type="array",
                            interactive=False, wrap=True, elem_id="scorecard-table", max_height=260)
        gr.Markdown(HELP.format(threshold=TrainSettings.copy_threshold), elem_classes=["muted"])
        with gr.Row():
            ckpt = Picker([], value=None, label="Checkpoint", elem_id="scorecard-checkpoint", min_width=160)
            new_name = gr.Textbox(label="Save as new adapter (empty = replace the adapter)",
                                  elem_id="scorecard-new-name", min_width=200)
            use_btn = gr.Button("Use this checkpoint", elem_id="use-checkpoint", min_width=160, interactive=False)
        message = gr.Markdown(elem_id="scorecard-message")
        with gr.Row():
            grid_btn = gr.Button("Compare checkpoints", elem_id="compare-checkpoints", min_width=160, scale=0,
                                 interactive=False)
            gr.Markdown("One picture per checkpoint, side by side: the base model first, then each "
                        "judged checkpoint (columns) for a few of your captions (rows), all at one seed.",
                        elem_classes=["muted"])
        grid = gr.Image(label="Checkpoints compared", elem_id="checkpoint-grid", elem_classes=["pixelated"],
                        interactive=False, type="pil", format="png", show_label=False)  # the grid has its labels

    def refresh(last, pick_id):
        snap, _ = shown_run(services, pick_id)
        key = (snap.id, snap.status, len(snap.scorecard), snap.recommended) if snap else ()
        if key == last:
            return None  # nothing new: the page sends nothing
        choices = checkpoint_choices(snap)
        value = snap.recommended[0] if snap and snap.recommended and choices else None
        usable = gr.update(interactive=bool(choices))  # nothing to use or compare before a judged round
        return key, gr.update(value=plot(snap), x_lim=step_axis(snap)), verdict(snap), table(snap), gr.update(choices=choices, value=value), usable, usable

    # read by the page's one refresh (page load, tab select, timer): see studio/ui/page_state.py
    outs = [meter, verdict_md, rows, ckpt, use_btn, grid_btn]
    page.view(outs, refresh, [run_pick])  # (drawn again when the pick changes: PageState.view)
    use_btn.click(guard(lambda p, step, name: use(services, shown_run(services, p)[0], step, name)),
                  [run_pick, ckpt, new_name], message)
    # drawn on the Generate tab's pipeline: in its line, one drawing at a time
    grid_btn.click(guard(lambda p: compare(services, shown_run(services, p)[0])), [run_pick], grid,
                   concurrency_limit=1, concurrency_id=ENGINE_QUEUE)
