"""No event of the page may cover a field the user types into or picks from with its progress,
or, when it is refused, with Gradio's red "Error" badge (which hides the field's content until the
next event): a refused "Add to set" blanked the set picker, the typed name and the upload box
(newcomer review, 2026-12-07). Checked over every event the page wires when it is built, not a list
of known ones: ``studio.ui.common.act`` is the one way to wire an event whose outputs include such
fields. Events wired inside ``@gr.render`` (the Generate tab's adapter list and its buttons) are not
in the built config (nor in the browser's ``window.gradio_config``): the first-visit e2e test makes a
refusal there (Before / after with no style ticked) and looks for badges in the browser."""

import gradio as gr
import pytest

from studio.config import ModelSettings
from studio.paths import Workspace
from studio.ui.app import build_app
from studio.ui.services import build_services

# what a user types into or picks from (an interactive one); results (markdown, images, plots) are not
FIELDS = {"textbox", "dropdown", "number", "slider", "checkbox", "checkboxgroup", "radio", "file", "dataframe",
          "uploadbutton", "colorpicker", "image"}


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("events") / "outputs")
    return build_app(build_services(ModelSettings(), ws=ws)).get_config_file()


def _fields(config) -> dict[int, str]:
    out = {}
    for c in config["components"]:
        props = c.get("props", {})
        if c["type"] in FIELDS and props.get("interactive") is not False:
            out[c["id"]] = f"{c['type']} {props.get('label') or props.get('elem_id') or c['id']!r}"
    return out


def offenders(config) -> list:
    """(event id, its triggers, the fields it covers) for every event that draws progress or its error
    badge over a field (Gradio draws them on ``show_progress_on``, else on every output)."""
    fields = _fields(config)
    bad = []
    for d in config["dependencies"]:
        if d.get("show_progress") == "hidden":
            continue
        covered = [fields[o] for o in (d.get("show_progress_on") or d.get("outputs") or []) if o in fields]
        if covered:
            bad.append((d["id"], d.get("targets"), covered[:4]))
    return bad


def test_no_event_draws_its_progress_or_error_over_a_field(config):
    assert len(config["dependencies"]) > 50 and len(_fields(config)) > 40  # the whole page, not a part of it
    assert not offenders(config)


def test_the_rule_catches_an_event_wired_the_plain_way_and_passes_act():
    """The check above is not vacuous: a plain ``click`` onto a field is what it reports, and the same
    event wired through ``act`` (with or without a status line) is not."""
    from studio.ui.common import act

    with gr.Blocks() as plain:
        name, status, button = gr.Textbox(label="Name"), gr.Markdown(), gr.Button("Go")
        button.click(lambda n: (n, "ok"), name, [name, status])
    assert [covered for _, _, covered in offenders(plain.get_config_file())] == [["textbox 'Name'"]]
    with gr.Blocks() as wired:
        name, status, button = gr.Textbox(label="Name"), gr.Markdown(), gr.Button("Go")
        act(button.click, lambda n: (n, "ok"), name, [name, status], on=status)
        act(button.click, lambda n: (n, "ok"), name, [name, status])
    assert offenders(wired.get_config_file()) == []
