"""The trainer on the tiny model: optimizer, resume, stop, NaN handling, QLoRA, presets."""

import math

import pytest
import torch
from conftest import run_cli
from safetensors.torch import load_file

from studio import events as ev
from studio.config import LoraSettings, TrainSettings
from studio.data.ingest import ingest
from studio.errors import StudioError
from studio.models.loading import load_model
from studio.models.tiny.sample_data import write_style_set
from studio.overlay import apply_sets
from studio.paths import Workspace
from studio.train import recipe
from studio.judge.session import preview_path
from studio.train.loop import Trainer
from studio.train.presets import available, load_preset

FAST = ["batch_size=2", "sample_every=0", "sample_steps=2", "validate_every=2", "optimizer=adamw",
        "lr_unet=1e-3", "lr_text=1e-3", "lora.rank=4", "lora.alpha=2"]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    write_style_set(root / "neon", "neon", 8)
    w = Workspace(root / "outputs")
    ingest("neon", [root / "neon"], ws=w)
    return w


def _train(ws, name, sets, sink=None, stop=None, resume=False):
    s = apply_sets(TrainSettings(), FAST + sets)
    t = Trainer(name, "neon", load_model("tiny", device="cpu"), s, sink or ev.ListSink(), stop, ws=ws)
    return t.run(resume=resume)


class StopAt:
    """A sink that presses Stop once a given step is reported (like the UI button)."""

    def __init__(self, step: int, stop: ev.StopToken):
        self.step, self.stop, self.events = step, stop, []

    def emit(self, e):
        self.events.append(e)
        if isinstance(e, ev.Progress) and e.step >= self.step:
            self.stop.stop()


def test_eight_bit_adamw_keeps_uint8_state():
    w = torch.nn.Parameter(torch.randn(64, 128))  # >= 4096 elements: 8-bit state
    opt = recipe.make_optimizer(TrainSettings(), [w], [])
    w.grad = torch.randn_like(w)
    opt.step()
    st = opt.state[w]
    assert st["state1"].dtype == torch.uint8 and st["state2"].dtype == torch.uint8


def test_resume_equals_uninterrupted(ws):
    sets = ["steps=6", "checkpoint_every=2", "optimizer=adamw8bit", "lora.ff_rank=16", "lora.dropout=0.1"]
    full = _train(ws, "full", sets)
    stop = ev.StopToken()
    part = _train(ws, "part", sets, StopAt(3, stop), stop)
    assert part.stopped_early and part.steps == 3
    resumed = _train(ws, "part", sets, resume=True)
    assert resumed.steps == 6
    a, b = load_file(str(full.adapter)), load_file(str(resumed.adapter))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed run diverged from the uninterrupted one"


def test_stop_writes_a_usable_adapter(ws):
    stop = ev.StopToken()
    sink = StopAt(2, stop)
    r = _train(ws, "stopped", ["steps=50", "checkpoint_every=0"], sink, stop)
    assert r.stopped_early and r.steps == 2
    fin = [e for e in sink.events if isinstance(e, ev.Finished)][0]
    assert fin.stopped_early and fin.adapter == str(r.adapter)
    sd = load_file(str(r.adapter))
    assert any(k.endswith("lora_up.weight") and v.abs().sum() > 0 for k, v in sd.items())
    assert (r.adapter.parent / "preview.png").is_file()
    assert (r.adapter.parent / "checkpoints" / "step-0000002").is_dir()


def test_nan_steps_are_skipped_then_stop_with_a_clear_error(ws, monkeypatch):
    from studio.train import batches

    real = batches.LatentBatches.batch
    poisoned = {3, 5, 6, 7}

    def batch(self, n):
        lat, caps = real(self, n)
        return (lat * math.nan if n in poisoned else lat), caps

    monkeypatch.setattr(batches.LatentBatches, "batch", batch)
    sink = ev.ListSink()
    with pytest.raises(StudioError, match="NaN/Inf 3 steps in a row") as e:
        _train(ws, "nan", ["steps=20", "checkpoint_every=2"], sink)
    assert "learning rate" in str(e.value)
    warnings = sink.of(ev.Warning_)
    assert len(warnings) == 4 and "skipped" in warnings[0].message  # step 4 skipped, then 6, 7, 8
    assert sink.of(ev.Failed) and [p.step for p in sink.of(ev.Progress)][:4] == [1, 2, 3, 5]
    assert (ws.adapters / "nan" / "checkpoints" / "step-0000002").is_dir()  # last good one kept


