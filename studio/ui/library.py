"""Library tab: adapter cards, details, rename / duplicate / delete, import, export, blend-to-one.

Callbacks read the inputs, call ``services.library`` and turn a ``StudioError`` into ``gr.Error``.
The library folder is the only state: the cards and every adapter list follow the page state
(:mod:`studio.ui.page_state`), so adapters that a finished training, another browser or the CLI
added are there when the page opens and appear while it is open.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import gradio as gr

from ..config import help_of
from ..errors import StudioError
from .common import act, guard
from .drawn import as_file
from .forms import field_input, field_of
from .page_state import PageState, Picker, pick_update

if TYPE_CHECKING:
    from .services import Services

log = logging.getLogger(__name__)

# Cards show every line of their caption; long values in the details table wrap anywhere.
CSS = """
#library-cards .caption-label { white-space: normal !important; overflow: visible !important;
  text-overflow: clip !important; max-width: 100% !important; font-size: 0.8rem; line-height: 1.25; }
#library-details td, #library-metadata td { word-break: break-word; }
/* a card is a before|after pair (about 2:1) with three lines of caption underneath, clear of the pictures
   (at 4:3 a three-line caption covered their lower edge) */
#library-cards .thumbnail-item { aspect-ratio: 10 / 9 !important; }
#library-cards .thumbnail-item > img { object-position: top; }
#library-cards .fixed-height { min-height: 0 !important; }  /* as tall as the cards, not 450 px */
#library-cards .grid-wrap { padding-top: 34px; }  /* clear of the gallery's own buttons */
"""

def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def _caption(r) -> str:
    steps = f"{r.steps} step{'' if r.steps == 1 else 's'}" if r.steps is not None else r.source or "imported"
    trigger = f" · trigger “{r.trigger}”" if r.trigger else ""
    return f"{r.name} · {r.family or 'unknown family'} · {steps} · {_size(r.size_bytes)}{trigger}"


def _cards(library) -> list[tuple]:
    """Gallery items: (preview path or placeholder, caption) for every adapter; damaged entries last
    (so card i < len(names()) is names()[i]), with their reason instead of a preview."""
    records = library.list()
    good = [(str(r.preview) if r.preview else as_file(_placeholder()), _caption(r)) for r in records if r.ok]
    return good + [(as_file(_placeholder((230, 190, 190))), f"⚠ {r.shown_name} · damaged: {r.damaged}")
                   for r in records if not r.ok]


def _placeholder(colour=(200, 200, 205)):
    from PIL import Image

    return Image.new("RGB", (64, 64), colour)


def _details(library, name: str | None):
    """(summary markdown, field/value rows, metadata rows) of one adapter."""
    if not name or name not in library.names():
        return "Pick an adapter (click its card or choose it in the list).", [], []
    r = library.get(name)
    layers = "; ".join(f"{t}: {g.modules} modules, rank {g.rank}, alpha {g.alpha:g}" for t, g in r.layers.items())
    rows = [["Family", r.family or "unknown"], ["Base model", r.base or "unknown"],
            ["Base model fingerprint (weights hash)", r.base_hash or "unknown"], ["Source", r.source or "unknown"],
            ["Steps", "" if r.steps is None else str(r.steps)], ["Created", r.created],
            ["Trigger word (put it in a prompt)", r.trigger],
            ["Style meter (how far it moved toward its set's look)", _meter(r) or "not judged (`studio judge NAME "
             "--dataset SET` judges it)"],
            ["Best score on held-out images (validation loss)", "" if r.best_val is None else f"{r.best_val:.4f}"],
            ["Size on disk", _size(r.size_bytes)], ["Layers", layers or "none"], ["File", str(r.file.name)]]
    meta = [[k, v if len(v) <= 300 else v[:300] + " …"] for k, v in sorted(r.metadata.items())]
    return f"### {r.name}\n{_caption(r)}", rows, meta


def _meter(r) -> str:
    from ..judge.scorecard import verdict_of

    return verdict_of(r.file.parent, r.steps)


def _empty(names: list[str]) -> str:
    return "" if names else "No adapters yet: train one in the Train tab or import a file below."


def library_tab(services: "Services", page: PageState) -> None:
    lib = services.library
    chosen = Picker(choices=[], value=None, label="Adapter", elem_id="library-adapter",
                         info="Click a card or pick a name.", render=False).reads(services.library.names)
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=480):
            gr.Markdown("**Your style adapters.** Each card is *before | after*: the base model's image, then "
                        "the same prompt and seed with the adapter. Click a card for its details.",
                        elem_classes=["muted"])
            cards = gr.Gallery(label="Adapters", show_label=False, columns=4, height="auto",
                               object_fit="contain", allow_preview=False, fit_columns=False, format="png",
                               elem_id="library-cards",
                               elem_classes=["pixelated"])
            empty = gr.Markdown(elem_id="library-empty")
            with gr.Row(equal_height=False):
                with gr.Column(min_width=260):
                    _export(services, chosen)
                with gr.Column(min_width=260):
                    _import(services)
        with gr.Column(scale=2, min_width=380):
            chosen.render()
            summary = gr.Markdown(elem_id="library-summary")
            details = gr.Dataframe(headers=["Field", "Value"], label="Details", interactive=False, wrap=True,
                                   column_widths=["38%", "62%"], elem_id="library-details")
            with gr.Accordion("File metadata", open=False):
                metadata = gr.Dataframe(headers=["Key", "Value"], label="Metadata in the file", interactive=False,
                                        wrap=True, column_widths=["38%", "62%"], elem_id="library-metadata")
            _manage(services, chosen)
            parts = _blend(services)

    def follow(lists, prev, current, picked):
        names = lists.adapters
        return (_cards(lib), pick_update(names, current), pick_update(names, picked, multiselect=True),
                _empty(names))

    def show(name):
        return _details(lib, name)

    def pick(evt: gr.SelectData):
        names = lib.names()
        return names[evt.index] if 0 <= evt.index < len(names) else gr.skip()

    page.follow([cards, chosen, parts, empty], follow, [chosen, parts])
    act(cards.select, pick, None, chosen)
    chosen.change(guard(show), chosen, [summary, details, metadata], show_progress="hidden")


def _manage(services: "Services", chosen: gr.Dropdown) -> None:
    lib = services.library
    with gr.Group():
        new_name = gr.Textbox(label="New name", placeholder="letters, digits, - and _", elem_id="library-new-name")
        with gr.Row():  # active once an adapter is picked
            rename = gr.Button("Rename", elem_id="library-rename", interactive=False)
            duplicate = gr.Button("Duplicate", elem_id="library-duplicate", interactive=False)
            delete = gr.Button("Delete…", variant="stop", elem_id="library-delete", interactive=False)
    with gr.Row(visible=False, elem_id="library-confirm") as confirm_row:
        confirm_text = gr.Markdown()
        yes = gr.Button("Yes, delete it", variant="stop", elem_id="library-delete-yes")
        no = gr.Button("Cancel", elem_id="library-delete-no")
    message = gr.Markdown(elem_id="library-message")

    def do_rename(name, new):
        lib.rename(name or "", (new or "").strip())
        return gr.update(choices=lib.names(), value=new.strip()), f"Renamed **{name}** to **{new.strip()}**."

    def do_duplicate(name, new):
        lib.duplicate(name or "", (new or "").strip())
        return gr.update(choices=lib.names(), value=new.strip()), f"Copied **{name}** to **{new.strip()}**."

    def ask(name):
        if not name:
            raise gr.Error("Pick an adapter to delete first.")
        return gr.update(visible=True), f"Delete **{name}** and all its files? This cannot be undone."

    def do_delete(name):
        lib.delete(name or "")
        return gr.update(visible=False), gr.update(choices=lib.names(), value=None), f"Deleted **{name}**."

    chosen.change(lambda n: [gr.update(interactive=bool(n))] * 3, chosen, [rename, duplicate, delete],
                  show_progress="hidden")
    act(rename.click, do_rename, [chosen, new_name], [chosen, message], on=message)
    act(duplicate.click, do_duplicate, [chosen, new_name], [chosen, message], on=message)
    delete.click(guard(ask), chosen, [confirm_row, confirm_text])
    no.click(lambda: gr.update(visible=False), None, confirm_row)
    act(yes.click, do_delete, chosen, [confirm_row, chosen, message], on=message)


def _pre(text: str) -> str:
    """A service's multi-line report, shown as it is (monospace)."""
    return "```text\n" + text.replace("`", "'") + "\n```"


