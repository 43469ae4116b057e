"""The files of a judged run taken as untrusted: ``rounds/step-N.safetensors`` and ``scorecard.json``
as someone else may have left them (garbage, links, NaN, another base model, edited, cut short), an
adapter renamed or its workspace moved after training, a training still writing. "Use this
checkpoint" and the scorecard refuse with one clear line and change nothing. No model is loaded."""

import contextlib
import json
import math
import os
import shutil

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kohya_files import sd_scripts_lora
from safetensors.torch import load_file, save_file

from adapter_helpers import add_to_library
from studio import cli
from studio.adapters import busy
from studio.adapters.library import Library
from studio.errors import StudioError
from studio.judge import scorecard
from studio.judge.scorecard import Pick, Row
from studio.judge.grid import checkpoint_grid
from studio.judge.use import use_checkpoint
from studio.paths import Workspace

STEPS = (10, 20)


def _lora(seed, family="tiny"):
    return sd_scripts_lora(family, conv=False, dtype=torch.float32, seed=seed)[0]


@pytest.fixture
def ws(tmp_path):
    """Adapter "shop" with two judged rounds, as a training leaves them (absolute paths: older files)."""
    ws = Workspace(tmp_path / "outputs")
    add_to_library(ws, "shop", _lora(0), "tiny")
    folder = ws.adapters / "shop"
    (folder / "rounds").mkdir()
    rows = []
    for i, step in enumerate(STEPS):
        path = folder / "rounds" / f"step-{step:07d}.safetensors"
        save_file(_lora(i + 1), str(path))
        rows.append(Row(step, 40.0 + 30 * i, 1.5, 5.0, 0.1, False, str(path)))
    scorecard.save(folder, rows, Pick(20, "highest style score (70 %)"))
    return ws


def _adapter_bytes(ws, name="shop"):
    return (ws.adapters / name / f"{name}.safetensors").read_bytes()


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_good_round_becomes_the_adapter_or_a_new_one(ws):
    round10 = load_file(str(ws.adapters / "shop" / "rounds" / "step-0000010.safetensors"))
    assert use_checkpoint("shop", 10, "shop-early", ws) == "shop-early"
    assert _same(Library(ws).read("shop-early")[0], round10)
    assert use_checkpoint("shop", 10, None, ws) == "shop"
    assert _same(Library(ws).read("shop")[0], round10)
    info = json.loads((ws.adapters / "shop" / "adapter.json").read_text())
    assert info["steps"] == 10 and info["chosen"] == "step 10"


def _garbage(path):
    path.write_bytes(b"\x00" * 40)


def _link_elsewhere(path):
    target = path.parent.parent.parent / "elsewhere.safetensors"
    save_file(_lora(9), str(target))
    path.unlink()
    os.symlink(target, path)


def _nan(path):
    sd = load_file(str(path))
    sd[next(k for k in sd if k.endswith("lora_up.weight"))][0, 0] = float("nan")
    save_file(sd, str(path))


def _sd1(path):
    save_file(_lora(3, "sd1"), str(path))


def _foreign_layout(path):
    save_file({"some.weight": torch.zeros(2, 2)}, str(path))


class _Columns:
    """An engine that draws nothing: its grid is the columns it was asked for."""

    @contextlib.contextmanager
    def borrow(self, library):
        yield self

    def grid(self, prompts, sets, s, col_labels):
        return col_labels


@pytest.mark.parametrize("spoil, words", [(_garbage, "header is not valid JSON"),
                                          (_link_elsewhere, r"are missing \(or not a plain file\)"),
                                          (_nan, "NaN or Inf"), (_sd1, "they are for SD 1.x, the adapter is for the tiny model"),
                                          (_foreign_layout, "'some.weight' is not in the studio's kohya layout")])
