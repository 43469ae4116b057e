"""Data-parallel training through torch.distributed (what ``accelerate launch --multi_gpu``
starts), here on two CPU processes with the gloo backend."""

import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from studio.data.ingest import ingest
from studio.models.tiny.sample_data import write_style_set
from studio.paths import Workspace

from conftest import ROOT, run_cli

SETS = ["steps=4", "batch_size=2", "optimizer=adamw", "lr_unet=1e-3", "lr_text=1e-3", "validate_every=0",
        "sample_every=0", "checkpoint_every=0", "sample_steps=2", "lr_scheduler=linear", "warmup_steps=1",
        "lora.rank=4", "lora.alpha=2"]


def _args(name: str, extra: list[str]) -> list[str]:
    sets = [x for kv in SETS + extra for x in ("--set", kv)]
    return ["train", "--dataset", "neon", "--name", name, "--model", "tiny", "--device", "cpu", *sets]


@pytest.mark.slow
def test_two_processes_equal_one_process_with_accumulation(tmp_path):
    """Two processes taking batches 2n and 2n+1 with averaged gradients must reach the
    adapter one process reaches with grad_accum=2 over the same batches."""
    write_style_set(tmp_path / "neon", "neon", 8)
    outputs = tmp_path / "outputs"
    ingest("neon", [tmp_path / "neon"], ws=Workspace(outputs))
    env = {"STUDIO_OUTPUTS": str(outputs), "OMP_NUM_THREADS": "1"}

    one = run_cli(*_args("one", ["grad_accum=2"]), env=env)
    assert one.returncode == 0, one.stderr[-3000:]

    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "studio", *_args("two", [])]
    two = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, **env})
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("finished at step 4") == 1, "only the main process reports"

    a = load_file(str(outputs / "adapters" / "one" / "one.safetensors"))
    b = load_file(str(outputs / "adapters" / "two" / "two.safetensors"))
    assert a.keys() == b.keys()
    moved = [k for k in a if "lora_up" in k and a[k].abs().max() > 0]
    assert moved, "training did not move the LoRA up-weights"
    for k in a:  # same maths, different summation order: equal to float precision
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6, msg=k)
