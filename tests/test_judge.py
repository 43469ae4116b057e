"""The style meter (studio.judge): prompts, meters and the scorecard rule on known inputs, and
the base model's own images judged at exactly 0 %."""

import math

import numpy as np
import pytest
from PIL import Image

from studio.judge import meters, scorecard
from studio.judge.prompts import judge_prompts, without_trigger
from studio.judge.scorecard import Row


def test_trigger_is_removed_in_plain_words():
    assert without_trigger("a red mug, neon style", "neon") == "a red mug"
    assert without_trigger("a photo in sepia style", "sepia") == "a photo"
    assert without_trigger("sepia, a bottle", "sepia") == "a bottle"
    assert without_trigger("a neonish lamp", "neon") == "a neonish lamp"  # whole words only
    assert without_trigger("neon style", "neon") == "a photo"


def test_judge_prompts_take_held_out_captions_first_and_cycle():
    p = judge_prompts(["held a, x style"], ["t1, x style", "t2, x style", "held a, x style"], "x", 5, 2, 100)
    assert p.styled == ("held a, x style", "t1, x style", "t2, x style", "held a, x style", "t1, x style")
    assert p.free == ("held a", "t1")
    assert p.seeds == (100, 101, 102, 103, 104)


def _groups(rng, n, centre, spread=1.0):
    return {"a": centre + spread * rng.normal(size=(n, 6)), "b": 10 * centre + 10 * spread * rng.normal(size=(n, 4))}


def _ref(rng, held=True):
    train = _groups(rng, 12, 5.0)
    held_out = _groups(rng, 4, 5.0) if held else None
    content = rng.uniform(size=(12, 30))
    return meters.Reference(train, held_out, content, rng.uniform(size=(4, 30)) if held else None)


@pytest.mark.parametrize("held", [True, False])
def test_style_meter_is_zero_for_the_base_and_near_100_at_the_held_out_level(held):
    rng = np.random.default_rng(0)
    ref = _ref(rng, held)
    base = _groups(rng, 4, 0.0)
    assert meters.style_percent(ref, base, base) == 0.0
    styled = _groups(np.random.default_rng(1), 400, 5.0)  # many images of the set's style
    assert 80 <= meters.style_percent(ref, _groups(rng, 400, 0.0), styled) <= 120
    halfway = _groups(rng, 400, 2.5)
    assert 20 < meters.style_percent(ref, _groups(rng, 400, 0.0), halfway) < 80


def test_copy_meter_low_for_copies_and_near_one_for_new_images_of_the_set():
    rng = np.random.default_rng(2)
    ref = _ref(rng)
    copies = ref.train_content[:4] + 0.001
    assert meters.copy_ratio(ref, copies) < 0.05
    assert 0.6 < meters.copy_ratio(ref, rng.uniform(size=(8, 30))) < 1.6


def test_leak_measures_how_far_trigger_free_images_move():
    rng = np.random.default_rng(3)
    ref = _ref(rng)
    base, moved = _groups(rng, 40, 0.0), _groups(rng, 40, 5.0)
    assert meters.leak_percent(ref, base, base, base) == 0.0  # bound to the trigger
    everything = meters.leak_percent(ref, base, base, moved)  # restyles trigger-free prompts all the way
    assert 60 < everything < 160
    assert 0 < meters.leak_percent(ref, base, base, _groups(rng, 40, 0.5)) < everything / 3
    churned = _groups(np.random.default_rng(4), 40, 0.0)  # every image changed, none toward the style
    assert abs(meters.leak_percent(ref, base, base, churned)) < 5


def _row(step, style, copying=False):
    return Row(step, style, 0.2 if copying else 1.0, 10.0, None, copying)


def test_recommendation_is_the_earliest_checkpoint_near_the_best_and_never_a_copying_one():
    rows = [_row(50, 40), _row(100, 83), _row(150, 87), _row(200, 95, copying=True)]
    pick = scorecard.recommend(rows, delta=5)
    assert pick.step == 100 and "within 5 points" in pick.reason and "copies" in pick.reason
    assert scorecard.recommend([_row(50, 20), _row(100, 30)], 5).reason.startswith("highest style score (30 %), but")
    assert scorecard.recommend([_row(50, 90, True)], 5).step == 50
    assert scorecard.recommend([], 5) is None


