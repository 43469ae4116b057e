"""Train tab: pick a set, a name and a preset; the settings form (main fields plus an
Advanced accordion generated from ``TrainSettings``); a memory estimate that follows the
form; Start / Stop / Resume through the job runner; and the run's live state (progress,
loss curves, warnings, previews, past runs) read from the job records on a timer, so a
reload or a second browser shows the same run.
"""

from __future__ import annotations

import functools
import logging

import gradio as gr
from gradio.context import Context

from ..adapters.library import check_name as check_adapter_name
from ..config import TrainSettings
from ..data import manifest as mf
from ..errors import StudioError
from ..overlay import apply_sets
from ..train import preflight, presets
from . import forms, scorecard
from . import train_view as view
from .common import act, guard
from .page_state import PageState, Picker, dataset_names, select_update
from .page_state import pick_update as choices_update
from .services import Services

log = logging.getLogger(__name__)

# first screen: what a shop owner can answer (the fields marked level="basic" in studio.config);
# everything else is under Advanced, the settings people look for first leading
MAIN = [p for p in forms.leaf_paths(TrainSettings) if forms.is_basic(TrainSettings, p)]
FIRST_ADVANCED = ["lora.rank", "lora.alpha", "lr_unet", "lr_text", "resolution", "batch_size",
                  "lora.text_encoder", "quantize"]
ADVANCED = FIRST_ADVANCED + [p for p in forms.leaf_paths(TrainSettings) if p not in MAIN + FIRST_ADVANCED]
PATHS = MAIN + ADVANCED
INTRO = ("Training makes a **style adapter**: a small add-on file that teaches the image model the look "
         "of your pictures, so it can draw *new* pictures in that look. Pick an image set and press "
         "**Start training**; the rest can stay as it is. Training goes on if you close the page.")


@functools.lru_cache(maxsize=16)
def preset_settings(name: str) -> TrainSettings:
    return presets.load_preset(name)


def form_values(settings: TrainSettings) -> list:
    return [forms.as_display(forms.value_at(settings, p)) for p in PATHS]


def settings_from_form(preset: str, values: list) -> TrainSettings:
    if not preset:
        raise StudioError("No preset chosen.", "Pick a preset; it fills in the settings.")
    return forms.build(preset_settings(preset), PATHS, values)


def memory_text(services: Services, s: TrainSettings) -> str:
    est = preflight.for_family(services.family, s)
    total = est.total / preflight.GiB
    amount = "under 0.1 GiB" if total < 0.1 else f"about {total:.1f} GiB"
    parts = (f"<span class='muted'>Base model {est.weights / preflight.GiB:.1f} GiB, adapter and optimizer "
             f"{est.lora / preflight.GiB:.2f}, working memory {est.activations / preflight.GiB:.1f}; "
             "an estimate, not a measurement.</span>")
    if not services.on_gpu:
        return f"**Memory:** on a GPU this run would need {amount}; here it trains on the CPU.<br>{parts}"
    budget = s.vram_budget_gb * preflight.GiB or services.gpu_memory
    fits = est.total <= budget
    verdict = "fits" if fits else "<span class='status-error'>does not fit</span>"
    return f"**GPU memory:** {amount}, which {verdict} in {budget / preflight.GiB:.1f} GiB.<br>{parts}"


def time_text(services: Services, s: TrainSettings, dataset: str | None = None) -> str:
    """"About 3 min on this CPU; the first preview after about 40 s" (before Start). With
    stop=learned, the step where past runs on ``dataset`` stopped and the longest."""
    from ..jobs import estimate as est

    rate = est.rate_for(services.ws, services.model.model, services.device, services.family,
                        s.batch_size * s.grad_accum)
    stop = est.usual_stop(services.ws, services.model.model, services.device, s, dataset) if rate else None
    e = est.estimate(s, rate, stop)
    if e is None:
        return "**Time:** shown once the first steps have run."
    where = "GPU" if services.on_gpu else "CPU"
    first = (f"; the first preview after about **{view.duration(e.first_preview_s)}**"
             if e.first_preview_s is not None else "; no previews (they are off)")
    if e.stop:
        runs = "the last run" if e.stop.runs == 1 else f"the last {e.stop.runs} runs"
        how_long = (f"about **{view.duration(e.total_s)}** on this {where}: on this image set {runs} stopped early, "
                    f"at step {e.stop.step} (at most {view.duration(e.longest_s)}, all "
                    f"{s.steps} steps)")
    elif e.may_stop_early:
        how_long = (f"up to about **{view.duration(e.total_s)}** on this {where} (it stops earlier once the style "
                    "is learned)")
    else:
        how_long = f"about **{view.duration(e.total_s)}** on this {where}"
    return (f"**Time:** {how_long}{first}.{_waits(services)}"
            f"<br><span class='muted'>An estimate from {e.rate.source}.</span>")


