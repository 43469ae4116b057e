"""The page's inputs come from the settings fields, and the Train form round-trips to the
same TrainSettings the CLI builds from `--preset` + `--set`."""

import dataclasses

import gradio as gr
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studio.config import TrainSettings
from studio.errors import StudioError
from studio.overlay import apply_sets
from studio.train.presets import load_preset
from studio.ui import forms
from studio.ui import train_view as view


def test_inputs_take_default_limits_help_and_choices_from_the_field():
    steps = forms.field_input(TrainSettings, "steps")
    f = {x.name: x for x in dataclasses.fields(TrainSettings)}["steps"]
    assert isinstance(steps, gr.Number)
    assert (steps.value, steps.info) == (f.default, f.metadata["help"])
    assert steps.minimum is None and steps.maximum is None  # forms.build refuses, naming the field (below)
    base = TrainSettings()
    with pytest.raises(StudioError, match=r"steps=0 is out of range .* from 1 to 1000000"):
        forms.build(base, ["steps"], [0])
    q = forms.field_input(TrainSettings, "quantize")
    assert isinstance(q, gr.Dropdown) and [c[1] for c in q.choices] == ["none", "8bit", "nf4"]
    te = forms.field_input(TrainSettings, "lora.text_encoder")
    assert isinstance(te, gr.Checkbox) and te.value is True and te.label == "Also learn the words (text-encoder LoRA)"
    prompts = forms.field_input(TrainSettings, "sample_prompts", ("a", "b"))
    assert isinstance(prompts, gr.Textbox) and prompts.value == "a | b"


def test_the_first_screen_asks_only_basic_fields_and_advanced_labels_keep_the_technical_name():
    from studio.ui.train import ADVANCED, MAIN

    assert MAIN == ["steps"]  # image set and name are the tab's own inputs
    assert forms.is_basic(TrainSettings, "steps") and not forms.is_basic(TrainSettings, "lora.rank")
    for path, term in (("lora.rank", "rank"), ("lora.alpha", "alpha"), ("lr_unet", "learning rate"),
                       ("quantize", "QLoRA")):
        assert path in ADVANCED and f"({term}" in forms.label_for(path)


def test_every_train_setting_has_an_input_path():
    paths = forms.leaf_paths(TrainSettings)
    assert "lora.rank" in paths and "steps" in paths and "lora" not in paths
    assert len(paths) == len(dataclasses.fields(TrainSettings)) - 1 + len(dataclasses.fields(TrainSettings().lora))


def test_form_round_trips_through_preset_and_sets():
    preset = load_preset("tiny-cpu")
    paths = forms.leaf_paths(TrainSettings)
    values = [forms.as_display(forms.value_at(preset, p)) for p in paths]
    assert forms.build(preset, paths, values) == preset  # untouched form = the preset
    values[paths.index("steps")] = 24.0  # gr.Number hands back floats
    values[paths.index("lora.rank")] = 4
    values[paths.index("sample_prompts")] = "a cup, {trigger} style | a box"
    values[paths.index("flip")] = True
    s = forms.build(preset, paths, values)
    assert (s.steps, s.lora.rank, s.flip) == (24, 4, True)
    assert s.sample_prompts == ("a cup, {trigger} style", "a box")
    sets = forms.diff_sets(preset, s, paths)
    assert sorted(sets) == sorted(["steps=24", "lora.rank=4", "flip=True", "sample_prompts=a cup, {trigger} style|a box"])
    assert apply_sets(preset, sets) == s  # what the job runner's `studio train --set` rebuilds


@pytest.mark.parametrize("path,value,match", [("steps", 0, "out of range"), ("quantize", "4bit", "not one of"),
                                              ("lr_unet", None, "empty")])
def test_bad_form_values_are_readable_errors(path, value, match):
    preset = load_preset("tiny-cpu")
    paths = forms.leaf_paths(TrainSettings)
    values = [forms.value_at(preset, p) for p in paths]
    values[paths.index(path)] = value
    with pytest.raises(StudioError, match=match):
        forms.build(preset, paths, values)