def test_close_calls_are_the_clean_kept_checkpoints_near_a_learned_best():
    def kept(step, style, copying=False):
        return Row(step, style, 1.0, 0.0, None, copying, f"/r/{step}.safetensors")

    rows = [kept(20, 71), kept(50, 60), kept(100, 74), kept(150, 73), kept(200, 90, copying=True),
            Row(250, 72, 1.0, 0.0, None, False, "")]  # not kept: cannot become the adapter
    pick = scorecard.recommend(rows, 5)
    assert [r.step for r in scorecard.close_calls(rows, pick, 5, limit=3)] == [20, 100, 150]
    assert [r.step for r in scorecard.close_calls(rows, pick, 5)] == [100, 150]  # the two highest
    assert scorecard.close_calls([kept(20, 30), kept(50, 32)], pick, 5) == []  # not learned: nothing to doubt
    assert scorecard.close_calls([kept(20, 60), kept(50, 80)], pick, 5) == []  # one clear best
    assert scorecard.close_calls(rows, None, 5) == []


def test_the_second_look_picks_its_highest_score_and_says_so():
    rows = [_row(20, 71), _row(100, 74), _row(150, 73), _row(200, 90, copying=True)]
    pick = scorecard.confirmed(rows, {20: 58.0, 100: 77.0, 150: 77.0}, 8, 5)
    assert pick.step == 100  # a tie goes to the fewer steps
    assert "77 % on a second look with 8 captions" in pick.reason and "step 20: 58 %" in pick.reason
    assert "from step 200 the adapter copies" in pick.reason


def test_plateau_needs_a_learned_style_and_k_rounds_without_gain():
    assert scorecard.plateaued([_row(1, 60), _row(2, 62), _row(3, 63)], rounds=2, delta=5)
    assert not scorecard.plateaued([_row(1, 60), _row(2, 62), _row(3, 70)], rounds=2, delta=5)
    assert not scorecard.plateaued([_row(1, 10), _row(2, 11), _row(3, 11)], rounds=2, delta=5)  # never learned
    assert not scorecard.plateaued([_row(1, 60), _row(2, 62)], rounds=2, delta=5)  # too few rounds


def test_scorecard_round_trips_and_prints_the_pick(tmp_path):
    rows = [_row(10, 55.5), Row(20, 70.0, math.nan, 3.0, 0.12, False, "/x.safetensors")]
    pick = scorecard.recommend(rows, 5)
    scorecard.save(tmp_path, rows, pick)
    back, back_pick = scorecard.load(tmp_path)
    assert back_pick == pick and back[0] == rows[0] and back[1].step == 20 and math.isnan(back[1].copy)
    text = scorecard.table(back, back_pick)
    assert "<- recommended" in text.splitlines()[2] and "recommended: step 20" in text
    assert text.splitlines()[-1].startswith("Without the trigger word it leaves images almost alone (leak 3 %)")


@pytest.mark.parametrize("style, leak, words", [
    (70.0, 5.0, "leaves images almost alone (leak 5 %)"), (70.0, -11.0, "almost alone (leak 0 %)"),
    (70.0, 25.0, "part of the way"), (70.0, 40.0, "even without"),
    (70.0, 90.0, "even without"), (30.0, 30.0, ""), (math.nan, 10.0, ""), (70.0, math.nan, "")])
def test_leak_verdict_in_plain_words_only_once_the_style_is_learned(style, leak, words):
    said = scorecard.leak_words(style, leak)
    assert (words in said and said) if words else said == ""


def test_the_train_tab_verdict_names_the_leak_of_the_recommended_checkpoint():
    from types import SimpleNamespace

    from studio.ui.scorecard import verdict

    rows = [{"step": 10, "style": 40.0, "leak": 5.0}, {"step": 20, "style": 74.0, "leak": 56.0}]
    snap = SimpleNamespace(scorecard=rows, recommended=(20, "highest style score (74 %)"))
    said = verdict(snap)
    assert said.startswith("**Recommended: step 20** — highest style score (74 %).")
    assert "even without the trigger word (leak 56 % against style 74 %)" in said
    nulls = SimpleNamespace(scorecard=[{"step": 5, "style": None, "leak": None}], recommended=(5, "the last"))
    assert verdict(nulls) == "**Recommended: step 5** — the last."  # NaN travels as null: no words, no error


def test_a_pick_below_the_learned_line_is_called_best_so_far_not_recommended():
    """A newcomer read "★ recommended" on a 41 % checkpoint as "this one is good": until the style is
    learned (50 %), the page, its table and the CLI call the marked checkpoint "best so far"."""
    from types import SimpleNamespace

    from studio.ui.scorecard import table, verdict

    rows = [{"step": 50, "style": 20.0, "copy": 3.3, "leak": 10.0, "val_loss": None, "copying": False},
            {"step": 100, "style": 41.0, "copy": 6.0, "leak": 56.0, "val_loss": None, "copying": False}]
    pick = scorecard.recommend([scorecard.Row(r["step"], r["style"], r["copy"], r["leak"], None, False) for r in rows], 5)
    snap = SimpleNamespace(scorecard=rows, recommended=(pick.step, pick.reason))
    assert verdict(snap).startswith("**Best so far: step 100** — highest style score (41 %), but the style is not learned")
    assert [r[-1] for r in table(snap)] == ["", "★ best so far"]
    cli = scorecard.table([scorecard.Row(r["step"], r["style"], r["copy"], r["leak"], None, False) for r in rows], pick)
    assert "<- best so far" in cli and "best so far: step 100" in cli and "recommended" not in cli
    learned = SimpleNamespace(scorecard=[{**rows[1], "style": 60.0}], recommended=(100, "highest style score (60 %)"))
    assert verdict(learned).startswith("**Recommended: step 100**") and table(learned)[0][-1] == "★ recommended"