def _default(cls: type, name: str):
    return field_of(cls, name)[0].default


def _export(services: "Services", chosen: gr.Dropdown) -> None:
    from ..config import ExportSettings

    with gr.Group(elem_id="library-export"):
        gr.Markdown("#### Export for other tools")
        fmt = gr.Radio(["kohya", "diffusers"], value=_default(ExportSettings, "format"), label="Format",
                       info=help_of(ExportSettings, "format"), elem_id="export-format")
        with gr.Row():
            dtype = gr.Dropdown(["fp32", "fp16", "bf16"], value=_default(ExportSettings, "dtype"), label="Precision",
                                info=help_of(ExportSettings, "dtype"), elem_id="export-dtype")
            rank = field_input(ExportSettings, "rank", label="Rank (0 = keep)", elem_id="export-rank")
        go = gr.Button("Export", elem_id="export-button", interactive=False)
        fits = gr.Markdown(elem_id="export-fits", elem_classes=["muted"])  # which models, before exporting
        # shown once there is a file, labelled with its whole name
        file = gr.DownloadButton("Download", visible=False, elem_id="export-file", variant="primary")
        report = gr.Markdown(elem_id="export-report")

    def run(name, fmt, dtype, rank):
        from ..adapters.export import export

        if not name:
            raise gr.Error("Pick an adapter to export first.")
        result = export(name, ExportSettings(format=fmt, dtype=dtype, rank=int(rank or 0)), ws=services.ws)
        return (gr.update(value=str(result.path), label=f"Download {result.path.name}", visible=True),
                _export_report(result))

    def picked(name):  # Export works, and which models its file fits, once an adapter is picked
        from ..adapters.export import fits_note

        known = name in services.library.names()  # (gone meanwhile: renamed or deleted elsewhere)
        return gr.update(interactive=bool(name)), fits_note(services.library.get(name).family) if known else ""

    chosen.change(guard(picked), chosen, [go, fits], show_progress="hidden")
    go.click(guard(run), [chosen, fmt, dtype, rank], [file, report])