def test_run_view_says_what_happened():
    snap = type("Snap", (), dict(id="r1", adapter="neon", dataset="set", status="failed", step=3, total=10,
                                 loss=0.5, it_per_s=1.0, eta_s=7.0, losses=[(1, 0.9), (2, 0.7)],
                                 val_losses=[(2, 0.8)], warnings=["validation loss rose"], samples=[],
                                 error="Training stopped: loss was not finite 3 times in a row.",
                                 device="cpu", can_resume=False, queue_position=None, started=1.0,
                                 ended=5.0, created=1.0, scorecard=()))()
    html = view.progress_html(snap)
    assert "Failed: Training stopped" in html and 'data-status="failed"' in html
    plot = view.loss_plot(snap)
    assert plot["data"] == [[1, 0.9, "training"], [2, 0.7, "training"], [2, 0.8, "validation"]]
    assert view.loss_plot(None) is None
    assert view.step_axis(snap) == [0, 10] and view.step_axis(None) is None  # the whole run, from its start
    snap.total, snap.scorecard = 0, [{"step": 4}]  # a record from before the first progress event
    assert view.step_axis(snap) == [0, 4]
    snap.val_losses = []  # before the first held-out check: the series is there, as a gap
    assert view.loss_plot(snap)["data"][-1] == [1, None, "validation"]
    assert view.run_rows([snap])[0][3] == "failed" and "not finite" in view.run_rows([snap])[0][-1]
    assert view.duration(3725) == "1 h 02 min" and view.duration(None) == "–"


def test_an_empty_adapter_name_means_the_image_sets_name_numbered_when_taken():
    from types import SimpleNamespace

    from studio.ui.train import default_adapter_name, name_hint

    run = SimpleNamespace(adapter="shop-2", live=True)
    folders = {"shop", "neon", "lamp"}  # lamp: a damaged adapter, listed but not usable: its name is taken too
    services = SimpleNamespace(library=SimpleNamespace(taken=lambda n: n in folders),
                               runner=SimpleNamespace(runs=lambda: [run]))
    assert default_adapter_name(services, "shop") == "shop-3"  # shop is in the library, shop-2 training
    assert default_adapter_name(services, "pastel") == "pastel"
    assert default_adapter_name(services, "lamp") == "lamp-2"
    assert name_hint("shop") == "empty = shop" and name_hint(None).startswith("e.g.")


