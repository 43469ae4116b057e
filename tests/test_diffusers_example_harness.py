"""The plumbing of benchmarks/diffusers_example.py that needs no example run: reading the
example's tqdm/log output into step and checkpoint times, the imagefolder it trains on,
adapter names, and the blob id that pins the example's version."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_ROOT / "benchmarks"))  # the harness imports its sibling style_sets
_spec = importlib.util.spec_from_file_location("bench_diffusers_example", _ROOT / "benchmarks" / "diffusers_example.py")
dx = importlib.util.module_from_spec(_spec)
sys.modules["bench_diffusers_example"] = dx
_spec.loader.exec_module(dx)

# Lines as the example prints them (tqdm redraws joined by \r, then an accelerate log line).
TQDM = ("Steps:  17%|█▋        | 1/6 [00:23<01:56, 23.39s/it]"
        "\rSteps:  50%|█████     | 3/6 [01:12<01:10, 23.55s/it, lr=0.0001, step_loss=0.356]")
SAVED = "12/01/2026 05:37:46 - INFO - __main__ - [RANK 0] Saved state to /tmp/x/out/checkpoint-3"


def test_step_and_checkpoint_lines_are_stamped_once():
    tl = dx.Timeline()
    for piece, now in zip(TQDM.split("\r"), (23.5, 72.0)):
        dx._note(piece, now, pid=-1, tl=tl)
    dx._note("Steps:  50%|█████     | 3/6 [01:12<01:10, 23.55s/it, lr=0.0001, step_loss=0.288]", 80.0, -1, tl)
    dx._note(SAVED, 72.4, -1, tl)
    assert tl.steps == {1: 23.5, 3: 72.0}  # the redraw of step 3 at 80 s does not move it
    assert tl.checkpoints[3][0] == 72.4 and tl.checkpoints[3][2] == "/tmp/x/out/checkpoint-3"
    assert dx.per_step(tl.steps) == round((72.0 - 23.5) / 2, 4)
    assert dx.per_step({1: 5.0}) is None


def test_watch_splits_carriage_returns_from_a_real_pipe(tmp_path):
    script = ("import sys,time\n"
              "for k in (1, 2):\n"
              "    sys.stderr.write(f'\\rSteps:  50%|xx  | {k}/2 [00:01<00:01, 1.0s/it]'); sys.stderr.flush()\n"
              "print('INFO - [RANK 0] Saved state to out/checkpoint-2', flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    tl = dx.Timeline()
    dx.watch(proc, 0.0, tl, tmp_path / "log.txt")
    assert proc.wait(timeout=60) == 0
    assert sorted(tl.steps) == [1, 2] and list(tl.checkpoints) == [2]
    assert b"Saved state" in (tmp_path / "log.txt").read_bytes()


def test_imagefolder_has_metadata_for_every_image(tmp_path):
    src = []
    for i, colour in enumerate(((255, 0, 0), (0, 0, 255))):
        p = tmp_path / f"in{i}.png"
        Image.new("RGBA", (64, 64), colour + (255,)).save(p)
        src.append((p, f"caption {i}, neon style"))
    out = dx.write_imagefolder(src, tmp_path / "folder")
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert [r["text"] for r in rows] == ["caption 0, neon style", "caption 1, neon style"]
    for r in rows:
        with Image.open(out / r["file_name"]) as im:
            assert im.mode == "RGB" and im.size == (64, 64)


def test_adapter_names_are_library_names():
    from studio.adapters.library import check_name

    assert dx.lr_tag(1e-4) == "1e-4" and dx.lr_tag(1e-3) == "1e-3" and dx.lr_tag(2.5e-4) == "2p5e-4"
    for style in ("neon", "sepia", "my set.v2"):
        assert check_name(dx.adapter_name(style, 1e-4, 300)) == dx.adapter_name(style, 1e-4, 300)
    assert dx.adapter_name("neon", 1e-3, 25) == "dx-neon-lr1e-3-s25"


def test_blob_id_is_gits(tmp_path):
    f = tmp_path / "x.py"
    f.write_bytes(b"print('hi')\n")
    git = subprocess.run(["git", "hash-object", str(f)], capture_output=True, text=True)
    assert git.returncode == 0 and dx.git_blob_id(f.read_bytes()) == git.stdout.strip()


def test_command_matches_the_preset_and_the_tiny_model(tmp_path):
    batch, rank = dx.preset_match("tiny-cpu")
    cmd = dx.example_command(Path("py"), Path("launch.py"), Path("train.py"), tmp_path / "data",
                             tmp_path / "out", 1e-3, 300, 25, 0, batch, rank, ["--use_8bit_adam"])
    args = {cmd[i]: cmd[i + 1] for i in range(3, len(cmd) - 1)}  # flag -> the word after it
    assert args["--train_batch_size"] == str(batch) and args["--rank"] == str(rank)
    assert args["--resolution"] == "64" and args["--max_train_steps"] == "300"
    assert args["--learning_rate"] == "0.001" and args["--checkpointing_steps"] == "25"
    assert (Path(args["--pretrained_model_name_or_path"]) / "model_index.json").is_file()
    assert cmd[-1] == "--use_8bit_adam" and "--validation_prompt" not in cmd


def test_studio_events_are_followed_with_cpu_stamps(tmp_path):
    import os
    import threading

    events = tmp_path / "events.jsonl"
    rows = [{"type": "progress", "t": 100.0 + k, "step": k} for k in (1, 2, 3)]
    events.write_text("\n".join(json.dumps(r) for r in rows) + "\n" + '{"type": "progr', encoding="utf-8")
    tl, done = dx.Timeline(), threading.Event()
    t = threading.Thread(target=dx._follow_events, args=(events, os.getpid(), 99.0, tl, done))
    t.start()
    done.set()
    t.join(timeout=60)
    assert not t.is_alive(), "the events follower did not stop when told"
    assert tl.steps == {1: 2.0, 2: 3.0, 3: 4.0}  # the half-written last line is not an event
    assert dx.per_step(tl.steps) == 1.0
