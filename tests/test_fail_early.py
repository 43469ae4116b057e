"""Fail before the work, not after it (issue 11, item 6).

Every setting that can be checked against the model family, the dataset and the device is
refused before the model loads: through the CLI, exit code 2, a message that names the
setting, no adapter folder, and no trace of model loading in the verbose log. A failure
after step 1 keeps the last good checkpoint and says how to resume.
"""

import pytest
from conftest import run_cli

from studio import events as ev
from studio.config import TrainSettings
from studio.data import manifest as mf
from studio.data.ingest import ingest
from studio.errors import StudioError
from studio.models.loading import load_model
from studio.models.tiny.sample_data import write_style_set
from studio.overlay import apply_sets, overlay
from studio.paths import Workspace
from studio.train.validate import check_settings

# (--set values or extra CLI args, fragment the message must contain)
BAD = {
    "resolution-not-multiple": (["--set", "resolution=70"], "multiples of 16"),
    "resolution-below-multiple": (["--set", "resolution=8"], "multiples of 16"),
    "rank-0": (["--set", "lora.rank=0"], "rank=0 is out of range"),
    "steps-negative": (["--set", "steps=-5"], "steps=-5 is out of range"),
    "steps-absurd": (["--set", "steps=10000000000"], "out of range"),
    "steps-not-int": (["--set", "steps=ten"], "not a valid int"),
    "lr-nan": (["--set", "lr_unet=nan"], "lr_unet=nan is not a number"),
    "lr-inf": (["--set", "lr_text=inf"], "lr_text=inf is not a number"),
    "lr-zero": (["--set", "lr_unet=0", "--set", "lr_text=0"], "nothing would train"),
    "unknown-key": (["--set", "lora.rnak=4"], "Unknown setting 'rnak'"),
    "not-key-value": (["--set", "steps"], "is not key=value"),
    "bad-choice": (["--set", "optimizer=sgd"], "optimizer='sgd' is not one of"),
    "fp16-on-cpu": (["--set", "mixed_precision=fp16"], "fp16 needs a CUDA GPU"),
    "prompt-placeholder": (["--set", "sample_prompts=a mug in {style}"], "uses {style}"),
    "prompt-brace": (["--set", "sample_prompts=a mug {trigger"], "stray brace"),
    "prompt-empty": (["--set", "sample_prompts= "], "a sample prompt is empty"),
    "final-best-no-validation": (["--set", "final=best", "--set", "validate_every=0"], "final=best needs validation"),
    "unknown-preset": (["--preset", "nope"], "No preset named 'nope'"),
    "cuda-missing": (["--device", "cuda"], "no CUDA GPU"),
    "resume-nothing": (["--resume"], "Nothing to resume"),
    "adapter-name-reserved": (["--name", "CON"], "is not allowed"),
    "adapter-name-traversal": (["--name", "../evil"], "is not allowed"),
    "model-missing": (["--model", "/nonexistent/model.safetensors"], "does not exist"),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("early")
    write_style_set(root / "neon", "neon", 6)
    ws = Workspace(root / "outputs")
    ingest("neon", [root / "neon"], ws=ws)
    (root / "bad.toml").write_text("steps = 10.5\n")
    return root, ws


def _train(world, *extra):
    root, ws = world
    args = ["-v", "train", "--dataset", "neon", "--name", "early", "--device", "cpu", *extra]
    if "--name" in extra:
        args.remove("--name"), args.remove("early")
    return run_cli(*args, env={"STUDIO_OUTPUTS": str(ws.root)})


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_setting_fails_before_the_model_loads(world, case, tally):
    extra, fragment = BAD[case]
    r = _train(world, *extra)
    _, ws = world
    ok = (r.returncode == 2 and fragment in r.stderr and "Traceback" not in r.stderr
          and "studio.models.loading: loaded" not in r.stderr and not (ws.adapters / "early").exists())
    tally.record("bad input", "settings", case, ok)
    assert r.returncode == 2, r.stderr[-2000:]
    assert fragment in r.stderr, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert "studio.models.loading: loaded" not in r.stderr, "the model was loaded before the settings were checked"
    assert not (ws.adapters / "early").exists()


def test_bad_preset_file_and_images_path_fail_before_ingest(world, tally):
    root, ws = world
    r = _train(world, "--preset", str(root / "bad.toml"))
    assert r.returncode == 2 and "must be a whole number" in r.stderr, r.stderr[-2000:]
    # --images: the settings are checked before the images are ingested
    r2 = run_cli("-v", "train", "--images", str(root / "neon"), "--name", "fresh", "--device", "cpu",
                 "--set", "resolution=70", env={"STUDIO_OUTPUTS": str(ws.root)})
    ok = r2.returncode == 2 and "multiples of 16" in r2.stderr and not (ws.datasets / "fresh").exists()
    tally.record("bad input", "settings", "preset-float-steps", r.returncode == 2)
    tally.record("bad input", "settings", "images-then-bad-resolution", ok)
    assert ok, r2.stderr[-2000:]


def test_check_settings_is_a_pure_function_for_the_page(world):
    _, ws = world
    m = mf.load("neon", ws)
    check_settings(TrainSettings(), "tiny", m, "cpu")  # defaults pass
    with pytest.raises(StudioError, match="multiples of 64"):
        check_settings(apply_sets(TrainSettings(), ["resolution=500"]), "sd1", m, "cpu")
    check_settings(apply_sets(TrainSettings(), ["resolution=512"]), "sd1", m, "cpu")
    with pytest.raises(StudioError, match="multiples of 32"):
        check_settings(apply_sets(TrainSettings(), ["resolution=1000"]), "sdxl", None, "cpu")
    empty = mf.Manifest(name="empty", trigger="x")
    with pytest.raises(StudioError, match="no training images"):
        check_settings(TrainSettings(), "tiny", empty, "cpu")
    no_val = mf.Manifest(name="few", trigger="x", items=[mf.Item("a.png", "a", "0", 64, 64, "c", "template")])
    with pytest.raises(StudioError, match="held-out"):
        check_settings(overlay(TrainSettings(), {"final": "best"}, "t"), "tiny", no_val, "cpu")


def test_size_multiple_from_configs_matches_the_loaded_model(tiny_model):
    from studio.models.loading import parse_ref, size_multiple_of

    assert size_multiple_of(parse_ref("tiny"), "tiny") == tiny_model.size_multiple == 16


def test_failure_after_step_one_keeps_the_checkpoint_and_says_resume(world, monkeypatch):
    """An OSError while writing the step-4 preview (after the step-2 checkpoint) stops the run
    with a message naming the checkpoint and --resume; resuming then finishes."""
    from studio.train import judging, loop

    _, ws = world
    real = judging.atomic_save_image  # the round's previews are written there

    def save(path, image):
        if "step-0000004" in path.name:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, image)

    monkeypatch.setattr(judging, "atomic_save_image", save)
    s = apply_sets(TrainSettings(), ["steps=5", "batch_size=2", "checkpoint_every=2", "sample_every=4",
                                     "sample_steps=1", "validate_every=0", "optimizer=adamw", "lora.rank=2",
                                     "lora.alpha=2", "lora.text_encoder=false"])
    sink = ev.ListSink()
    with pytest.raises(StudioError) as e:
        loop.Trainer("late", "neon", load_model("tiny", device="cpu"), s, sink, ws=ws).run()
    msg = str(e.value)
    assert "step 4" in msg and "Permission denied" in msg and "step-0000004" in msg.replace("preview", "")
    assert "step-0000002" in msg and "--resume" in msg
    assert sink.of(ev.Failed)
    assert (ws.adapters / "late" / "checkpoints" / "step-0000002" / "lora.safetensors").is_file()
    monkeypatch.setattr(judging, "atomic_save_image", real)
    r = loop.Trainer("late", "neon", load_model("tiny", device="cpu"), s, ev.ListSink(), ws=ws).run(resume=True)
    assert r.steps == 5 and r.adapter.is_file()
