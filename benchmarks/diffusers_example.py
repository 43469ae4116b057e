"""Run diffusers' public ``train_text_to_image_lora.py`` on the tiny model, time its checkpoints
and turn each one into a studio library adapter (issue 16's "time to style" baseline).

The example is never part of this repository: pass ``--example PATH`` to a copy of it; the
harness copies it into a temporary folder and runs it there. Version used so far (the newest
in the local diffusers mirror; the installed diffusers is 0.42.1, the mirror's newest file is
the same one the 0.40.0.dev0 tree carries, last changed in c56add8081 "post release v0.39.0"):

    git -C /work/.mirror/huggingface+diffusers/repo show \\
        58eb52c0803ea9af3abec60841c2a093bdf1f951:examples/text_to_image/train_text_to_image_lora.py \\
        > /tmp/train_text_to_image_lora.py

The summary records the file's git blob id, so any copy can be matched to a commit.

Packages the example needs beyond the studio's (``datasets``, ``torchvision``) live in a
separate venv, so the project's own environment and CI are untouched:

    python3 -m venv --system-site-packages /work/venv-bench
    /work/venv-bench/bin/pip install torchvision==0.28.0 datasets   # 0.28.0 pins torch==2.13.0: torch stays

On a CPU-only torch the PyPI torchvision wheel cannot load its C ops (built for CUDA torch), and
``import torchvision`` then fails on ``operator torchvision::nms does not exist``; the launcher
below declares those two op schemas (no kernels) and imports it again. The example only uses
``torchvision.transforms``. The example runs with ``HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1``.

Matched to the studio's ``tiny-cpu`` preset: batch size and LoRA rank (alpha = rank in both);
``--resolution`` 64 (the tiny model's native size) with ``--center_crop``; fp32 on the CPU
(``--mixed_precision no``); no validation prompts. Everything else is the example's default
(UNet attention LoRA only, AdamW, constant lr, no noise offset) — it is the baseline as
published. Timing: step and checkpoint times are read off the example's own stderr (tqdm
updates, "Saved state to ...") with this process's monotonic clock, relative to process start;
the CPU seconds of the process are sampled at the same moments from /proc.

    # one style, one lr, 300 steps, a checkpoint every 25 steps, imported into the workspace
    python benchmarks/diffusers_example.py run --example /tmp/train_text_to_image_lora.py \\
        --style neon --lr 1e-4 --steps 300 --checkpointing-steps 25 --outputs outputs
    # seconds per step: the example vs `studio train`, same set, back to back
    python benchmarks/diffusers_example.py speed --example /tmp/train_text_to_image_lora.py \\
        --style neon --steps 20 --outputs /tmp/ws

Styles: the sample styles (neon, pastel, stripes), the home-made ones of ``style_sets.py``
(sepia, halftone), ``dataset:NAME`` (a studio dataset's train split) or a folder of PNG + .txt.
A style name is written to ``<outputs>/bench/sets/<style>`` and ingested as studio dataset
``<style>`` (so the studio trains on exactly the same train split).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from studio.paths import Workspace  # noqa: E402

BENCH_PYTHON = Path("/work/venv-bench/bin/python")
EXAMPLE_COMMIT = "58eb52c0803ea9af3abec60841c2a093bdf1f951"  # mirror HEAD; the file last changed in c56add8081
KNOWN_EXAMPLES = {  # git blob id of train_text_to_image_lora.py -> the diffusers commit it was read at
    "d33908b28000d0edd76feb761c2fbbfdff916f81": EXAMPLE_COMMIT,
}

LAUNCHER = '''\
import runpy, sys, torch
try:
    import torchvision
except RuntimeError as e:  # CUDA-built torchvision on a CPU torch: its C ops did not load
    if "torchvision::" not in str(e):
        raise
    for m in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[m]
    _lib = torch.library.Library("torchvision", "FRAGMENT")
    _lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    import torchvision
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
'''
STEP_RE = re.compile(r"Steps:\s+\d+%\|[^|]*\|\s*(\d+)/(\d+)")
SAVED_RE = re.compile(r"Saved state to (\S*checkpoint-(\d+))")


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lr_tag(lr: float) -> str:
    mantissa, exp = f"{lr:e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.').replace('.', 'p')}e{int(exp)}"


def adapter_name(style: str, lr: float, step: int) -> str:
    return f"dx-{re.sub(r'[^A-Za-z0-9_-]', '_', style)[:40]}-lr{lr_tag(lr)}-s{step}"


def preset_match(preset: str = "tiny-cpu") -> tuple[int, int]:
    """(batch size, LoRA rank) of a studio preset."""
    from studio.train.presets import load_preset

    s = load_preset(preset)
    return s.batch_size, s.lora.rank


# ----------------------------------------------------------------- the image set
def ensure_dataset(style: str, ws: Workspace, count: int = 16, seed: int = 0) -> str:
    """A sample or home-made style as studio dataset ``style`` (kept if it exists already)."""
    from studio.data import manifest as mf
    from studio.data.ingest import ingest
    from studio.models.tiny.sample_data import write_style_set
    from studio.models.tiny.scenes import STYLES

    import style_sets

    if (mf.dataset_dir(style, ws) / "manifest.json").is_file():
        return style
    folder = ws.root / "bench" / "sets" / style
    if style in STYLES:
        write_style_set(folder, style, count, seed)
    elif style in style_sets.EXTRA_STYLES:
        style_sets.write_style_set(folder, style, count, seed)
    else:
        raise SystemExit(f"unknown style {style!r}")
    ingest(style, [folder], ws=ws)
    return style


def pairs_for(source: str, ws: Workspace) -> list[tuple[Path, str]]:
    """(image path, caption) pairs: a style name, ``dataset:NAME`` (train split) or a folder."""
    from studio.data import manifest as mf

    if Path(source).is_dir():
        pngs = sorted(Path(source).glob("*.png"))
        return [(p, p.with_suffix(".txt").read_text(encoding="utf-8").strip()) for p in pngs]
    name = source.split(":", 1)[1] if source.startswith("dataset:") else ensure_dataset(source, ws)
    m = mf.load(name, ws)
    folder = mf.dataset_dir(name, ws)
    return [(folder / it.file, it.caption) for it in m.train]


def write_imagefolder(pairs: list[tuple[Path, str]], out: Path) -> Path:
    """A datasets ``imagefolder``: RGB PNGs + metadata.jsonl (file_name, text)."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, (src, caption) in enumerate(pairs):
        name = f"{i:04d}.png"
        with Image.open(src) as im:
            im.convert("RGB").save(out / name)
        lines.append(json.dumps({"file_name": name, "text": caption}))
    (out / "metadata.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


# ----------------------------------------------------------------- timing a process
def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


@dataclass
class Timeline:
    """What a watched process printed, stamped relative to its start."""
    steps: dict[int, float] = field(default_factory=dict)  # step -> wall s (first time seen)
    cpu: dict[int, float] = field(default_factory=dict)  # step -> CPU s of the process at that moment
    checkpoints: dict[int, tuple[float, float | None, str]] = field(default_factory=dict)  # step -> (wall, cpu, dir)
    log: list[str] = field(default_factory=list)


def watch(proc: subprocess.Popen, t0: float, tl: Timeline, log_file: Path) -> None:
    """Split the merged stdout/stderr on \\r and \\n (tqdm redraws with \\r), stamp each piece."""
    buf = b""
    with log_file.open("wb") as log:
        while True:
            chunk = proc.stdout.read1(65536)
            if not chunk:
                break
            now = time.monotonic() - t0
            log.write(chunk)
            buf += chunk
            *pieces, buf = re.split(rb"[\r\n]", buf)
            for raw in pieces:
                _note(raw.decode("utf-8", "replace"), now, proc.pid, tl)
        if buf:
            _note(buf.decode("utf-8", "replace"), time.monotonic() - t0, proc.pid, tl)


def _note(line: str, now: float, pid: int, tl: Timeline) -> None:
    if (m := STEP_RE.search(line)) and int(m.group(1)) not in tl.steps:
        tl.steps[int(m.group(1))] = round(now, 3)
        if (c := cpu_seconds(pid)) is not None:
            tl.cpu[int(m.group(1))] = c
    if m := SAVED_RE.search(line):
        tl.checkpoints[int(m.group(2))] = (round(now, 3), cpu_seconds(pid), m.group(1))


def per_step(steps: dict[int, float]) -> float | None:
    """Steady-state seconds per step (wall or CPU): first to last observed step (startup excluded)."""
    ks = sorted(k for k in steps if k >= 1)
    if len(ks) < 2:
        return None
    return round((steps[ks[-1]] - steps[ks[0]]) / (ks[-1] - ks[0]), 4)


# ----------------------------------------------------------------- the example run
@dataclass
class ExampleRun:
    style: str
    lr: float
    seed: int
    steps: int
    checkpointing_steps: int
    batch_size: int
    rank: int
    images: int
    command: list[str]
    example_blob: str
    example_commit: str
    returncode: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    first_step_s: float | None = None
    s_per_step: float | None = None
    cpu_s_per_step: float | None = None
    checkpoints: list[dict] = field(default_factory=list)  # {step, wall_s, cpu_s, adapter}


def example_command(python: Path, launcher: Path, script: Path, data: Path, out: Path, lr: float, steps: int,
                    every: int, seed: int, batch: int, rank: int, extra: list[str]) -> list[str]:
    from studio.models.loading import TINY_DIR

    return [str(python), str(launcher), str(script),
            "--pretrained_model_name_or_path", str(TINY_DIR), "--train_data_dir", str(data),
            "--resolution", "64", "--center_crop", "--train_batch_size", str(batch),
            "--max_train_steps", str(steps), "--checkpointing_steps", str(every),
            "--learning_rate", repr(lr), "--rank", str(rank), "--seed", str(seed),
            "--mixed_precision", "no", "--dataloader_num_workers", "0",
            "--output_dir", str(out), "--cache_dir", str(out.parent / "hf-cache"), *extra]


def run_example(example: Path, source: str, ws: Workspace, lr: float, steps: int = 300, every: int = 25,
                seed: int = 0, preset: str = "tiny-cpu", python: Path | None = None, extra: list[str] = (),
                keep: Path | None = None, nice: int = 0) -> tuple[ExampleRun, Path]:
    """Run the example in a fresh temporary folder; return the record and its output dir."""
    data = example.read_bytes()
    blob = git_blob_id(data)
    batch, rank = preset_match(preset)
    pairs = pairs_for(source, ws)
    tmp = Path(tempfile.mkdtemp(prefix="dx-example-", dir=keep))
    script, launcher = tmp / "train_text_to_image_lora.py", tmp / "launch.py"
    script.write_bytes(data)
    launcher.write_text(LAUNCHER, encoding="utf-8")
    folder = write_imagefolder(pairs, tmp / "data")
    python = python or (BENCH_PYTHON if BENCH_PYTHON.exists() else Path(sys.executable))
    cmd = example_command(python, launcher, script, folder, tmp / "out", lr, steps, every, seed, batch, rank,
                          list(extra))
    if nice:
        cmd = ["nice", "-n", str(nice), *cmd]
    run = ExampleRun(source, lr, seed, steps, every, batch, rank, len(pairs), cmd, blob,
                     KNOWN_EXAMPLES.get(blob, "unknown (not the recorded version)"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
           "TQDM_MININTERVAL": "0"}
    tl = Timeline()
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    reader = threading.Thread(target=watch, args=(proc, t0, tl, tmp / "example.log"), daemon=True)
    reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    run.wall_s = round(time.monotonic() - t0, 3)
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join(timeout=30)
    run.returncode, run.cpu_s = proc.returncode, round(usage.ru_utime + usage.ru_stime, 2)
    run.first_step_s = tl.steps.get(min(tl.steps)) if tl.steps else None
    run.s_per_step, run.cpu_s_per_step = per_step(tl.steps), per_step(tl.cpu)
    run.checkpoints = [{"step": k, "wall_s": w, "cpu_s": c, "dir": d}
                       for k, (w, c, d) in sorted(tl.checkpoints.items())]
    return run, tmp


def import_checkpoints(run: ExampleRun, tmp: Path, ws: Workspace, replace: bool = False) -> None:
    """Each ``checkpoint-N/pytorch_lora_weights.safetensors`` (PEFT layout, ``unet.`` prefix) goes
    through the studio's own import; the adapter name lands in the run's checkpoint list."""
    from studio.adapters.importer import import_file
    from studio.adapters.library import Library

    lib = Library(ws)
    for ck in run.checkpoints:
        name = adapter_name(run.style.replace("dataset:", ""), run.lr, ck["step"])
        if replace and name in lib.names():
            lib.delete(name)
        report = import_file(tmp / ck["dir"] / "pytorch_lora_weights.safetensors", name, ws=ws)
        ck["adapter"] = report.name



# ----------------------------------------------------------------- the studio, timed the same way
def run_studio(dataset: str, name: str, ws: Workspace, steps: int, preset: str = "tiny-cpu",
               sets: list[str] = (), nice: int = 0) -> dict:
    """`studio train` as a child process: wall and CPU seconds, step times from its events file."""
    events = Path(tempfile.mkdtemp(prefix="studio-events-")) / "events.jsonl"
    cmd = [sys.executable, "-m", "studio", "train", "--dataset", dataset, "--name", name, "--preset", preset,
           "--set", f"steps={steps}", *[a for s in sets for a in ("--set", s)], "--events", str(events)]
    if nice:
        cmd = ["nice", "-n", str(nice), *cmd]
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "STUDIO_OUTPUTS": str(ws.root.resolve()),
           "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    start_epoch, t0 = time.time(), time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    tl = Timeline()
    done = threading.Event()
    poller = threading.Thread(target=_follow_events, args=(events, proc.pid, start_epoch, tl, done), daemon=True)
    poller.start()
    err = proc.stderr.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    poller.join(timeout=30)
    steps_at = tl.steps
    return {"command": cmd, "returncode": proc.returncode, "wall_s": round(wall, 3),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 2), "s_per_step": per_step(steps_at),
            "cpu_s_per_step": per_step(tl.cpu),
            "first_step_s": steps_at.get(min(steps_at)) if steps_at else None, "steps": len(steps_at),
            "rounds": [{"step": k, "wall_s": w, "cpu_s": c, "checkpoint": d}
                       for k, (w, c, d) in sorted(tl.checkpoints.items())],
            "stderr_tail": err[-2000:]}


def _follow_events(path: Path, pid: int, start_epoch: float, tl: Timeline, done: threading.Event) -> None:
    """Tail the studio's events file; stamp CPU seconds as each progress event appears."""
    seen = 0
    while True:
        finished = done.is_set()
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        for line in lines[seen:]:
            try:
                e = json.loads(line)
            except ValueError:  # a half-written last line: read it again next round
                break
            seen += 1
            if e.get("type") == "progress" and int(e["step"]) not in tl.steps:
                tl.steps[int(e["step"])] = round(e["t"] - start_epoch, 3)
                if not finished and (c := cpu_seconds(pid)) is not None:
                    tl.cpu[int(e["step"])] = c
            elif e.get("type") == "judged":  # a style-meter round: its weights and when it was judged
                cpu = cpu_seconds(pid) if not finished else None  # (read within 0.2 s of the event)
                tl.checkpoints[int(e["step"])] = (round(e["t"] - start_epoch, 3), cpu, e.get("checkpoint", ""))
        if finished:
            return
        time.sleep(0.2)


# ----------------------------------------------------------------- CLI
def _write_json(path: Path, data: dict) -> Path:
    from studio.paths import atomic_write_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(data, indent=1).encode("utf-8"))
    return path