def test_qlora_nf4_trains_on_cpu(ws):
    r = _train(ws, "qlora", ["steps=2", "quantize=nf4", "validate_every=0"])
    assert r.steps == 2 and r.adapter.is_file()


def test_presets_parse_and_reject_unknown_keys(tmp_path):
    assert {"tiny-cpu", "sd15-8gb", "sdxl-8gb", "sd15-quality"} <= set(available())
    assert load_preset("sdxl-8gb").lora.text_encoder is False
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = 10\n[lora]\nrnak = 4\n")
    with pytest.raises(StudioError, match="Unknown setting 'rnak'"):
        load_preset(str(bad))
    with pytest.raises(StudioError, match="No preset named"):
        load_preset("nope")


def test_bad_settings_are_refused():
    with pytest.raises(StudioError, match="optimizer"):
        TrainSettings(optimizer="sgd")
    with pytest.raises(StudioError, match="out of range"):
        TrainSettings(lora=LoraSettings(rank=0))



def test_bf16_weights_train_validate_and_preview(ws):
    """The GPU's dtype policy (bf16 base, fp32 LoRA weights, auto -> bf16 autocast) end to
    end on the CPU: previews once failed here because accelerate's fp32 UNet outputs met
    the bf16 VAE. Own process: accelerate's precision state is process-wide."""
    assert recipe.mixed_precision(TrainSettings(), torch.device("cpu"), torch.bfloat16) == "bf16"
    sets = [x for kv in FAST + ["steps=2", "validate_every=1", "lora.ff_rank=4", "lora.conv_rank=4"]
            for x in ("--set", kv)]
    r = run_cli("train", "--dataset", "neon", "--name", "bf16", "--model", "tiny", "--device", "cpu",
                "--dtype", "bf16", *sets, env={"STUDIO_OUTPUTS": str(ws.root)})
    assert r.returncode == 0, r.stderr[-3000:]
    out = ws.adapters / "bf16"
    weights = load_file(str(out / "bf16.safetensors"))
    assert all(torch.isfinite(w.float()).all() for w in weights.values())
    assert any(w.abs().max() > 0 for k, w in weights.items() if "lora_up" in k)
    assert (out / "preview.png").is_file()


def test_final_best_is_written_with_its_own_step(ws, monkeypatch):
    """final=best writes the lowest-validation weights: their step (not the run's last) goes into
    adapter.json's "steps" and the file's ss_steps, and the weights are best.safetensors' own."""
    from safetensors import safe_open

    from studio.train import validation

    losses = iter([0.3, 0.1, 0.2])  # validations at steps 2, 4, 6: the best is step 4

    def loss(self, *args):
        self.history.append(value := next(losses))
        return value

    monkeypatch.setattr(validation.Validator, "loss", loss)
    r = _train(ws, "best", ["steps=6", "final=best", "checkpoint_every=0"])
    info = __import__("json").loads((r.adapter.parent / "adapter.json").read_text())
    assert r.chosen == "best" and info["steps"] == 4 and info["trained_steps"] == 6
    with safe_open(str(r.adapter), "pt") as f:
        assert f.metadata()["ss_steps"] == "4"
    best, written = load_file(str(r.adapter.parent / "best.safetensors")), load_file(str(r.adapter))
    assert best.keys() == written.keys() and all(torch.equal(best[k], written[k]) for k in best)
    # the card's before|after is the best weights' own, drawn under step 4; step 6's stays step 6's
    out = r.adapter.parent
    shown, at4, at6 = (p.read_bytes() for p in (out / "preview.png", preview_path(out, 4, 0), preview_path(out, 6, 0)))
    assert shown == at4 != at6


def test_a_second_training_of_a_held_name_is_refused_before_the_model_is_set_up(ws, monkeypatch):
    from studio.adapters import busy

    def no_setup(self):
        raise AssertionError("the model was set up under a lock held by another training")

    monkeypatch.setattr(Trainer, "_setup", no_setup)
    with busy.training(ws.adapters / "held"):
        with pytest.raises(StudioError, match="a second training of it was not started"):
            _train(ws, "held", ["steps=2"])
