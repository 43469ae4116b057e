"""The style meter on real (short) trainings of the tiny model: it rises on a run that learns,
the run stops once learned, final=recommended writes the marked checkpoint, the preview is a
before|after pair, the leak meter tells a trigger-bound adapter from a restyle-everything one,
and `studio judge` prints the scorecard. (Copy on a memorising run: benchmarks/style_meter.py.)"""

import json

import pytest
from conftest import run_cli
from PIL import Image
from safetensors.torch import load_file

from studio import events as ev
from studio.config import IngestSettings, TrainSettings
from studio.data.ingest import ingest
from studio.judge import scorecard
from studio.models.loading import load_model
from studio.models.tiny.sample_data import write_style_set
from studio.overlay import apply_sets
from studio.paths import Workspace
from studio.train.loop import Trainer

STEPS = 80
RUN = ["batch_size=2", "optimizer=adamw", "lr_unet=2e-3", "lr_text=1e-3", "lora.rank=4", "lora.alpha=4",
       f"steps={STEPS}", "sample_every=10", "judge_first=5", "sample_steps=6", "judge_prompts=3", "judge_free=2",
       "validate_every=10", "checkpoint_every=0", "plateau_rounds=2"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("judge")
    write_style_set(root / "neon", "neon", 8)
    ws = Workspace(root / "outputs")
    ingest("neon", [root / "neon"], ws=ws)
    return root, ws


def _train(ws, name, sets):
    sink = ev.ListSink()
    s = apply_sets(TrainSettings(), RUN + sets)
    result = Trainer(name, "neon", load_model("tiny", device="cpu"), s, sink, ws=ws).run()
    return result, sink


@pytest.fixture(scope="module")
def learned(world):
    return _train(world[1], "learned", ["stop=learned", "final=recommended"])


@pytest.mark.slow
def test_meter_starts_near_zero_rises_and_stops_the_run_once_learned(learned):
    result, sink = learned
    rows = sink.of(ev.Judged)
    assert rows[0].step == 5, "the first round comes early (judge_first)"
    assert rows[0].style < 50 <= max(r.style for r in rows), [(r.step, r.style) for r in rows]
    assert max(r.style for r in rows) > rows[0].style + 25
    assert result.steps < STEPS, "stop=learned ran every step"
    assert not result.stopped_early  # a learned style is a finished run, not a stopped one
    assert any("stop=learned" in w.message for w in sink.of(ev.Warning_))
    assert not any(r.copying for r in rows), "the copy meter fired on a normal run"


@pytest.mark.slow
def test_final_recommended_writes_the_marked_checkpoint_and_a_before_after_preview(learned):
    result, sink = learned
    folder = result.adapter.parent
    rows, pick = scorecard.load(folder)
    final = sink.of(ev.Recommended)[-1].step if sink.of(ev.Recommended) else sink.of(ev.Judged)[-1].recommended
    assert result.chosen == "recommended" and pick.step == final
    marked = load_file(str(folder / "rounds" / f"step-{pick.step:07d}.safetensors"))
    written = load_file(str(result.adapter))
    assert marked.keys() == written.keys() and all((marked[k] == written[k]).all() for k in marked)
    if pick.step != result.steps:  # and not the last weights
        last = load_file(str(folder / "rounds" / f"step-{result.steps:07d}.safetensors"))
        assert any((last[k] != written[k]).any() for k in last)
    info = json.loads((folder / "adapter.json").read_text())
    assert info["recommended"]["step"] == pick.step == info["steps"] and info["trained_steps"] == result.steps
    with Image.open(folder / "preview.png") as im:
        assert im.size == (2 * 64 + 2, 64)  # the base model's image | the adapter's
    samples = sink.of(ev.Sample)[0]
    assert len(samples.paths) == 3 + 2 and "neon" in samples.prompts[0] and "neon" not in samples.prompts[-1]


@pytest.mark.slow
def test_close_calls_are_judged_again_on_more_captions_and_the_highest_is_written(world):
    # every round is a close call here (plateau_delta=100): the 2 highest are judged again
    result, sink = _train(world[1], "second-look", ["steps=40", "final=recommended", "plateau_delta=100",
                                                    "judge_confirm=5"])
    folder = result.adapter.parent
    rows, pick = scorecard.load(folder)
    assert max(r.style for r in rows) >= scorecard.MIN_LEARNED, [(r.step, r.style) for r in rows]
    (second,) = sink.of(ev.Recommended)
    scores = dict(second.scores)
    assert sorted(scores) == sorted(r.step for r in sorted(rows, key=lambda r: -r.style)[:2])
    assert second.step == pick.step == max(sorted(scores), key=lambda k: scores[k])
    assert "second look with 5 captions" in pick.reason
    assert json.loads((folder / scorecard.FILE).read_text())["second_look"] == {str(k): v for k, v in scores.items()}
    assert json.loads((folder / "adapter.json").read_text())["recommended"]["step"] == pick.step
    marked = load_file(str(folder / "rounds" / f"step-{pick.step:07d}.safetensors"))
    written = load_file(str(result.adapter))
    assert all((marked[k] == written[k]).all() for k in marked)
    # the second look reuses the rounds' images of their 3 captions and draws only the other 2: the
    # same checkpoints judged from scratch (library adapters, every caption drawn) read the same
    from studio.adapters.library import Library
    from studio.config import GenerateSettings
    from studio.generate import Engine
    from studio.judge.adapter import judge_adapter
    from studio.judge.use import use_checkpoint

    engine = Engine(load_model("tiny", device="cpu"), library=Library(world[1]))
    gs = GenerateSettings(seed=TrainSettings().sample_seed, steps=6)
    for step, score in scores.items():
        use_checkpoint("second-look", step, f"second-look-{step}", ws=world[1])
        fresh = judge_adapter(engine, f"second-look-{step}", "neon", gs, 5, 0, ws=world[1]).style
        assert abs(fresh - score) < 0.05, (step, score, fresh)  # equal to the digit here


@pytest.mark.slow
def test_leak_meter_tells_a_trigger_bound_adapter_from_one_that_restyles_everything(world):
    """Two real trainings judged alike (``studio judge NAME --dataset mixed``: its captions, each also
    without "neon"). Trained beside plain photos of the same products captioned without the trigger
    (prior preservation), the adapter leaves trigger-free prompts near the base model; trained on
    the neon photos captioned without any trigger word, it restyles them."""
    from studio.adapters.library import Library
    from studio.config import GenerateSettings
    from studio.generate import Engine
    from studio.judge.adapter import judge_adapter
    from studio.models.tiny.sample_data import write_plain_photos

    root, ws = world
    write_style_set(root / "mixed", "neon", 8)
    write_plain_photos(root / "mixed", 8)
    write_style_set(root / "everywhere", "neon", 8, trigger=False)
    plain = ["batch_size=8", "optimizer=adamw", "lr_unet=1e-3", "lr_text=1e-3", "lora.rank=4", "lora.alpha=4",
             "steps=80", "sample_every=0", "validate_every=0", "checkpoint_every=0", "stop=steps", "final=last"]
    for name in ("mixed", "everywhere"):
        ingest(name, [root / name], IngestSettings(trigger="neon"), ws=ws)
        Trainer(f"{name}-lora", name, load_model("tiny", device="cpu"), apply_sets(TrainSettings(), plain),
                ev.ListSink(), ws=ws).run()
    engine = Engine(load_model("tiny", device="cpu"), library=Library(ws))
    gs = GenerateSettings(seed=5, steps=6)
    bound, everything = (judge_adapter(engine, f"{n}-lora", "mixed", gs, 6, 6, ws=ws) for n in ("mixed", "everywhere"))
    assert bound.style > 20 and everything.style > 50, (bound, everything)  # both moved toward the style
    assert everything.leak > bound.leak + 25, (bound, everything)
    assert bound.leak < bound.style / 4, (bound, everything)  # "almost alone", were its style past 50 %
    assert "restyles images even without the trigger word" in scorecard.leak_words(everything.style, everything.leak)


@pytest.mark.slow
def test_leak_meter_reads_zero_when_only_the_trigger_restyles_and_most_of_the_style_when_every_prompt_does(
        world, learned):
    """The meter half of the leak goal, on one real trained adapter drawn three ways: only where the
    prompt names the trigger (perfectly bound: trigger-free images stay the base model's), as it
    is (on every prompt), and as if every prompt named the trigger (the style everywhere)."""
    from studio.adapters.library import Library
    from studio.config import GenerateSettings
    from studio.data import manifest as mf
    from studio.generate import Engine
    from studio.generate.tags import LoraWeight
    from studio.judge.session import from_dataset

    _, ws = world
    engine = Engine(load_model("tiny", device="cpu"), library=Library(ws))
    gs = GenerateSettings(seed=5, steps=6)
    judge = from_dataset(engine.model.pipe.vae, mf.load("neon", ws), mf.dataset_dir("neon", ws), 64, 3, 2, 5, 0.5)

    def drawer(loras):
        return lambda prompts, seeds: engine.generate_batch(gs, prompts, seeds, loras=loras)

    base, styled = drawer([]), drawer([LoraWeight("learned")])
    n, free = len(judge.prompts.styled), len(judge.prompts.free)
    judge.set_before(judge.draw(base))
    as_is = judge.row(1, judge.draw(styled))
    bound = judge.row(1, judge.draw(lambda p, s: styled(p[:n], s[:n]) + base(p[n:], s[n:])))
    everywhere = judge.row(1, judge.draw(lambda p, s: styled(p[:n] + p[:free], s)))  # free slots: with the trigger
    assert bound.style == as_is.style == everywhere.style  # the same images where the prompt asks for the style
    assert abs(bound.leak) < 3, bound
    assert everywhere.leak > everywhere.style / 2 and everywhere.leak > bound.leak + 25, (bound, everywhere)
    assert bound.leak < as_is.leak < everywhere.leak, (bound, as_is, everywhere)


@pytest.mark.slow
def test_studio_judge_prints_the_scorecard_and_uses_a_checkpoint(world, learned):
    root, ws = world
    result, sink = learned
    env = {"STUDIO_OUTPUTS": str(ws.root)}
    out = run_cli("judge", "learned", env=env)
    assert out.returncode == 0, out.stderr
    rows = sink.of(ev.Judged)
    _, pick = scorecard.load(result.adapter.parent)  # (after a second look, if there were close calls)
    assert "<- recommended" in out.stdout and f"recommended: step {pick.step}" in out.stdout
    first = rows[0].step
    out = run_cli("judge", "learned", "--use", str(first), "--as", "learned-early", env=env)
    assert out.returncode == 0, out.stderr
    early = load_file(str(ws.adapters / "learned-early" / "learned-early.safetensors"))
    marked = load_file(str(ws.adapters / "learned" / "rounds" / f"step-{first:07d}.safetensors"))
    assert all((early[k] == marked[k]).all() for k in marked)
    bad = run_cli("judge", "learned", "--use", "7", env=env)
    assert bad.returncode != 0 and "no judged checkpoint at step 7" in bad.stderr + bad.stdout
    grid = run_cli("grid", "--checkpoints", "learned", "--steps", "2", "--out", str(root / "ckpt.png"), env=env)
    assert grid.returncode == 0, grid.stderr
    assert "base model, step 5" in grid.stdout  # the base first, then the checkpoints
    with Image.open(root / "ckpt.png") as im:
        assert im.width > (1 + min(len(rows), 8)) * 256  # base + the judged checkpoints (<= 8), 256-px cells
