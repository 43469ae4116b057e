"""Images tab: make or grow an image set from uploads (files or zips) or a sample style set,
see what was accepted and why anything was refused, edit captions, see the hold-out split.

Callbacks call :mod:`studio.data` (ingest, manifest) and return what the page shows;
the set itself lives on disk, so a reload shows the same thing.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from pathlib import Path

import gradio as gr

from ..config import IngestSettings
from ..data import ingest as ingest_mod
from ..data import manifest as mf
from ..errors import StudioError
from ..models.tiny.scenes import STYLES
from .common import act, guard
from .forms import field_input
from .page_state import PageState, Picker, dataset_names, pick_update, select_update
from .services import Services

log = logging.getLogger(__name__)

REPORT_HEADERS = ["File", "Result", "Reason / details"]
CAPTION_HEADERS = ["Image", "Split", "Caption"]
INTRO = ("Start here: add **5–50 pictures that share one look** (your product photos, a brand style). "
         "Each gets a caption you can edit. No pictures at hand? *Try a sample style set* below.")
CAPTION_HELP = ("**Captions** tell the training what each picture *shows* (\"a red mug on a table\"), not how "
                "it looks: what every caption leaves out is what the adapter learns as the style. Photos "
                "without a caption file get one with the set's **trigger word**; that word in a prompt later "
                "calls the style up (the Generate tab adds it when you tick the style).")
SAMPLE_COUNT = 16  # images in a "Try a sample style set" set


def report_rows(report: ingest_mod.IngestReport) -> list[list[str]]:
    rows = [[it.source, "accepted", "; ".join([f"{it.width}×{it.height}", *it.notes])] for it in report.accepted]
    rows += [[name, "refused", reason] for name, reason in report.refused]
    rows += [["", "note", n] for n in report.notes]
    return rows


def ingest_summary(services: Services, report: ingest_mod.IngestReport) -> str:
    """What Add to set says: the counts, and the trigger-word note when added captions lack it
    (files that came with their own .txt captions keep them as they are)."""
    said = report_summary(report)
    return said + trigger_note(mf.load(report.dataset, services.ws)) if report.accepted else said


def report_summary(report: ingest_mod.IngestReport) -> str:
    return (f"**{report.dataset}**: accepted {len(report.accepted)}, refused {len(report.refused)}. "
            f"The set now has {report.total} images ({report.total - report.val} for training, "
            f"{report.val} held out for validation).")


def set_view(services: Services, name: str | None):
    """Gallery items, caption rows and the split line for dataset ``name``."""
    if not name:
        return [], [], "Pick a set or make a new one."
    m = mf.load(name, services.ws)
    folder = mf.dataset_dir(name, services.ws)
    gallery = [(str(folder / it.file), f"{'[val] ' if it.split == 'val' else ''}{it.caption}") for it in m.items]
    rows = [[it.source, "validation" if it.split == "val" else "train", it.caption] for it in m.items]
    held = ", ".join(Path(it.source).name for it in m.val) or "none (fewer than 5 images)"
    split = (f"**{name}** (trigger word *{m.trigger}*): {len(m.items)} images, {len(m.train)} for training, "
             f"{len(m.val)} held out for validation: {held}.")
    return gallery, rows, split


def shown_key(services: Services, name: str | None) -> tuple:
    """What the gallery and captions table show: the set and its manifest's file key (a save
    replaces the file: a new inode; a modification time alone can repeat within a tick)."""
    from .changes import file_key

    return (name, *file_key(services.ws.datasets / name / "manifest.json")) if name else (None,)


def view_if_changed(services: Services, name: str | None, shown: tuple | None) -> tuple:
    """(new shown key, gallery, caption rows, split line), or all skips when the page already shows
    this set as it is on disk: every re-render of the table throws away a caption being edited, so
    a late refresh (the set just added by this page, the poll noticing the same change) must not
    draw it again."""
    key = shown_key(services, name)
    if shown is not None and tuple(shown) == key:
        return (gr.skip(),) * VIEW_PARTS
    gallery, rows, split = set_view(services, name)
    return key, gallery, rows, split, rows  # (the last: the captions as drawn, for Save captions)


VIEW_PARTS = 5  # shown key, gallery, caption rows, split line, caption rows as drawn (see _wire)


def verify_view(services: Services, name: str | None, shown: tuple | None) -> tuple:
    """The view drawn again when it does not show the picked set as it is on disk. With no set
    picked it is left alone: the page is about to pick the one a refresh drew (pick_update's plan,
    applied in the browser) or, with no set at all, already says so."""
    if not name:
        return (gr.skip(),) * VIEW_PARTS
    return view_if_changed(services, name, shown)


def upload_line(files) -> str:
    """"19 files chosen: a.png, b.png, … and 16 more" under the upload box (it shows only a few)."""
    if not files:
        return ""
    names = [Path(f).name for f in files]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"**{len(names)} file{'s' if len(names) != 1 else ''} chosen:** {shown}. Press *Add to set*."


def target_name(existing: str | None, new: str | None) -> str:
    name = (new or "").strip() or (existing or "")
    if not name:
        raise StudioError("No image set chosen.", "Pick an existing set or type a name for a new one.")
    return mf.check_name(name)


def add_files(services: Services, existing, new, trigger, files):
    name = target_name(existing, new)
    if not files:
        raise StudioError("No files to add.", "Drop photos or a .zip into the upload box first.")
    settings = dataclasses.replace(IngestSettings(), trigger=(trigger or "").strip())
    report = ingest_mod.ingest(name, [Path(f) for f in files], settings, family=services.family, ws=services.ws)
    return name, report


def add_sample(services: Services, style: str, existing, new, trigger):
    from ..models.tiny.sample_data import write_style_set

    name = (new or "").strip() or (existing or "") or f"{style}-sample"
    mf.check_name(name)
    folder = services.ws.root / "samples" / style
    write_style_set(folder, style, SAMPLE_COUNT)
    settings = dataclasses.replace(IngestSettings(), trigger=(trigger or "").strip() or style)
    return name, ingest_mod.ingest(name, [folder], settings, family=services.family, ws=services.ws)


def match_rows(items: list[mf.Item], rows) -> list[tuple[mf.Item, str]]:
    """Pair each caption-table row with its image: by position (the table lists the manifest
    in order), else by its source name when that is unique (the user sorted the table)."""
    by_source: dict[str, list[mf.Item]] = {}
    for it in items:
        by_source.setdefault(it.source, []).append(it)
    pairs = []
    for i, row in enumerate(rows or []):
        source, caption = str(row[0]), str(row[2] if len(row) > 2 else "").strip()
        if i < len(items) and items[i].source == source:
            pairs.append((items[i], caption))
        elif len(by_source.get(source, [])) == 1:
            pairs.append((by_source[source][0], caption))
        else:
            raise StudioError(f"Cannot tell which image {source!r} is.", "Reload the page and edit again.")
    return pairs


def save_captions(services: Services, name: str | None, rows, drawn=None) -> str:
    """Write the captions edited in the table. With ``drawn`` (the rows as the page drew them), only
    the ones the user changed: a caption changed on disk meanwhile (another window) and left alone
    here keeps that change instead of being written back to what this page first showed."""
    if not name:
        raise StudioError("No image set chosen.", "Pick the set whose captions you edited.")
    items = mf.load(name, services.ws).items
    try:
        shown = {item.file: caption for item, caption in match_rows(items, drawn)} if drawn else {}
    except StudioError:  # drawn before images were added or removed: compare with the disk alone
        shown = {}
    changed = kept = 0
    for item, caption in match_rows(items, rows):
        if caption == shown.get(item.file, item.caption):
            kept += caption != item.caption  # untouched here, changed elsewhere: theirs stays
            continue
        if caption != item.caption:
            if not caption:
                raise StudioError(f"The caption of {item.source} is empty.", "Write a caption (the trigger word helps).")
            mf.set_caption(name, item.file, caption, services.ws)
            changed += 1
    said = f"Saved {changed} caption{'s' if changed != 1 else ''} in **{name}**." if changed else "No caption changed."
    if kept:
        said += (f" {kept} other caption{'s' if kept != 1 else ''} changed in another window meanwhile "
                 f"{'were' if kept != 1 else 'was'} kept as {'they are' if kept != 1 else 'it is'}.")
    return said + trigger_note(mf.load(name, services.ws))


def trigger_note(manifest) -> str:
    from ..data.captions import trigger_note as note

    said = note(manifest)
    return f"  \n**Note:** {said}" if said else ""


def images_tab(services: Services, page: PageState) -> None:
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            gr.Markdown(INTRO, elem_id="images-intro")
            with gr.Group():
                existing = Picker([], value=None, label="Image set",
                                       info="An existing set to add to, edit or train.", elem_id="set-pick").reads(
                                           lambda: dataset_names(services))
                new = gr.Textbox(label="New set name", placeholder="e.g. my-shop (letters, digits, - and _)",
                                 info="Fill in to start a new set; leave empty to use the one above.",
                                 elem_id="set-new")
                trigger = field_input(IngestSettings, "trigger", label="Trigger word", elem_id="trigger")
            files = gr.File(file_count="multiple", label="Photos or .zip files (drag and drop)",
                            type="filepath", elem_id="upload", height=150)
            chosen = gr.Markdown(elem_id="upload-count")
            add = gr.Button("Add to set", variant="primary", elem_id="add-images")
            with gr.Row(equal_height=True):
                style = gr.Dropdown(list(STYLES), value=STYLES[0], label="Sample style", scale=1,
                                    elem_id="sample-style")
                sample = gr.Button("Try a sample style set", scale=1, elem_id="try-sample")
            status = gr.Markdown(elem_id="images-status")
            report = gr.Dataframe(headers=REPORT_HEADERS, value=[], label="Ingest report", type="array",
                                  interactive=False, wrap=True, elem_id="ingest-report", max_height=300,
                                  column_widths=["34%", "20%", "46%"])
        with gr.Column(scale=3, min_width=420):
            split = gr.Markdown(elem_id="split-info")
            gallery = gr.Gallery(label="Images and captions", columns=5, height=340, object_fit="contain", fit_columns=False,
                                 elem_id="thumbs", elem_classes=["pixelated"], allow_preview=True,
                                 interactive=False)
            gr.Markdown(CAPTION_HELP, elem_id="captions-help", elem_classes=["muted"])
            captions = _captions_table()
            save = gr.Button("Save captions", elem_id="save-captions")
            saved = gr.Markdown(elem_id="captions-status")
    files.change(lambda f: upload_line(f), files, chosen, show_progress="hidden")
    _wire(services, page, existing, new, trigger, files, add, style, sample, status, report, split, gallery,
          captions, save, saved)


def _captions_table() -> gr.Dataframe:
    """One row per image of the set: its caption is editable, rows are not (no "+" to add a row
    that has no image, no menu to insert or delete one): Gradio draws those only for a
    "dynamic" row count, and its replacement (``row_limits``) is not implemented yet."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the tuple forms: the only ones honoured
        return gr.Dataframe(headers=CAPTION_HEADERS, value=[], label="Captions (click a caption to edit)",
                            type="array", interactive=True, static_columns=[0, 1], wrap=True, row_count=(0, "fixed"),
                            column_count=(len(CAPTION_HEADERS), "fixed"),
                            elem_id="captions", max_height=320, column_widths=["26%", "14%", "60%"])