def _waits(services: Services) -> str:
    """What comes before or beside the run: a training already going, a busy CPU."""
    from ..jobs import estimate as est

    ahead = [r for r in services.runner.runs() if r.live and r.device == services.device] \
        if services.runner is not None else []  # runs on another device (a CLI run on cuda:1) do not delay it
    running = [r for r in ahead if r.status == "running"]
    queued = len(ahead) - len(running)
    more = f" and {queued} queued" if queued else ""
    if running:
        snap = running[0]
        # (said of a run started now: the one going may be the run this form just started). Its time left
        # is the run card's, which is redrawn as it trains; a figure here went stale beside it (a
        # newcomer saw "ETA 2 min 08 s" and "about 2 min 58 s left" at once, 2026-12-07)
        return (f" A run started now would first wait for the training of **{snap.adapter}** ({snap.status}; its "
                f"card shows the time left){more}.")
    if queued:
        return f" A run started now would first wait for {queued} queued training{'s' if queued > 1 else ''}."
    busy = None if services.on_gpu else est.machine_busy()
    if busy:
        return (f" This computer is busy with other programs now (load {busy[0]:.1f} on {busy[1]} cores): "
                "expect it to take longer.")
    return ""


def start_run(services: Services, dataset, adapter, preset, values):
    from ..jobs import TrainRequest

    if not dataset:
        raise StudioError("No image set chosen.", "Make one on the Images tab, then pick it here.")
    m = mf.load(dataset, services.ws)
    if not m.train:
        raise StudioError(f"Image set {dataset!r} has no training images.", "Add images on the Images tab.")
    adapter = check_adapter_name((adapter or "").strip() or default_adapter_name(services, dataset))
    if adapter in services.library.names():
        raise StudioError(f"An adapter named {adapter!r} already exists.",
                          "Choose another name (or delete the old one in the Library).")
    if any(r.adapter == adapter and r.live for r in services.runner.runs()):
        raise StudioError(f"A training of {adapter!r} is already running or queued.", "Choose another name.")
    settings = settings_from_form(preset, values)
    if services.on_gpu:
        budget = settings.vram_budget_gb * preflight.GiB or services.gpu_memory
        preflight.check(preflight.for_family(services.family, settings), int(budget), services.family)
    sets = forms.diff_sets(preset_settings(preset), settings, PATHS)
    req = TrainRequest(adapter=adapter, dataset=dataset, preset=preset, sets=tuple(sets),
                       model=services.model.model, device=services.model.device, dtype=services.model.dtype)
    return services.runner.start(req)


def default_adapter_name(services: Services, dataset: str) -> str:
    """The name an empty *Adapter name* means: the image set's, numbered if that one is taken."""
    live = {r.adapter for r in services.runner.runs() if r.live}
    name, n = dataset, 2
    while name in live or services.library.taken(name):  # (any folder: a damaged adapter's name is refused too)
        name, n = f"{dataset}-{n}", n + 1
    return name


def shown_run(services: Services, pick: str | None):
    """The run the tab shows: the one picked, else the live one, else the newest."""
    runner = services.runner
    if runner is None:
        return None, []
    snaps = runner.runs()
    if pick and any(r.id == pick for r in snaps):
        return next(r for r in snaps if r.id == pick), snaps
    live = sorted((r for r in snaps if r.status in ("running", "queued")), key=lambda r: r.status != "running")
    return (live[0] if live else (snaps[0] if snaps else None)), snaps  # the running run, never a queued one


def first_preview_step(snap) -> int | None:
    """The step of the run's first preview, from its preset and overrides (None: previews off)."""
    req = getattr(snap, "request", None)
    if req is None:
        return None
    try:
        s = apply_sets(preset_settings(req.preset or presets.DEFAULT_FOR_FAMILY["tiny"]), list(req.sets))
    except StudioError:
        return None
    from ..jobs.estimate import rounds

    return next(iter(rounds(s)), None)  # (judge_first's early look, else the first sample_every)