def cmd_run(a: argparse.Namespace) -> int:
    ws = Workspace(Path(a.outputs))
    run, tmp = run_example(Path(a.example), a.style, ws, a.lr, a.steps, a.checkpointing_steps, a.seed,
                           a.preset, Path(a.python) if a.python else None, a.extra, nice=a.nice)
    if run.returncode != 0:
        print((tmp / "example.log").read_text(encoding="utf-8", errors="replace")[-4000:], file=sys.stderr)
        print(f"the example failed (exit {run.returncode}); its folder is kept: {tmp}", file=sys.stderr)
        return 1
    import_checkpoints(run, tmp / "out", ws, replace=a.replace)
    stem = f"{re.sub(r'[^A-Za-z0-9_-]', '_', a.style)[-40:]}-lr{lr_tag(a.lr)}-seed{a.seed}"
    out = _write_json(ws.root / "bench" / "diffusers_example" / f"{stem}.json", asdict(run))
    print(f"{run.style} lr {a.lr:g}: {run.wall_s:.1f} s wall, {run.cpu_s:.1f} s CPU, "
          f"{run.s_per_step} s/step; checkpoints:")
    for ck in run.checkpoints:
        print(f"  step {ck['step']:4d} at {ck['wall_s']:8.1f} s -> adapter {ck['adapter']}")
    print(f"summary: {out}")
    if not a.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def cmd_speed(a: argparse.Namespace) -> int:
    """Back to back on one set: the example, then `studio train`, both as nice'd child processes."""
    from common import record

    ws = Workspace(Path(a.outputs))
    dataset = ensure_dataset(a.style, ws)
    run, tmp = run_example(Path(a.example), dataset, ws, a.lr, a.steps, max(1, a.steps // 2), a.seed, a.preset,
                           Path(a.python) if a.python else None, a.extra, nice=a.nice)
    if run.returncode == 0:  # its checkpoints become adapters too (after the timing, never during it)
        import_checkpoints(run, tmp / "out", ws, replace=True)
    shutil.rmtree(tmp, ignore_errors=True)
    studio = run_studio(dataset, f"speed-{dataset}-{int(time.time())}", ws, a.steps, a.preset, nice=a.nice)
    rows = [("diffusers example", run.returncode, run.wall_s, run.cpu_s, run.first_step_s, run.s_per_step,
             run.cpu_s_per_step),
            ("studio train", studio["returncode"], studio["wall_s"], studio["cpu_s"], studio["first_step_s"],
             studio["s_per_step"], studio["cpu_s_per_step"])]
    table = ("| trainer | exit | wall s | CPU s | first step at s | wall s/step | CPU s/step |\n"
             "|---|---|---|---|---|---|---|\n"
             + "\n".join("| " + " | ".join(str(v) for v in r) + " |" for r in rows))
    table += (f"\n\n{a.steps} steps, style {a.style} ({run.images} train images), batch {run.batch_size}, "
              f"rank {run.rank}, example lr {a.lr:g}, example blob {run.example_blob[:12]} "
              f"(diffusers {run.example_commit[:10]}); s/step = first to last step, startup excluded.")
    record(f"diffusers example vs studio train: seconds per step ({a.style}, {a.steps} steps)", table)
    _write_json(ws.root / "bench" / "diffusers_example" / f"speed-{a.style}.json",
                {"example": asdict(run), "studio": studio})
    return 0 if run.returncode == 0 and studio["returncode"] == 0 else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, fn, steps in (("run", cmd_run, 300), ("speed", cmd_speed, 20)):
        s = sub.add_parser(name, help=fn.__doc__.split("\n")[0] if fn.__doc__ else None)
        s.set_defaults(fn=fn)
        s.add_argument("--example", required=True, help="a copy of diffusers' train_text_to_image_lora.py")
        s.add_argument("--style", default="neon", help="neon|pastel|stripes|sepia|halftone, dataset:NAME or a folder")
        s.add_argument("--lr", type=float, default=1e-4)
        s.add_argument("--steps", type=int, default=steps)
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--preset", default="tiny-cpu", help="studio preset whose batch size and rank are matched")
        s.add_argument("--outputs", default=str(Workspace().root), help="studio workspace (STUDIO_OUTPUTS)")
        s.add_argument("--python", help=f"interpreter for the example (default {BENCH_PYTHON} if present)")
        s.add_argument("--nice", type=int, default=10, help="nice level of the child processes (0 = none)")
        s.add_argument("--extra", action="append", default=[], metavar="ARG",
                       help="one more argument for the example (repeatable, e.g. --extra=--use_8bit_adam)")
    r = sub.choices["run"]
    r.add_argument("--checkpointing-steps", type=int, default=25)
    r.add_argument("--replace", action="store_true", help="replace adapters of the same name")
    r.add_argument("--keep", action="store_true", help="keep the temporary folder (log, checkpoints)")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