@pytest.mark.parametrize("use", [None, "shop-copy", "compare"])
def test_a_spoilt_round_is_refused_and_nothing_changes(ws, spoil, words, use):
    """Used as the adapter, as a new one, or compared (Compare checkpoints): one gate, one message."""
    spoil(ws.adapters / "shop" / "rounds" / "step-0000020.safetensors")
    before = _adapter_bytes(ws)
    if use == "compare" and spoil is _link_elsewhere:  # a round whose file is gone is left out
        assert "step 20" not in checkpoint_grid(_Columns(), "shop", ws=ws)
    else:
        with pytest.raises(StudioError, match=f"^The weights of step 20 .*{words}") as e:
            if use == "compare":
                checkpoint_grid(_Columns(), "shop", ws=ws)  # refused before anything is drawn
            else:
                use_checkpoint("shop", 20, use, ws)
        assert "studio import" not in str(e.value)  # (a library entry's advice, not a round's)
    assert _adapter_bytes(ws) == before and Library(ws).names() == ["shop"]


def test_rounds_are_found_after_a_rename_and_after_the_workspace_moved(ws, tmp_path):
    Library(ws).rename("shop", "shop2")
    round20 = load_file(str(ws.adapters / "shop2" / "rounds" / "step-0000020.safetensors"))
    assert not (ws.adapters / "shop").exists()  # the scorecard's stored paths point there
    use_checkpoint("shop2", 20, "renamed-use", ws)
    assert _same(Library(ws).read("renamed-use")[0], round20)
    moved = Workspace(tmp_path / "moved")
    shutil.copytree(ws.root, moved.root)
    save_file(_lora(7), str(ws.adapters / "shop2" / "rounds" / "step-0000020.safetensors"))  # the old place changes
    use_checkpoint("shop2", 20, "moved-use", moved)
    assert _same(Library(moved).read("moved-use")[0], round20)


def test_nothing_is_used_while_a_training_holds_the_adapter(ws):
    before = _adapter_bytes(ws)
    with busy.training(ws.adapters / "shop"):
        with pytest.raises(StudioError, match="in use right now .*the checkpoint was not used"):
            use_checkpoint("shop", 20, None, ws)
        with pytest.raises(StudioError, match="a second training of it was not started"):
            with busy.training(ws.adapters / "shop"):
                pass
    assert _adapter_bytes(ws) == before
    use_checkpoint("shop", 20, None, ws)  # released with the training


DAMAGED = [b"{", b"[]", b'{"rows": 5}', b'{"rows": [{"step": "10"}]}', b'{"rows": [{"step": 10, "style": true}]}',
           b'{"rows": [{"step": 10}, {"step": 10}]}', b'{"recommended": {"reason": "x"}}', b"\xff\xfe",
           b"[" * 100_000, b'{"rows": [{"step": 10, "adapter": 3}]}']


@pytest.mark.parametrize("content", DAMAGED, ids=range(len(DAMAGED)))
def test_a_damaged_scorecard_is_one_clear_error(ws, content):
    (ws.adapters / "shop" / scorecard.FILE).write_bytes(content)
    with pytest.raises(StudioError, match="scorecard of this adapter .* is damaged"):
        scorecard.load(ws.adapters / "shop")
    with pytest.raises(StudioError, match="is damaged"):
        use_checkpoint("shop", 20, None, ws)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=3), max_leaves=8),
       key=st.sampled_from(["rows", "recommended", "prompts", "step", "style", "copy", "leak", "val_loss",
                            "copying", "adapter", "reason"]))
def test_any_edit_of_a_scorecard_reads_or_is_refused_cleanly(ws, value, key):
    folder = ws.adapters / "shop"
    scorecard.save(folder, [Row(10, 40.0, 1.5, 5.0, 0.1, False, "rounds/step-0000010.safetensors")], Pick(10, "x"))
    data = json.loads((folder / scorecard.FILE).read_text())
    if key in ("rows", "recommended", "prompts"):
        data[key] = value
    elif key == "reason":
        data["recommended"][key] = value
    else:
        data["rows"][0][key] = value
    (folder / scorecard.FILE).write_text(json.dumps(data))
    try:
        rows, pick = scorecard.load(folder)
    except StudioError as e:
        assert "is damaged" in str(e)
        return
    scorecard.table(rows, pick)
    scorecard.prompts_of(folder)
    assert all(isinstance(r.step, int) and isinstance(r.style, float) for r in rows)