def train_tab(services: Services, page: PageState) -> None:
    family = services.family
    preset0 = presets.DEFAULT_FOR_FAMILY[family]
    s0 = preset_settings(preset0)
    fields = {}
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=360):
            gr.Markdown(INTRO, elem_id="train-intro")
            with gr.Group():
                dataset = Picker([], value=None, label="Image set",
                                      info="Made on the Images tab.", elem_id="train-set").reads(
                                          lambda: dataset_names(services))
                adapter = gr.Textbox(label="Adapter name", placeholder=name_hint(None),
                                     elem_id="adapter-name",
                                     info="The style's name in the Library (letters, digits, - and _).")
                for p in MAIN:
                    fields[p] = forms.field_input(TrainSettings, p, forms.value_at(s0, p), min_width=140)
            set_note = gr.Markdown(elem_id="train-set-note")
            timing = gr.Markdown(time_text(services, s0), elem_id="train-estimate")
            with gr.Row():
                start = gr.Button("Start training", variant="primary", elem_id="start", min_width=160, scale=2)
                # active only when they would do something (the page state turns them on)
                stop = gr.Button("Stop", variant="stop", elem_id="stop", min_width=80, interactive=False)
                resume = gr.Button("Resume", elem_id="resume", min_width=80, interactive=False)
            message = gr.Markdown(elem_id="train-message")
            with gr.Accordion("Advanced settings", open=False, elem_id="advanced"):
                preset = gr.Dropdown(presets.available(), value=preset0, label="Preset", elem_id="preset",
                                     info=f"Fills in every setting; {preset0} suits the {family} model.")
                memory = gr.Markdown(memory_text(services, s0), elem_id="preflight")
                with gr.Row():
                    for p in ADVANCED:
                        fields[p] = forms.field_input(TrainSettings, p, forms.value_at(s0, p), min_width=160)
        with gr.Column(scale=3, min_width=440):
            progress = gr.HTML(view.progress_html(None), elem_id="run-progress")
            # a chart title, not a label, so that the legend fits (see ui/scorecard.py)
            plot = gr.LinePlot(None, x="step", y="loss", color="series", title="Loss (lower = closer to your images)",
                               color_map=view.COLORS, height=240, elem_id="loss-plot", x_title="step",
                               y_title="loss", color_title="")
            gr.Markdown(view.LOSS_CAPTION, elem_classes=["muted"], elem_id="loss-help")
            warnings = gr.Markdown(elem_id="run-warnings")
            gallery = gr.Gallery(label="Previews, newest first: base model left, with the style right (same "
                                 "prompt and seed; extra preview prompts: the style only)", columns=4,
                                 height=340, object_fit="contain", fit_columns=False, elem_id="previews",
                                 elem_classes=["pixelated"], interactive=False)
            pick = Picker([], value=None, label="Show an earlier run",
                               info="Empty = the current or newest run.",
                               elem_id="run-pick", allow_custom_value=False)
            scorecard.block(services, page, pick, shown_run)  # the style meter, "Use this checkpoint"
    runs = gr.Dataframe(headers=view.RUN_HEADERS, value=[], label="Past runs", type="array", interactive=False,
                        wrap=True, elem_id="runs", max_height=260)
    inputs = [fields[p] for p in PATHS]
    # the picked set's captions that lack its trigger word: said before Start, not found in Generate
    note = guard(lambda d: set_caption_note(services, d))
    dataset.change(note, dataset, set_note, show_progress="hidden")
    if isinstance(Context.block, gr.Tab):  # (captions may have been edited on the Images tab meanwhile)
        Context.block.select(note, dataset, set_note, show_progress="hidden")
    _wire(services, page, dataset, adapter, preset, inputs, [memory, timing], start, stop, resume, message,
          progress, plot, warnings, gallery, pick, runs)