def test_the_page_modules_import_no_torch():
    import subprocess
    import sys

    code = ("import sys, studio.ui.app, studio.ui.server; "
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "[]", out.stderr


def test_a_picker_takes_a_value_that_just_went_away_as_nothing():
    """A page-state refresh or a click can leave before a rename's new choices arrive: the stale
    name must not fail the event ("is not in the list of choices")."""
    from studio.ui.page_state import Picker

    one = Picker(choices=["neon", "fresh2"], value=None)
    many = Picker(choices=["neon", "fresh2"], value=[], multiselect=True)
    assert one.get_block_name() == "dropdown"  # the browser draws an ordinary dropdown
    assert one.preprocess("fresh") is None and one.preprocess("neon") == "neon"
    assert many.preprocess(["fresh", "neon"]) == ["neon"]
    with pytest.raises(gr.Error):  # a plain Dropdown refuses it
        gr.Dropdown(choices=["neon"], value=None).preprocess("fresh")


def test_a_picker_with_a_source_takes_what_is_on_disk_now():
    """A script calling the API (or a page before its first refresh) was never offered the names
    made since the server started: a picker that reads the disk takes those, and only those."""
    from studio.ui.page_state import Picker

    on_disk = ["neon", "made-later"]
    one = Picker(choices=[], value=None).reads(lambda: on_disk)
    many = Picker(choices=[], value=[], multiselect=True).reads(lambda: on_disk)
    assert one.preprocess("made-later") == "made-later" and one.preprocess("gone") is None
    assert many.preprocess(["made-later", "gone"]) == ["made-later"]
    on_disk.remove("made-later")  # deleted since: nothing
    assert one.preprocess("made-later") is None


def test_the_captions_table_has_one_row_per_picture_and_no_row_or_column_to_add():
    """Gradio's page draws the "+" row and the add/delete row and column menu items only for a
    "dynamic" count: what it reads is the component's config."""
    from studio.ui.images import CAPTION_HEADERS, _captions_table

    with gr.Blocks():
        cfg = _captions_table().get_config()
    assert cfg["row_count"][1] == "fixed"
    assert tuple(cfg["col_count"]) == (len(CAPTION_HEADERS), "fixed")


def test_a_late_refresh_does_not_redraw_the_captions_being_edited(tmp_path):
    """Every redraw of the captions table throws away a caption being edited. What drew the table
    (adding images, picking the set, saving) records what it showed; a later refresh for the same
    change (the Image set box's own change event, the page's poll noticing the new manifest) draws
    nothing, and a real change on disk (a save from another page) draws again."""
    from types import SimpleNamespace

    from studio.data import manifest as mf
    from studio.data.ingest import ingest
    from studio.models.tiny.sample_data import write_style_set
    from studio.paths import Workspace
    from studio.ui.images import view_if_changed

    ws = Workspace(tmp_path / "outputs")
    write_style_set(tmp_path / "photos", "neon", 5)
    ingest("shop", [tmp_path / "photos"], ws=ws)
    services = SimpleNamespace(ws=ws)
    key, gallery, rows, split, drawn = view_if_changed(services, "shop", None)  # drawn after "Add to set"
    assert len(rows) == 5 and "5 images" in split and drawn == rows
    skip = view_if_changed(services, "shop", key)  # the late refresh: same set, same file
    assert all(isinstance(x, dict) and x.get("__type__") == "update" and len(x) == 1 for x in skip), skip
    item = mf.load("shop", ws).items[0]
    for n in range(3):  # saves in quick succession, each seen (not only the first in a clock tick)
        mf.set_caption("shop", item.file, f"caption {n}", ws)
        key, _, rows, _, _ = view_if_changed(services, "shop", key)
        assert f"caption {n}" in [r[2] for r in rows]


def test_saving_captions_keeps_a_change_made_in_another_window(tmp_path):
    """Window A edits caption 0; window B saves caption 1; A saves: caption 0 is written and B's
    caption 1 stays (it used to be written back to what A was first shown)."""
    import copy
    from types import SimpleNamespace

    from studio.data import manifest as mf
    from studio.data.ingest import ingest
    from studio.models.tiny.sample_data import write_style_set
    from studio.paths import Workspace
    from studio.ui.images import save_captions, view_if_changed

    ws = Workspace(tmp_path / "outputs")
    write_style_set(tmp_path / "photos", "neon", 5)
    ingest("shop", [tmp_path / "photos"], ws=ws)
    services = SimpleNamespace(ws=ws)
    items = mf.load("shop", ws).items
    key, _, rows, _, drawn = view_if_changed(services, "shop", None)
    assert drawn == rows
    table = copy.deepcopy(rows)
    table[0][2] = "a mug, edited in A, neon style"
    mf.set_caption("shop", items[1].file, "a ball, saved by B, neon style", ws)  # window B saves
    said = save_captions(services, "shop", table, drawn)
    assert said.startswith("Saved 1 caption in **shop**.") and "1 other caption changed in another window" in said
    now = [it.caption for it in mf.load("shop", ws).items]
    assert now[:2] == ["a mug, edited in A, neon style", "a ball, saved by B, neon style"]
    assert now[2:] == [r[2] for r in rows[2:]]
    assert view_if_changed(services, None, key)[0] == (None,)  # another set (none): drawn


_NAMES = st.lists(st.text(alphabet="abcde", min_size=1, max_size=3), max_size=6, unique=True)


@settings(max_examples=200, deadline=None)
@given(names=_NAMES, current=st.text(alphabet="abcde", max_size=3) | st.none(), fallback=st.text(alphabet="abc", max_size=2))
def test_a_refresh_never_sends_back_a_value_that_is_still_a_choice(names, current, fallback):
    """The value a refresh carries is the page's value when it was sent; the user may have picked
    another before the answer arrives (CI run 23: adding photos selected the new set, a refresh sent
    just before put the old one back; CI 2026-12-05: a rename selected the new name, a refresh that
    left with the old one cleared it). So a refresh never sets a value: a gone one (or none, given a
    fallback) comes with a plan the page applies only if it still shows that value."""
    from studio.ui.page_state import REPLACE, pick_update, select_update

    u = pick_update(names, current, fallback)
    assert u["choices"] == names and "value" not in u
    to = fallback if fallback in names else None
    if current in names or (current in (None, "") and to is None):
        assert REPLACE not in u
    else:
        assert u[REPLACE] == {"gone": current, "to": to}
    kept = names[:2]
    assert "value" not in pick_update(names, kept, multiselect=True)
    assert REPLACE not in pick_update(names, kept, multiselect=True)
    gone = pick_update(names[1:], kept, multiselect=True)
    assert "value" not in gone and gone.get(REPLACE, {"drop": []})["drop"] == [n for n in kept if n not in names[1:]]
    if names:  # an action's own result (a set just added) is selected outright
        assert select_update(names, names[-1])["value"] == names[-1]
    assert select_update(names, "zzz")["value"] is None


@pytest.mark.parametrize("sets, first", [((), 20), (("judge_first=0",), 50), (("judge_first=0", "sample_every=0"), None),
                                         (("judge_first=70", "sample_every=50"), 50), (("steps=10",), None)])
def test_the_run_card_names_the_step_of_the_first_preview_round(sets, first):
    from types import SimpleNamespace

    from studio.jobs.types import TrainRequest
    from studio.ui.train import first_preview_step

    snap = SimpleNamespace(request=TrainRequest("a", "b", "tiny-cpu", ("sample_every=50", *sets)))
    assert first_preview_step(snap) == first


def test_every_plot_line_is_in_the_first_value_a_page_draws():
    """Gradio's chart keeps the series of the first value it drew (tests/e2e/test_scorecard.py shows
    it in Chromium): a line that has no point yet is sent as one gap, never left out."""
    from studio.ui import scorecard as ui_scorecard

    first_round = [{"step": 20, "style": 12.0, "leak": float("nan")}]  # the leak meter could not tell yet
    snap = type("Snap", (), dict(scorecard=first_round))()
    data = ui_scorecard.plot(snap)["data"]
    assert data == [[20, 12.0, "style %"], [20, None, "leak %"]]
    snap.scorecard = [{"step": 20, "style": float("nan"), "leak": float("nan")}]
    assert ui_scorecard.plot(snap) is None  # nothing to draw yet: no chart at all


def test_saving_a_caption_without_the_trigger_word_says_what_it_does(tmp_path):
    """A newcomer replaced the auto caption "a photo in sepiashop style" by "a brown vase on a shelf":
    saved without a word (newcomer review, 2026-12-07). That picture now teaches the look without the
    trigger word: the page says so on saving, and stops saying it once every caption has it."""
    from types import SimpleNamespace

    from studio.config import IngestSettings
    from studio.data import manifest as mf
    from studio.data.ingest import ingest
    from studio.models.tiny.sample_data import write_style_set
    from studio.paths import Workspace
    from studio.ui.images import save_captions

    ws = Workspace(tmp_path / "outputs")
    write_style_set(tmp_path / "photos", "neon", 4, seed=1)
    for p in (tmp_path / "photos").glob("*.txt"):
        p.unlink()  # no sidecar captions: each gets the trigger
    ingest("shop", [tmp_path / "photos"], IngestSettings(trigger="SepiaShop"), ws=ws)
    services = SimpleNamespace(ws=ws)
    items = mf.load("shop", ws).items
    rows = [[it.source, it.split, it.caption] for it in items]
    assert all("sepiashop" in it.caption.lower() for it in items)
    assert save_captions(services, "shop", rows) == "No caption changed."  # every caption has it: no note
    rows[0][2] = "a brown vase on a shelf"
    said = save_captions(services, "shop", rows)
    assert said.startswith("Saved 1 caption in **shop**.")
    assert "1 caption of 4 does not contain the trigger word “SepiaShop”" in said and ", SepiaShop style" in said
    rows[0][2] = "a brown vase on a shelf, sepiashop style"  # any case: the prompt's tokenizer lowercases
    assert "Note" not in save_captions(services, "shop", rows)


def test_captions_that_came_without_the_trigger_are_said_at_add_on_train_and_in_the_cli(tmp_path, monkeypatch):
    """Photos with their own .txt captions ("a blue mug, pastel style") added to a set named
    pastel-shop: the trigger word is "pastel-shop", which no caption has (newcomer review,
    2026-12-08: nothing said so until captions were saved)."""
    from types import SimpleNamespace

    from conftest import run_cli
    from studio.models.tiny.sample_data import write_style_set
    from studio.paths import Workspace
    from studio.ui.images import add_files, ingest_summary
    from studio.ui.train import set_caption_note

    ws = Workspace(tmp_path / "outputs")
    services = SimpleNamespace(ws=ws, family="tiny")
    write_style_set(tmp_path / "photos", "pastel", 4, seed=1)
    files = sorted((tmp_path / "photos").iterdir())  # 4 PNGs and their .txt captions
    name, rep = add_files(services, None, "pastel-shop", "", [str(f) for f in files])
    said = ingest_summary(services, rep)
    assert "4 captions of 4 do not contain the trigger word “pastel-shop”" in said, said
    assert "4 captions of 4" in set_caption_note(services, "pastel-shop")
    assert set_caption_note(services, None) == "" and set_caption_note(services, "no-such-set") == ""
    again = add_files(services, "pastel-shop", "", "", [str(files[0]), str(files[1])])[1]  # a duplicate: nothing added
    assert "Note" not in ingest_summary(services, again)
    _, rep = add_files(services, None, "pastel", "", [str(f) for f in files])  # the captions' own word
    assert "Note" not in ingest_summary(services, rep) and set_caption_note(services, "pastel") == ""

    out = run_cli("dataset", "add", "cli-shop", str(tmp_path / "photos"), env={"STUDIO_OUTPUTS": str(ws.root)})
    assert out.returncode == 0 and "note: 4 captions of 4 do not contain the trigger word “cli-shop”" in out.stdout


def test_a_ticked_style_renamed_elsewhere_stays_ticked_and_a_deleted_one_is_said():
    from studio.errors import StudioError
    from studio.ui.generate import adapter_follow

    class Lib:  # renamed: neon -> neon-v2; deleted: pastel
        def current_name(self, name):
            if name == "neon":
                return "neon-v2"
            raise StudioError(f"The adapter this run wrote, {name!r}, is no longer in the library.")

    drawn = [["neon", "neon"], ["pastel", "pastel"], ["spare", ""]]
    picked = {"neon": [True, 0.7, 0.5], "pastel": [True, 1.0, 1.0], "spare": [False, 1.2, 1.0]}
    rows, ticked, said = adapter_follow(Lib(), [["neon-v2", "neon"], ["spare", ""]], drawn, picked)
    # drawn ticked, at its weights; every row carries what the user left (a renamed key is new to the page)
    assert rows == [["neon-v2", "neon", [True, 0.7, 0.5]], ["spare", "", [False, 1.2, 1.0]]]
    assert ticked == {"neon-v2": [True, 0.7, 0.5], "spare": [False, 1.2, 1.0]}
    assert "**neon** was renamed **neon-v2**" in said and "**pastel** was ticked here and is no longer" in said
    skip, same, said = adapter_follow(Lib(), [["neon-v2", "neon"], ["spare", ""]], rows, ticked)  # nothing new
    assert skip == gr.skip() and same == gr.skip() and said == gr.skip()  # (the ticks' own events own the state)
    later = adapter_follow(Lib(), [["neon-v2", "neon"], ["spare", ""], ["new", ""]], rows, ticked)[0]
    assert later[0] == ["neon-v2", "neon", [True, 0.7, 0.5]] and later[2] == ["new", ""]  # a later redraw: still ticked
    untouched = adapter_follow(Lib(), [["a", ""], ["b", ""]], [["a", ""]], {"a": [False, 1.0, 1.0]})
    assert untouched[0] == [["a", "", [False, 1.0, 1.0]], ["b", ""]] and untouched[1:] == (gr.skip(), gr.skip())
