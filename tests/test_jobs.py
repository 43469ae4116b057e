"""The job runner: trainings as background processes on the tiny model (few steps each).

Every training here is a real `python -m studio train` process; the tests poll like the
page does and check the records (run.json, events.jsonl), the adapter files and statuses.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from studio import events as ev
from studio.config import JobSettings
from studio.data import manifest as mf
from studio.data.ingest import ingest
from studio.errors import StudioError
from studio.jobs import JobRunner, RunRecord, TrainRequest
from studio.jobs.events_file import EventReader, JsonlSink, read_events
from studio.models.tiny.sample_data import write_style_set
from studio.paths import Workspace

# attention-only LoRA, batch 1, no previews/validation unless a test asks: ~1 s a step
FAST = ("batch_size=1", "optimizer=adamw", "lr_unet=1e-3", "sample_every=0", "sample_steps=1",
        "validate_every=0", "lora.ff_rank=0", "lora.conv_rank=0", "lora.text_encoder=false")


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("jobs")
    write_style_set(root / "neon", "neon", 6)
    w = Workspace(root / "outputs")
    ingest("neon", [root / "neon"], ws=w)
    mf.save(mf.Manifest("empty", "empty"), w)  # a dataset without images
    return w


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # inherited by the training processes; 2 shared cores


def req(adapter, *sets, dataset="neon"):
    return TrainRequest(adapter, dataset, sets=FAST + sets, device="cpu")


def wait(runner, run_id, until, timeout=300):
    """Poll like the page (and check every run.json parses, every time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = runner.snapshot(run_id)
        for rec in runner.ws.runs.glob("*/run.json"):
            json.loads(rec.read_text())
        if until(snap):
            return snap
        time.sleep(0.3)
    raise AssertionError(f"timed out; last snapshot: {snap}")


def ended(s):
    return s.status not in ("queued", "running")


def test_events_file_is_read_incrementally(tmp_path):
    path = tmp_path / "events.jsonl"
    sink, reader = JsonlSink(path), EventReader(path)
    sink.emit(ev.Progress(1, 10, 0.5, 1e-3, 2.0, 4.5))
    sink.emit(ev.Sample(1, ("a mug",), ("/x/s.png",)))
    assert [type(e) for e in reader.read_new()] == [ev.Progress, ev.Sample]
    assert reader.read_new() == []
    with open(path, "a") as f:  # a writer caught mid-line, then a damaged line
        f.write('{"type": "warning", "step": 2, "mess')
    assert reader.read_new() == []
    with open(path, "a") as f:
        f.write('age": "hot"}\nnot json\n{"type": "from-the-future", "x": 1}\n')
    assert reader.read_new() == [ev.Warning_(2, "hot")]
    sink.emit(ev.Finished(3, "/x/a.safetensors", "last", True, 1.0))
    sink.fail("later error")  # a terminal event exists: not written
    sink.close()
    events = read_events(path)
    assert events[1] == ev.Sample(1, ("a mug",), ("/x/s.png",))
    assert isinstance(events[-1], ev.Finished) and not any(isinstance(e, ev.Failed) for e in events)


def test_the_second_look_pick_replaces_the_rounds_pick_in_the_progress_a_page_reads(tmp_path):
    from studio.jobs.progress import Follower

    path = tmp_path / "events.jsonl"
    sink = JsonlSink(path)
    sink.emit(ev.Judged(20, 71.0, 1.9, 12.0, None, False, "/r/20.safetensors", 20, "highest style score (71 %)"))
    sink.emit(ev.Judged(50, 69.0, 1.3, 5.0, 0.06, False, "/r/50.safetensors", 20, "within 5 points"))
    sink.emit(ev.Recommended(50, "style 68 % on a second look with 8 captions", ((20, 63.6), (50, 67.5))))
    sink.close()
    progress = Follower(path).update()
    assert progress.recommended == (50, "style 68 % on a second look with 8 captions")
    assert [r["step"] for r in progress.scorecard] == [20, 50]
    assert ev.Recommended(50, "style 68 % on a second look with 8 captions", ((20, 63.6), (50, 67.5))) in \
        read_events(path)


def test_importing_jobs_does_not_import_gradio_or_torch():
    code = "import sys, studio.jobs; print(sorted(m for m in ('gradio', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_bad_requests_are_refused_before_a_process_starts(ws):
    r = JobRunner(ws)
    for bad, match in [(TrainRequest("../x", "neon"), "Adapter name"),
                       (TrainRequest("ok", "nope"), "No image set named"),
                       (TrainRequest("ok", "../neon"), "Image set name"),
                       (req("ok", "lora.rnak=4"), "Unknown setting 'rnak'"),
                       (req("ok", "lora.rank=0"), "out of range"),
                       (TrainRequest("ok", "neon", device="gpu9"), "Device"),
                       (TrainRequest("ok", "neon", preset="nope"), "No preset"),
                       (TrainRequest("ok", "neon", dtype="--resume"), "dtype"),
                       (TrainRequest("ok", "neon", model="--images=/"), "Base model")]:
        with pytest.raises(StudioError, match=match):
            r.start(bad)
    assert r.runs() == []
    with pytest.raises(StudioError, match="No training run"):
        r.snapshot("../../etc")


def test_cli_writes_setup_errors_as_a_failed_event(ws, tmp_path):
    path = tmp_path / "events.jsonl"
    out = run_cli("train", "--dataset", "neon", "--name", "x", "--device", "cpu", "--set", "lora.rank=0",
                  "--events", str(path), env={"STUDIO_OUTPUTS": str(ws.root)})
    assert out.returncode == 2 and "error: lora" not in out.stdout
    (failed,) = read_events(path)
    assert isinstance(failed, ev.Failed) and "rank=0 is out of range" in failed.message


@pytest.mark.parametrize("error, expected, code", [
    (type("OutOfMemoryError", (RuntimeError,), {}), "ran out of memory", 2),
    (ValueError, "Training crashed: ValueError: boom", None)])
def test_cli_crashes_end_as_a_failed_event(tmp_path, monkeypatch, error, expected, code):
    from studio import cli
    from studio.cli import common, train

    def crash(args, events):
        events.emit(ev.Progress(7, 10, 0.1, 1e-4, 1.0, 3.0))
        raise error("boom")

    monkeypatch.setattr(train, "_train", crash)
    monkeypatch.chdir(tmp_path)  # the crash log goes to ./outputs/logs/
    path = tmp_path / "events.jsonl"
    argv = ["train", "--dataset", "neon", "--name", "x", "--events", str(path)]
    if code is None:  # an unexpected exception: one line and a crash log, never a traceback
        assert cli.main(argv) == common.CRASH_EXIT
        (log,) = (tmp_path / "outputs" / "logs").glob("crash-*.log")
        assert "Traceback" in log.read_text() and "ValueError: boom" in log.read_text()
    else:
        assert cli.main(argv) == code
    failed = read_events(path)[-1]
    assert isinstance(failed, ev.Failed) and failed.step == 7 and expected in failed.message


@pytest.mark.parametrize("code, status, words", [(None, "interrupted", "Resume"), (-9, "interrupted", "SIGKILL"),
                                                 (130, "interrupted", "twice"), (1, "failed", "Traceback line")])
def test_status_of_a_process_that_left_no_final_event(code, status, words):
    from studio.jobs.progress import Progress, derive_status

    rec = RunRecord(id="x", adapter="a", dataset="d", request={}, device="cpu", exit_code=code,
                    stderr_tail="Traceback line")
    assert derive_status(rec, Progress(), alive=True) == ("running", "")
    got, error = derive_status(rec, Progress(), alive=False)
    assert got == status and words in error


def test_a_reused_pid_is_not_taken_for_the_training(ws):
    """A record whose pid now belongs to another process (here: this test) is interrupted,
    and Stop does not signal that process."""
    folder = ws.runs / "20000101-000000-ghost-0000"
    RunRecord(id=folder.name, adapter="ghost", dataset="neon", request={"adapter": "ghost", "dataset": "neon"},
              device="cpu", status="running", created=1.0, started=1.0, pid=os.getpid(),
              proc_start=1.0).save(folder)
    r = JobRunner(ws)
    snap = r.stop(folder.name)  # would SIGINT pytest itself if the pid were trusted
    assert snap.status == "interrupted" and snap.can_resume and "Resume" in snap.error
    assert json.loads((folder / "run.json").read_text())["status"] == "interrupted"
    import shutil

    shutil.rmtree(folder)


def test_reattached_gpu_run_blocks_the_gpu_until_force_stopped(ws):
    """A live process recorded by an earlier server (here a stand-in `sleep`) is followed,
    makes gpu_busy() true, holds its device's queue, and dies on a forced stop."""
    from studio.jobs.records import process_start

    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    folder = ws.runs / "20000101-000001-gpu-0000"
    RunRecord(id=folder.name, adapter="gpu", dataset="neon", request={"adapter": "gpu", "dataset": "neon"},
              device="cuda:0", status="running", created=2.0, started=2.0, pid=proc.pid,
              proc_start=process_start(proc.pid)).save(folder)
    queued = None
    try:
        r = JobRunner(ws)
        assert r.snapshot(folder.name).status == "running" and r.gpu_busy()
        assert r.active().id == folder.name
        queued = r.start(TrainRequest("next", "neon", sets=FAST, device="cuda"))  # never runs here
        assert queued.status == "queued" and queued.device == "cuda:0"
        assert r.stop(queued.id).status == "cancelled"
        snap = r.stop(folder.name, force=True)
        assert snap.status == "interrupted" and not r.gpu_busy()
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        proc.kill()
        import shutil

        for f in (folder, ws.runs / queued.id if queued else folder):
            shutil.rmtree(f, ignore_errors=True)


def test_start_stop_queue_cancel_and_failure(ws):
    r = JobRunner(ws, JobSettings(max_queued=2))
    a = r.start(req("long", "steps=300"))
    assert a.status == "running" and a.pid and a.total == 300  # known before the model loads
    b = r.start(req("hollow", dataset="empty"))  # fails once it runs
    c = r.start(req("later", "steps=2"))
    assert (b.status, b.queue_position, c.status, c.queue_position) == ("queued", 1, "queued", 2)
    with pytest.raises(StudioError, match="queue is full"):
        r.start(req("more"))
    with pytest.raises(StudioError, match="already being trained"):
        r.start(req("long"))
    assert r.stop(c.id).status == "cancelled"
    assert r.snapshot(b.id).queue_position == 1
    live = wait(r, a.id, lambda s: s.step >= 2)  # events read while the process runs
    assert live.status == "running" and live.total == 300 and live.losses[0][0] == 1 and live.eta_s > 0
    assert r.active().id == a.id and not r.gpu_busy()
    assert r.stop(a.id).stopping
    done = wait(r, a.id, lambda s: ended(s) and s.exit_code is not None)  # our child: exit code known
    assert done.status == "stopped" and 2 <= done.step < 300 and done.exit_code == 0 and done.can_resume
    weights = load_file(done.adapter_path)
    assert any(k.endswith("lora_up.weight") and v.abs().sum() > 0 for k, v in weights.items())
    with pytest.raises(StudioError, match="already exists"):
        r.start(req("long"))  # a fresh start would overwrite the library adapter
    failed = wait(r, b.id, lambda s: ended(s) and s.exit_code is not None)  # started by polling once "long" ended
    assert failed.status == "failed" and "has no training images" in failed.error
    assert failed.exit_code == 2 and "error:" in failed.stderr_tail and not failed.can_resume
    assert [s.id for s in r.runs()][:3] == [c.id, b.id, a.id]
    assert r.active() is None


SERVER = """
import signal, sys
# Ctrl-C must end this stand-in wherever the suite was started: a shell's background job starts with
# SIGINT ignored, and Python then installs no KeyboardInterrupt handler of its own.
signal.signal(signal.SIGINT, signal.default_int_handler)
from pathlib import Path
from studio.jobs import JobRunner, TrainRequest
from studio.paths import Workspace
run = JobRunner(Workspace(Path(sys.argv[1]))).start(TrainRequest("kill", "neon", sets=tuple(sys.argv[2:]), device="cpu"))
print(run.id, flush=True)
signal.pause()
"""


def test_server_ctrl_c_keeps_training_then_kill_9_resume_and_reattach(ws):
    # a "server" starts the run, then gets Ctrl-C (SIGINT to its whole process group)
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(ws.root), *FAST, "steps=12", "checkpoint_every=2"],
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    run_id = server.stdout.readline().strip()
    os.killpg(server.pid, signal.SIGINT)
    assert server.wait(timeout=60) != 0
    r2 = JobRunner(ws)  # the restarted server re-attaches to the training, which went on
    seen = wait(r2, run_id, lambda s: s.step >= 3)  # checkpoint of step 2 written
    assert seen.status == "running" and seen.losses and seen.pid
    os.kill(seen.pid, signal.SIGKILL)  # kill -9
    lost = wait(r2, run_id, ended)
    assert lost.status == "interrupted" and lost.can_resume and "Resume" in lost.error
    again = r2.resume(run_id)
    assert again.status == "running" and again.resume_of == run_id and "--resume" in json.loads(
        (ws.runs / again.id / "run.json").read_text())["args"]
    old = r2.snapshot(run_id)
    assert old.resumed_by == again.id and not old.can_resume
    with pytest.raises(StudioError, match="cannot be resumed"):
        r2.resume(run_id)
    r3 = JobRunner(ws)  # another restart while the resumed run trains
    assert r3.snapshot(again.id).status == "running"
    done = wait(r3, again.id, ended)
    assert done.status == "finished" and done.step == 12, done
    assert [step for step, _ in done.losses] == list(range(1, 13))  # the curve continues across the kill
    assert load_file(done.adapter_path)
    assert r2.snapshot(again.id).status == "finished"


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                    max_leaves=6)
GOOD = [ev.Progress(1, 10, 0.5, 1e-3, 2.0, 4.5), ev.Validation(1, 0.2, True),
        ev.Judged(20, 71.0, 1.9, 12.0, None, False, "/r/20.safetensors", 20, "highest"),
        ev.Recommended(20, "r", ((20, 63.6),)), ev.Sample(1, ("a mug",), ("/x/s.png",)),
        ev.Saved(2, "/x", "checkpoint"), ev.Warning_(2, "hot"), ev.Finished(3, "/x/a.safetensors", "last", True, 1.0),
        ev.Failed(3, "boom")]