def _wire(services, page, dataset, adapter, preset, inputs, memory, start, stop, resume, message,
          progress, plot, warnings, gallery, pick, runs) -> None:
    live = [progress, plot, warnings, gallery, runs, pick, stop, resume]

    def refresh(last, pick_id):
        snap, snaps = shown_run(services, pick_id)
        key = view.signature(snap, snaps)
        if key == last:
            return None
        choices = [view.run_choice(r) for r in snaps]
        can_stop = snap is not None and snap.status in ("running", "queued")
        queued = [r for r in snaps if r.status == "queued" and (snap is None or r.id != snap.id)]
        card = view.progress_html(snap, queued, first_preview_step(snap) if snap else None)
        return (key, card, gr.update(value=view.loss_plot(snap), x_lim=view.step_axis(snap)), view.warnings_md(snap), view.previews(snap),
                view.run_rows(snaps), gr.update(choices=choices), gr.update(interactive=can_stop),
                gr.update(interactive=bool(snap and snap.can_resume)))

    def estimate(preset_name, data, *values):
        try:
            s = settings_from_form(preset_name, list(values))
        except StudioError as e:
            return gr.skip(), f"<span class='status-error'>Settings problem: {e}</span>"
        return memory_text(services, s), time_text(services, s, data)

    def started(snap):
        verb = "queued" if snap.status == "queued" else "started"
        # no pick: the main panel shows the running run, and a queued one is listed under it
        return f"Training **{snap.adapter}** {verb} (run {snap.id}).", pick_update(services, None)

    if services.runner is None:
        start.click(guard(lambda: (_ for _ in ()).throw(StudioError(
            "Training from the page needs the job runner, which is not installed."))), None, None)
        return
    page.view(live, refresh, [pick])  # (drawn again when the pick changes: PageState.view)
    act(preset.change, lambda p: form_values(preset_settings(p)), preset, inputs)
    for c in [preset, dataset, *inputs]:
        c.change(estimate, [preset, dataset, *inputs], memory, show_progress="hidden", trigger_mode="always_last")
    act(start.click, lambda d, a, p, *v: started(start_run(services, d, a, p, list(v))),
        [dataset, adapter, preset, *inputs], [message, pick], on=message, concurrency_limit=1,
        api_name="start_training")
    stop.click(guard(lambda r: _act(services, "stop", r)), pick, message)
    act(resume.click, lambda r: _act(services, "resume", r), pick, [message, pick], on=message)

    def sets(lists, prev, current):
        names = lists.datasets
        if prev is None and lists.live_dataset:  # a page opened mid-run shows the set that is training
            return select_update(names, lists.live_dataset)
        return choices_update(names, current, names[-1] if names else None)

    page.follow([dataset], sets, [dataset])

    def settings_of_live_run(lists, prev, current_preset):
        """A page opened mid-run shows the running training's settings in the form, as it shows its
        image set: a newcomer read "Training length 300" beside a run of 100 steps after a reload
        (newcomer review, 2026-12-07). Only on opening, and only when the run's preset is the form's
        (a preset change would fill the preset's own values over them)."""
        if prev is not None:  # (every later change of the lists: nothing to read)
            return [gr.skip()] * len(inputs)
        snap, _ = shown_run(services, None)
        req = getattr(snap, "request", None)
        if snap is None or snap.status not in ("running", "queued") or req is None or req.preset != current_preset:
            return [gr.skip()] * len(inputs)
        try:
            return form_values(apply_sets(preset_settings(req.preset), list(req.sets)))
        except (StudioError, ValueError, TypeError):  # a run started by an older version: left as it is
            return [gr.skip()] * len(inputs)

    page.follow(inputs, settings_of_live_run, [preset])
    # a run that ends writes its adapter (the lists change): its step rate makes the estimate better
    page.follow([memory[1]], lambda lists, prev, p, d, *v: estimate(p, d, *v)[1], [preset, dataset, *inputs])
    # past runs make the time estimate better: re-estimate whenever the tab is shown (not on the
    # timer, which would send the whole form every tick)
    tab = Context.block
    if isinstance(tab, gr.Tab):
        tab.select(lambda p, d, *v: estimate(p, d, *v)[1], [preset, dataset, *inputs], memory[1],
                   show_progress="hidden")
    # a hint, never a value: writing the name here would overwrite what the user typed meanwhile. The
    # name an empty field means, numbered once the set's own is taken (said, not a surprise after Start)
    hint = guard(lambda d: gr.update(placeholder=name_hint(d and default_adapter_name(services, d))))
    dataset.change(hint, dataset, adapter, show_progress="hidden")
    page.follow([adapter], lambda lists, prev, d: hint(d), [dataset])  # (a run that ends takes its name)


def set_caption_note(services: Services, dataset: str | None) -> str:
    from ..data.captions import trigger_note

    try:
        said = trigger_note(mf.load(dataset, services.ws)) if dataset else ""
    except StudioError:  # a set deleted or damaged meanwhile: Start says why
        return ""
    return f"⚠ {said}" if said else ""


def name_hint(dataset: str | None) -> str:
    return f"empty = {dataset}" if dataset else "e.g. neon-v1"


def _act(services: Services, action: str, pick_id):
    snap, _ = shown_run(services, pick_id)
    if snap is None:
        raise StudioError("There is no run to " + action + ".", "Start a training first.")
    if action == "stop":
        done = services.runner.stop(snap.id)
        if done.status == "cancelled":
            return f"Cancelled **{done.adapter}** (it had not started)."
        if done.status != "running":  # it ended meanwhile: nothing was sent
            return f"**{done.adapter}** is not running any more (it is {done.status})."
        return f"Stopping **{done.adapter}** at the next step; the adapter trained so far will be saved."
    new = services.runner.resume(snap.id)
    return f"Resuming **{new.adapter}** as run {new.id}.", pick_update(services, new.id)


def pick_update(services: Services, run_id: str):
    return gr.update(choices=[view.run_choice(r) for r in services.runner.runs()], value=run_id)