def test_the_scorecard_is_strict_json_and_its_reason_reaches_a_terminal_escaped(ws):
    folder = ws.adapters / "shop"
    scorecard.save(folder, [Row(10, math.nan, math.nan, math.nan, None, False, "")],
                   Pick(10, "fine\x1b[2J\x1b]0;owned\x07 really"))
    text = (folder / scorecard.FILE).read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in the file"))
    rows, pick = scorecard.load(folder)
    assert math.isnan(rows[0].style) and "\x1b" not in scorecard.table(rows, pick) and "\\x1b" in pick.reason


def test_judge_cli_refuses_odd_flag_combinations_and_damage_in_one_line(ws, monkeypatch, capsys):
    monkeypatch.chdir(ws.root.parent)  # (the default workspace: ./outputs)
    for argv, words in [(["judge", "shop", "--as", "x"], "--as NEW goes with --use"),
                        (["judge", "shop", "--use", "20", "--as", ""], "empty adapter name is not allowed"),
                        (["judge", "shop", "--use", "20", "--dataset", "neon"], "do different things")]:
        assert cli.main(argv) == 2, argv
        assert words in capsys.readouterr().err, argv
    (ws.adapters / "shop" / scorecard.FILE).write_text('{"rows": [{"step": []}]}')
    for argv in (["judge", "shop"], ["judge", "shop", "--use", "20"], ["judge", "shop", "--use", "20", "--as", "n"]):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "is damaged" in err and "Traceback" not in err, argv


class _Prompts(_Columns):
    def grid(self, prompts, sets, s, col_labels):
        return list(prompts)


def test_compare_draws_each_caption_once_when_the_set_repeats_its_captions(ws):
    """A set whose captions are all the trigger ("a photo in shopstyle style", as auto-captions are) is
    judged on that caption several times at other seeds; at Compare's one seed those are one row, drawn
    once, beside the trigger-free one (newcomer review, 2026-12-07: four identical rows)."""
    folder = ws.adapters / "shop"
    rows, pick = scorecard.load(folder)
    scorecard.save(folder, rows, pick, ["a photo in shopstyle style"] * 6 + ["a photo"])
    assert checkpoint_grid(_Prompts(), "shop", ws=ws) == ["a photo in shopstyle style", "a photo"]


def test_the_library_details_say_what_the_meter_found_for_the_adapters_own_weights(ws):
    """A newcomer's finished adapter had not learned the style; only the Train tab said so, the Library
    did not (newcomer review, 2026-12-07). Its details now give the meter's score of the written weights."""
    from studio.ui.library import _details

    lib = Library(ws)
    info = json.loads((ws.adapters / "shop" / "adapter.json").read_text())
    for steps, said in ((10, "40 % at step 10 — not learned yet (learned from 50 %)"), (20, "70 % at step 20 — learned"),
                        (None, "70 % at step 20 — learned"),  # no steps recorded: the marked checkpoint's
                        (15, "not judged (`studio judge NAME --dataset SET` judges it)")):  # not a judged step
        (ws.adapters / "shop" / "adapter.json").write_text(json.dumps({**info, "steps": steps}))
        rows = dict(_details(lib, "shop")[1])
        assert rows["Style meter (how far it moved toward its set's look)"] == said
    (ws.adapters / "shop" / "scorecard.json").unlink()
    assert dict(_details(lib, "shop")[1])["Style meter (how far it moved toward its set's look)"].startswith("not judged")
    (ws.adapters / "shop" / "scorecard.json").write_bytes(b'{"rows": 5}')
    assert "is damaged" in dict(_details(lib, "shop")[1])["Style meter (how far it moved toward its set's look)"]