def test_base_images_judge_at_zero_percent_with_the_models_vae(tiny_model):
    from studio.judge.prompts import JudgePrompts
    from studio.judge.session import Drawn, Judge
    from studio.models.tiny.scenes import style_set

    images = [im for im, _ in style_set("neon", 6)]
    judge = Judge(tiny_model.pipe.vae, JudgePrompts(("a",), ("b",), (0,)), images[:4], images[4:], 0.5)
    base = Drawn([Image.new("RGB", (64, 64), (240, 240, 240))], [Image.new("RGB", (64, 64), (200, 100, 50))])
    judge.set_before(base)
    row = judge.row(0, base)
    assert row.style == 0.0 and row.leak == 0.0 and not row.copying
    styled = judge.row(1, Drawn([images[4]], [Image.new("RGB", (64, 64), (200, 100, 50))]))
    assert styled.style > 50 and styled.leak == 0.0  # a held-out image of the set is near 100 %
    leaky = judge.row(1, Drawn([images[4]], [images[5]]))
    assert leaky.leak > 30  # the trigger-free image changed into the style too
    assert judge.row(2, Drawn([images[0]], base.free)).copying  # a training photo itself
    unmeasured = Judge(tiny_model.pipe.vae, JudgePrompts(("a",), (), (0,)), images[:4], images[4:], 0.5)
    unmeasured.set_before(Drawn(base.styled, []))  # judge_free=0: no trigger-free image drawn
    row = unmeasured.row(1, Drawn([images[4]], []))
    assert math.isnan(row.leak) and scorecard.leak_words(row.style, row.leak) == ""  # "-", not "0 %: almost alone"


def test_a_style_the_base_model_already_draws_is_cannot_tell_not_a_wild_percentage():
    """Base images as close to the set's statistics as its held-out photos: style % and leak % are
    NaN (shown as "-"), the pick is the last checkpoint with the reason, the run never plateaus."""
    rng = np.random.default_rng(5)
    ref = _ref(rng)
    base = _groups(rng, 6, 5.0)  # drawn from the set's own distribution
    nudged = _groups(rng, 6, 5.3)
    assert math.isnan(meters.style_percent(ref, base, nudged))
    assert math.isnan(meters.leak_percent(ref, base, base, nudged))
    assert math.isfinite(meters.style_percent(ref, _groups(rng, 6, 0.0), nudged))  # a base far away: measured
    rows = [Row(s, math.nan, 1.2, math.nan, None, False) for s in (20, 50, 100)]
    pick = scorecard.recommend(rows, 5)
    assert pick.step == 100 and "cannot tell" in pick.reason and "the last checkpoint —" in pick.reason
    copied = rows + [Row(150, math.nan, 0.3, math.nan, None, True)]  # the last one copies: not "the last"
    assert "the last checkpoint that does not copy" in scorecard.recommend(copied, 5).reason
    assert not scorecard.plateaued(rows, rounds=2, delta=5)
    line = scorecard.table(rows, pick).splitlines()[1].split()
    assert line[:4] == ["20", "-", "1.20", "-"], line