def _wire(services, page, existing, new, trigger, files, add, style, sample, status, report, split, gallery,
          captions, save, saved) -> None:
    shown = gr.State(None)  # shown_key of what the gallery and table show (set by whatever drew them)
    drawn = gr.State(None)  # the caption rows as drawn into the table: Save writes only what differs
    view = [shown, gallery, captions, split, drawn]

    def after_ingest(name, rep):
        kept = rep.total > 0  # a new set that got no image is not kept (studio.data.ingest)
        parts = view_if_changed(services, name, None) if kept else (
            shown_key(services, None), [], [], f"Nothing was added to {name}: see why below.", None)
        return (select_update(dataset_names(services), name if kept else None), "", ingest_summary(services, rep),
                report_rows(rep), *parts, None)

    ingest_out = [existing, new, status, report, *view, files]
    act(add.click, lambda e, n, t, f: after_ingest(*add_files(services, e, n, t, f)),
        [existing, new, trigger, files], ingest_out, on=status, concurrency_limit=1, api_name="add_images")
    act(sample.click, lambda s, e, n, t: after_ingest(*add_sample(services, s, e, n, t)),
        [style, existing, new, trigger], ingest_out, on=status, concurrency_limit=1, api_name="add_sample")
    # An answer can land after the page moved on (a refresh that left while the page showed the
    # sample set answers after "Add to set" drew the new one: CI, 2026-12-07). Whatever draws the
    # view sets ``shown`` (which set, as it was on disk), so a change of either side compares them
    # and draws the set the picker shows (the same idea as PageState.view's inputs).
    gr.on([existing.change, shown.change], guard(lambda name, was: verify_view(services, name, was)),
          [existing, shown], view, trigger_mode="always_last", show_progress="hidden")
    act(save.click, lambda name, rows, was: (save_captions(services, name, rows, was),
                                             *view_if_changed(services, name, None)),
        [existing, captions, drawn], [saved, *view], on=saved, concurrency_limit=1)

    def follow(lists, prev, name, was):
        names = lists.datasets
        new = name if name in names else (lists.live_dataset or (names[-1] if names else None))
        # the set's pictures and captions only when they changed on disk since they were drawn
        return pick_update(names, name, fallback=new), *view_if_changed(services, new, was)

    page.follow([existing, *view], follow, [existing, shown])