def _export_report(r) -> str:
    lines = [f"`{r.path.name}` — {r.format}, {r.dtype}, {r.modules} modules, {_size(r.size_bytes)}.",
             "Also saved in the workspace under `exports/`."]
    if r.resize is not None:
        lines.append(_pre(r.resize.format(per_module=False)))
    return "\n\n".join(lines)


def _import(services: "Services") -> None:
    with gr.Group(elem_id="library-import"):
        gr.Markdown("#### Import a LoRA file")
        upload = gr.File(label="LoRA file (.safetensors)", file_types=[".safetensors"], type="filepath",
                         elem_id="import-file")
        name = gr.Textbox(label="Name in the library", placeholder="empty = from the file name",
                          elem_id="import-name")
        go = gr.Button("Import", elem_id="import-button")
        report = gr.Markdown(elem_id="import-report")

    def run(path, new):
        from ..adapters.importer import import_file

        if not path:
            raise gr.Error("Choose a .safetensors file to import first.")
        try:
            result = import_file(path, name=(new or "").strip() or None, ws=services.ws)
        except StudioError as e:
            return f"**Refused:** {e}"
        return f"Imported **{result.name}**.\n\n" + _pre(result.format())

    go.click(guard(run), [upload, name], report)


def _blend(services: "Services") -> gr.Dropdown:
    lib = services.library
    with gr.Group(elem_id="library-blend"):
        gr.Markdown("#### Blend into one adapter")
        parts = Picker(choices=[], multiselect=True, label="Adapters to blend", elem_id="blend-parts").reads(
            services.library.names)
        weights = gr.Dataframe(headers=["Adapter", "Weight"], datatype=["str", "number"], label="Weights",
                               interactive=True, elem_id="blend-weights", row_count=(0, "fixed"),
                               column_count=(2, "fixed"))
        with gr.Row():
            new = gr.Textbox(label="New adapter name", elem_id="blend-name")
            rank = gr.Number(value=0, precision=0, minimum=0, maximum=1024, label="Rank (0 = exact)",
                             info="Exact concatenates the ranks; a rank compresses by SVD (error reported).",
                             elem_id="blend-rank")
        go = gr.Button("Blend", elem_id="blend-button")
        report = gr.Markdown(elem_id="blend-report")

    def fill(picked):
        w = round(1 / len(picked), 3) if picked else 0
        return [[n, w] for n in picked or []]

    def run(table, name, rank):
        from ..adapters.blend import blend

        rows = table.values.tolist() if hasattr(table, "values") else table or []
        if len(rows) < 2:
            raise gr.Error("Pick at least two adapters to blend.")
        result = blend(lib, (name or "").strip(), [(str(n), float(w)) for n, w in rows], rank=int(rank or 0))
        return gr.update(choices=lib.names(), value=[]), _pre(result.format())

    act(parts.change, fill, parts, weights)
    act(go.click, run, [weights, new, rank], [parts, report], on=report)
    return parts
