"""No event of the page may cover a field the user types into or picks from with its progress,
or, when it is refused, with Gradio's red "Error" badge (which hides the field's content until the
next event): a refused "Add to set" blanked the set picker, the typed name and the upload box
(newcomer review, 2026-12-07). Checked over every event the page wires, not a list of known ones:
``studio.ui.common.act`` is the one way to wire an event whose outputs include such fields."""

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


def test_no_event_draws_its_progress_or_error_over_a_field(config):
    fields = _fields(config)
    events = config["dependencies"]
    assert len(events) > 50 and len(fields) > 40  # the whole page, not a part of it
    bad = []
    for d in events:
        if d.get("show_progress") == "hidden":
            continue
        covered = [fields[o] for o in (d.get("show_progress_on") or d.get("outputs") or []) if o in fields]
        if covered:
            bad.append((d["id"], d.get("targets"), covered[:4]))
    assert not bad, bad


def test_the_rule_would_catch_an_event_wired_the_plain_way():
    """The check above is not vacuous: a plain ``click`` onto a field is what it reports."""
    with gr.Blocks() as demo:
        name = gr.Textbox(label="Name")
        status = gr.Markdown()
        button = gr.Button("Go")
        button.click(lambda n: (n, "ok"), name, [name, status])
    deps = demo.get_config_file()["dependencies"]
    fields = _fields(demo.get_config_file())
    assert any(o in fields for d in deps if d.get("show_progress") != "hidden" for o in d["outputs"])
