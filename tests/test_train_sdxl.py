"""The SDXL code path (two text encoders, pooled + time-id conditioning, lora_te1/te2
keys) on a miniature SDXL built from configs; the file loads in diffusers' SDXL loader."""

import numpy as np
import torch
from safetensors.torch import load_file
from sdxl_dummy import dummy_sdxl

from studio import events as ev
from studio.config import IngestSettings, TrainSettings
from studio.data.ingest import ingest
from studio.models.tiny.sample_data import write_style_set
from studio.overlay import apply_sets
from studio.paths import Workspace
from studio.train.loop import Trainer


def _image(pipe):
    g = torch.Generator().manual_seed(0)
    return pipe("a red mug", num_inference_steps=3, height=64, width=64, generator=g, output_type="np").images[0]


def test_sdxl_training_and_export(tmp_path):
    write_style_set(tmp_path / "neon", "neon", 6)
    ws = Workspace(tmp_path / "o")
    ingest("neon", [tmp_path / "neon"], IngestSettings(min_side=16), family="sdxl", ws=ws)
    model = dummy_sdxl()
    s = apply_sets(TrainSettings(), ["steps=3", "batch_size=2", "resolution=64", "sample_steps=2",
                                     "validate_every=2", "optimizer=adamw", "lora.rank=4", "lr_unet=1e-2",
                                     "lr_text=1e-2"])
    r = Trainer("x", "neon", model, s, ev.ListSink(), ws=ws).run()
    keys = load_file(str(r.adapter)).keys()
    assert {k.split("_")[1] for k in keys} == {"unet", "te1", "te2"}
    ours = _image(model.pipe)
    fresh = dummy_sdxl()
    base = _image(fresh.pipe)
    fresh.pipe.load_lora_weights(str(r.adapter), adapter_name="x")
    assert np.abs(ours - base).max() > 1e-4
    assert np.abs(ours - _image(fresh.pipe)).max() < 1e-5