@settings(max_examples=300, deadline=None)
@given(which=st.sampled_from(GOOD), data=st.data(), value=JSON)
def test_an_events_line_with_a_field_of_any_other_value_is_read_or_skipped_never_raises(which, data, value):
    """A hand-edited or damaged events file: any field replaced by any JSON value. Reading it, the
    run's progress and the page's scorecard (table, plot, verdict, checkpoint list) never raise."""
    import types as _types

    from studio.jobs.events_file import from_json, to_json
    from studio.jobs.progress import Progress
    from studio.ui import scorecard as ui_scorecard

    record = json.loads(to_json(which))
    key = data.draw(st.sampled_from(sorted(record)))
    record[key] = value
    got = from_json(record)
    assert got is None or type(got) is type(which)
    prog = Progress()
    for e in [*GOOD, got] if got is not None else GOOD:
        prog.add(e)
    snap = _types.SimpleNamespace(scorecard=tuple(prog.scorecard), recommended=prog.recommended)
    ui_scorecard.table(snap), ui_scorecard.plot(snap), ui_scorecard.verdict(snap)
    ui_scorecard.checkpoint_choices(snap)


def test_wrong_typed_events_are_skipped_and_good_ones_kept(tmp_path):
    from studio.jobs.events_file import to_json

    path = tmp_path / "events.jsonl"
    good = ev.Judged(20, 71.0, 1.9, 12.0, None, False, "/r/20.safetensors", 20, "highest")
    lines = ['{"type": "judged", "step": 5, "style": 1, "copy": 1, "leak": 1, "val_loss": null, "copying": false, '
             '"checkpoint": "", "recommended": null, "reason": ""}',
             '{"type": "sample", "step": 1, "prompts": 7, "paths": ["a"]}',
             '{"type": "progress", "step": true, "total": 1, "loss": 1, "lr": 1, "it_per_s": 1, "eta_s": 1}',
             '{"type": "validation", "step": 3, "loss": 0.5, "best": false}']  # (an older writer: no overfitting)
    path.write_text("\n".join([*lines, to_json(good)]) + "\n")
    assert read_events(path) == [ev.Validation(3, 0.5, False), good]