def test_in_a_mixed_set_only_the_trigger_captioned_photos_are_the_style(tmp_path):
    """Prior preservation: plain photos captioned without the trigger sit beside the styled ones;
    the meter's reference and judged prompts are the trigger-captioned ones."""
    from studio.config import IngestSettings
    from studio.data import manifest as mf
    from studio.data.ingest import ingest
    from studio.judge.session import names_trigger
    from studio.models.tiny.sample_data import write_style_set
    from studio.paths import Workspace

    ws = Workspace(tmp_path / "outputs")
    import random

    from studio.models.tiny.scenes import BACKGROUNDS, COLOURS, OBJECTS, Scene, render_scene

    write_style_set(tmp_path / "photos", "neon", 6)
    rng = random.Random(1)
    for i in range(6):  # ordinary product photos, captioned without the trigger
        scene = Scene(OBJECTS[i % len(OBJECTS)], list(COLOURS)[(3 * i) % 8], list(BACKGROUNDS)[i % 4])
        render_scene(scene, rng).save(tmp_path / "photos" / f"plain_{i}.png")
        (tmp_path / "photos" / f"plain_{i}.txt").write_text(scene.caption + "\n")
    ingest("mixed", [tmp_path / "photos"], IngestSettings(trigger="neon"), ws=ws)
    m = mf.load("mixed", ws)
    assert {names_trigger(i.caption, "neon") for i in m.items} == {True, False}
    seen = {}

    class Capture:  # stands in for Judge: records what from_dataset hands it
        def __init__(self, vae, prompts, train, held_out, threshold):
            seen.update(prompts=prompts, n=len(train) + len(held_out))

    import studio.judge.session as session
    orig, session.Judge = session.Judge, Capture
    try:
        session.from_dataset(None, m, mf.dataset_dir("mixed", ws), 64, 4, 1, 7, 0.5)
    finally:
        session.Judge = orig
    assert seen["n"] == 6 and all("neon" in p for p in seen["prompts"].styled), seen


@pytest.mark.parametrize("size", [(64, 64), (65, 40), (512, 768)])
def test_the_adapters_image_comes_back_out_of_a_saved_before_after_pair_unchanged(tmp_path, size):
    """The second look reads the rounds' images back from their previews instead of drawing them again."""
    from studio.judge.session import after_half, pair

    rng = np.random.default_rng(sum(size))
    before, after = (Image.fromarray(rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)) for _ in range(2))
    pair(before, after).save(tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as im:
        back = after_half(im)
    assert back.size == after.size and np.array_equal(np.asarray(back), np.asarray(after))


def test_a_larger_judge_shares_the_rounds_captions_and_seeds_as_its_first_ones():
    held, train = ["a red mug, neon"], ["a blue box, neon", "a lamp, neon", "a vase, neon"]
    small, big = (judge_prompts(held, train, "neon", n, f, 1234) for n, f in ((3, 1), (8, 0)))
    assert big.styled[:3] == small.styled and big.seeds[:3] == small.seeds


def test_a_finished_run_says_whether_the_meter_found_the_style_learned(tmp_path):
    """Next to "Finished": the meter's verdict on the weights the run wrote (adapter.json "steps"), so
    a run that did not learn the style is not taken for one that did (newcomer review, 2026-12-07);
    the same row the Library's details give. Nothing when those weights were not judged."""
    import json
    from types import SimpleNamespace

    from studio.ui.train_view import status_sentence

    folder = tmp_path / "shop"
    folder.mkdir()
    rows = [scorecard.Row(10, -31.0, 3.0, 1.0, None, False), scorecard.Row(20, 72.0, 2.0, 5.0, None, False),
            scorecard.Row(30, 41.0, 0.5, 5.0, None, True)]
    scorecard.save(folder, rows, scorecard.Pick(20, "highest style score (72 %)"))
    run = SimpleNamespace(adapter="shop", status="finished", adapter_path=str(folder / "shop.safetensors"))
    plain = "Finished. <b>shop</b> is in the Library and the Generate tab."

    def written(steps):
        (folder / "adapter.json").write_text(json.dumps({"steps": steps}))
        return status_sentence(run)

    assert written(20) == plain + " The style meter says the style is learned (72 % at step 20)."
    # final=last wrote step 30: the best round (72 %) is not what was written
    assert "<b>not learned yet</b> (41 % at step 30, learned from 50 %)" in written(30) and "copies" in written(30)
    assert written(25) == plain  # weights between rounds (final=best at a validation step): not judged
    assert written(None).endswith("(72 % at step 20).")  # no step recorded: the marked checkpoint's
    (folder / "scorecard.json").write_text("{")
    assert written(20) == plain  # a damaged scorecard: the Library says why, this line says nothing


def test_a_trigger_word_is_found_as_a_word_of_its_own_in_any_case():
    """One rule for "does this text ask for the style" (caption notes, Generate's missing-trigger note)."""
    from studio.judge.prompts import mentions
    from studio.ui.generate import trigger_warnings

    assert mentions("a mug, SepiaShop style", "sepiashop") and mentions("neon-v2, a lamp", "neon-v2")
    assert not mentions("a sepiashopper's mug", "sepiashop") and not mentions("xneon-v2", "neon-v2")
    assert not mentions("anything", "") and not mentions(None, "neon")
    assert trigger_warnings("a lamp, neon", [("neon", 1.0, 1.0)], {"neon": "neon"}) == []
    assert "lacks neon's trigger word" in trigger_warnings("a lamp", [("neon", 1.0, 1.0)], {"neon": "neon"})[0]
