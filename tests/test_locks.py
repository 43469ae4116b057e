"""Folder locks (``NAME/.lock``): one mechanism for runs/, datasets/NAME/ and adapters/NAME/.
Whatever changes an adapter's folder (a fresh start clearing the last run, Use this checkpoint,
rename, delete) is refused while a training it does not know of holds the folder: a training
started from the CLI or another server, a process this one cannot see."""

import multiprocessing as mp
import os

import pytest
import torch
from safetensors.torch import save_file

from studio.adapters import busy
from studio.adapters.library import Library
from studio.errors import StudioError
from studio.jobs import launch
from studio.paths import LOCK, Workspace, atomic_write_bytes, flocked


def _hold(folder, ready, done):  # another process: a training the caller cannot see
    with busy.training(folder):
        ready.set()
        done.wait(30)


@pytest.fixture
def held_elsewhere():
    """``hold(folder)`` makes another process train into ``folder``; returns ``release()``, which
    returns once that process has ended (its lock released)."""
    ctx = mp.get_context("spawn")
    procs = []

    def hold(folder):
        ready, done = ctx.Event(), ctx.Event()
        p = ctx.Process(target=_hold, args=(folder, ready, done))
        p.start()
        procs.append((p, done))
        assert ready.wait(60), "the holding process did not start"

        def release():
            done.set()
            p.join(30)
            assert p.exitcode == 0

        return release

    yield hold
    for p, done in procs:
        done.set()
        p.join(10)
        if p.is_alive():
            p.kill()


def _adapter(ws: Workspace, name: str) -> None:
    lib = Library(ws)
    sd = {"lora_unet_x.lora_down.weight": torch.ones(2, 4), "lora_unet_x.lora_up.weight": torch.ones(4, 2)}
    lib.add(name, sd, {"ss_network_dim": "2"}, {"family": "tiny"})
    folder = lib.folder(name)
    (folder / "checkpoints" / "step-0000010").mkdir(parents=True)
    save_file(sd, str(folder / "checkpoints" / "step-0000010" / "lora.safetensors"))
    (folder / "samples").mkdir()
    (folder / "samples" / "x.png").write_bytes(b"png")


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name != LOCK)


def test_nothing_changes_an_adapter_that_another_process_trains(tmp_path, held_elsewhere):
    ws = Workspace(tmp_path / "outputs")
    _adapter(ws, "shop")
    folder = ws.adapters / "shop"
    before = _files(folder)
    release = held_elsewhere(folder)
    lib = Library(ws)
    for change, words in [(lambda: launch.clear_leftovers("shop", ws), "a new training of it was not started"),
                          (lambda: lib.rename("shop", "shop2"), "it was not renamed"),
                          (lambda: lib.delete("shop"), "it was not deleted"),
                          (lambda: busy.check_idle(folder, "x"), ": x")]:
        with pytest.raises(StudioError, match="^Adapter 'shop' is in use right now .*" + words):
            change()
        assert _files(folder) == before and lib.names() == ["shop"]
    release()
    launch.clear_leftovers("shop", ws)  # free again: the last run's checkpoints go
    assert not (folder / "checkpoints").exists() and not (folder / "samples").exists()
    lib.rename("shop", "shop2")
    lib.delete("shop2")
    assert lib.names() == []


def test_the_server_refuses_a_fresh_start_of_a_name_the_cli_trains(tmp_path, held_elsewhere):
    from studio.jobs.runner import JobRunner
    from studio.jobs.types import TrainRequest
    from studio.models.tiny.sample_data import write_style_set
    from studio.data.ingest import ingest

    ws = Workspace(tmp_path / "outputs")
    write_style_set(tmp_path / "neon", "neon", 4)
    ingest("neon", [tmp_path / "neon"], ws=ws)
    _adapter(ws, "shop")
    before = _files(ws.adapters / "shop")
    held_elsewhere(ws.adapters / "shop")
    runner = JobRunner(ws)
    with pytest.raises(StudioError, match="in use right now .*a new training of it was not started"):
        runner.start(TrainRequest(adapter="shop", dataset="neon", model="tiny", device="cpu", replace=True))
    assert _files(ws.adapters / "shop") == before and runner.runs() == []


@pytest.mark.parametrize("planted", ["link-to-file", "dangling-link", "link-to-folder"])
def test_a_link_in_the_locks_place_is_never_followed(tmp_path, planted):
    folder, outside = tmp_path / "adapters" / "shop", tmp_path / "outside"
    folder.mkdir(parents=True)
    outside.mkdir()
    target = {"link-to-file": outside / "victim", "dangling-link": outside / "made-through-link",
              "link-to-folder": outside}[planted]
    if planted == "link-to-file":
        target.write_bytes(b"keep")
    os.symlink(target, folder / LOCK)
    with busy.training(folder):  # a real lock in its place, held
        assert not (folder / LOCK).is_symlink() and (folder / LOCK).is_file()
        with pytest.raises(StudioError, match="in use right now"):
            busy.check_idle(folder, "x")
    assert sorted(p.name for p in outside.iterdir()) == (["victim"] if planted == "link-to-file" else [])
    if planted == "link-to-file":
        assert target.read_bytes() == b"keep"


def test_a_folder_in_the_locks_place_is_a_clear_error(tmp_path):
    (tmp_path / LOCK).mkdir()
    with pytest.raises(StudioError, match="cannot be used as a lock file"):
        with flocked(tmp_path):
            pass


def test_a_change_to_an_adapter_gone_meanwhile_never_makes_its_folder_again(tmp_path):
    ws = Workspace(tmp_path / "outputs")
    _adapter(ws, "shop")
    folder = ws.adapters / "shop"
    lib = Library(ws)
    lib.record("shop")
    os.rename(folder, ws.adapters / "elsewhere")  # renamed by another process after the name was read
    with pytest.raises(StudioError, match="'shop' is gone"):
        with busy.holding(folder, "x"):
            pass
    assert not folder.exists()


def test_a_folder_left_with_only_its_lock_is_a_free_name(tmp_path):
    """A training that failed before it wrote anything leaves adapters/NAME/.lock: no adapter, so
    an import, blend, copy or rename to NAME is not refused with 'already exists'."""
    ws = Workspace(tmp_path / "outputs")
    _adapter(ws, "shop")
    with busy.training(ws.adapters / "failed"):
        with pytest.raises(StudioError, match="already exists"):  # held: a training is starting
            Library(ws).duplicate("shop", "failed")
    Library(ws).duplicate("shop", "failed")
    assert Library(ws).names() == ["failed", "shop"]


def test_the_cli_refuses_to_train_a_name_held_elsewhere_and_changes_nothing(tmp_path, held_elsewhere):
    from conftest import run_cli

    ws = Workspace(tmp_path / "outputs")
    _adapter(ws, "shop")
    before = _files(ws.adapters / "shop")
    held_elsewhere(ws.adapters / "shop")
    from studio.data.ingest import ingest
    from studio.models.tiny.sample_data import write_style_set

    write_style_set(tmp_path / "neon", "neon", 4)
    ingest("neon", [tmp_path / "neon"], ws=ws)
    r = run_cli("train", "--dataset", "neon", "--name", "shop", "--model", "tiny", "--device", "cpu",
                "--set", "steps=2", env={"STUDIO_OUTPUTS": str(ws.root)})
    assert r.returncode != 0 and "is in use right now" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert _files(ws.adapters / "shop") == before


def test_a_queued_run_waits_while_a_terminal_trains_its_adapter_and_the_next_one_goes(tmp_path, held_elsewhere,
                                                                                        monkeypatch):
    """A run queued from the page whose adapter a terminal's training holds when its turn comes waits
    (it used to be marked failed), says why, lets the run behind it go, and starts once that ends."""
    from test_jobs import FAST, wait

    from studio.config import JobSettings
    from studio.data.ingest import ingest
    from studio.jobs.runner import JobRunner
    from studio.jobs.types import TrainRequest
    from studio.models.tiny.sample_data import write_style_set
    from studio.ui.train_view import status_sentence

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # inherited by the training processes
    ws = Workspace(tmp_path / "outputs")
    write_style_set(tmp_path / "neon", "neon", 4)
    ingest("neon", [tmp_path / "neon"], ws=ws)
    runner = JobRunner(ws, JobSettings(max_queued=3))

    def start(name, steps):
        return runner.start(TrainRequest(name, "neon", sets=(*FAST, f"steps={steps}"), device="cpu"))

    first, held, other = start("first", 300), start("held", 2), start("other", 2)
    assert (first.status, held.status, other.status) == ("running", "queued", "queued")
    release = held_elsewhere(ws.adapters / "held")  # a terminal starts training "held" meanwhile
    runner.stop(first.id)
    done = wait(runner, other.id, lambda s: s.status not in ("queued", "running"))
    assert done.status == "finished", done.error
    # (once the process of "other" has exited too: its device is free)
    waiting = wait(runner, held.id, lambda s: s.adapter_in_use or s.status != "queued")
    assert waiting.status == "queued" and waiting.adapter_in_use and waiting.pid is None
    assert "is in use right now" in status_sentence(waiting) and "starts once that has ended" in status_sentence(waiting)
    release()
    done = wait(runner, held.id, lambda s: s.status not in ("queued", "running"))
    assert done.status == "finished" and not done.adapter_in_use, done.error
    assert (ws.adapters / "held" / "held.safetensors").is_file()


# ---------------------------------------------------------------- copying an adapter while it is rewritten
def _pair(k: int) -> tuple[bytes, dict]:
    """Generation ``k`` of an adapter: weights filled with k, a record saying k."""
    from safetensors.torch import save

    sd = {"lora_unet_x.lora_down.weight": torch.full((2, 4), float(k)),
          "lora_unet_x.lora_up.weight": torch.full((4, 2), float(k))}
    return save(sd, metadata={"ss_network_dim": "2", "gen": str(k)}), {"family": "tiny", "steps": k}


def _copied_generation(ws: Workspace, name: str) -> tuple[int, int]:
    """(the record's steps, the weights' value) of a copy: equal when the two were copied as a pair."""
    import json

    from safetensors import safe_open

    rec = Library(ws).get(name)
    with safe_open(str(rec.file), "pt") as f:
        value = int(f.get_tensor("lora_unet_x.lora_down.weight")[0, 0])
    return json.loads((rec.file.parent / "adapter.json").read_text())["steps"], value


def test_a_copy_taken_between_the_record_and_the_weights_of_a_rewrite_waits_for_the_weights(tmp_path):
    """A training ends by writing the adapter's record, then its weights (its lock held, so a copy
    does not take the lock: it would be refused for the whole training). A copy taken in between
    must not pair the new record with the old weights: it waits until the weights are there."""
    import json
    import threading

    from studio.adapters.library import WEIGHTS_HASH, weights_hash, write_pair

    ws = Workspace(tmp_path / "outputs")
    folder = ws.adapters / "shop"
    write_pair(folder, "shop", *_pair(1))
    weights, info = _pair(2)  # the writer has written generation 2's record (naming its weights), not yet them
    (folder / "adapter.json").write_text(json.dumps({**info, WEIGHTS_HASH: weights_hash(weights)}))
    late = threading.Timer(0.5, lambda: atomic_write_bytes(folder / "shop.safetensors", weights))  # as writers do
    with busy.training(folder):  # the writer holds the lock (a training, for its whole run)
        late.start()
        try:
            Library(ws).duplicate("shop", "copy")
        finally:
            late.join()
    assert _copied_generation(ws, "copy") == (2, 2)


def test_a_record_whose_weights_never_came_is_copied_as_it_is_once_nobody_writes(tmp_path, monkeypatch):
    """A writer killed between its two writes leaves a record naming weights that are not there, and
    its lock released. While someone holds the lock, the copy waits for the pair and, when it never
    comes, is refused with nothing left behind; once nobody does, nobody is writing: the adapter is what
    is there, and it is copied as it is (its copy's record naming its own weights)."""
    import json

    from studio.adapters.library import WEIGHTS_HASH, weights_hash

    ws = Workspace(tmp_path / "outputs")
    _adapter(ws, "shop")
    folder = ws.adapters / "shop"
    rec = json.loads((folder / "adapter.json").read_text())
    (folder / "adapter.json").write_text(json.dumps({**rec, WEIGHTS_HASH: "0" * 64}))
    before = sorted(p.name for p in ws.adapters.iterdir())
    read_pair = Library.read_pair
    monkeypatch.setattr(Library, "read_pair", lambda self, n: read_pair(self, n, wait_s=0.5, pause=0.05))
    with busy.training(folder):
        with pytest.raises(StudioError, match="being written right now and did not settle") as e:
            Library(ws).duplicate("shop", "copy")
        assert "Try again" in e.value.fix
        assert sorted(p.name for p in ws.adapters.iterdir()) == before
    Library(ws).duplicate("shop", "copy")
    copied = json.loads((ws.adapters / "copy" / "adapter.json").read_text())
    assert copied[WEIGHTS_HASH] == weights_hash((ws.adapters / "copy" / "copy.safetensors").read_bytes())


def test_an_adapter_written_before_records_named_their_weights_is_still_copied(tmp_path):
    import json

    from studio.adapters.library import WEIGHTS_HASH

    ws = Workspace(tmp_path / "outputs")
    _adapter(ws, "shop")
    rec = json.loads((ws.adapters / "shop" / "adapter.json").read_text())
    del rec[WEIGHTS_HASH]
    (ws.adapters / "shop" / "adapter.json").write_text(json.dumps(rec))
    Library(ws).duplicate("shop", "copy")
    assert Library(ws).names() == ["copy", "shop"]


def test_copies_taken_while_a_writer_keeps_rewriting_the_adapter_always_pair_record_and_weights(tmp_path):
    """Another process rewrites the adapter again and again, as trainings and "use this checkpoint"
    do (record, then weights); every copy taken meanwhile holds one generation's record and weights."""
    ws = Workspace(tmp_path / "outputs")
    from studio.adapters.library import write_pair

    write_pair(ws.adapters / "shop", "shop", *_pair(0))
    ctx = mp.get_context("spawn")
    started, stop = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_rewrite, args=(ws.root, started, stop))
    p.start()
    try:
        assert started.wait(60), "the writing process did not start"
        lib = Library(ws)
        for i in range(25):
            lib.duplicate("shop", f"copy{i}")
    finally:
        stop.set()
        p.join(30)
    got = [_copied_generation(ws, f"copy{i}") for i in range(25)]
    assert all(steps == value for steps, value in got), got
    assert len({steps for steps, _ in got}) > 1, "the writer never rewrote the adapter during the copies"


def _rewrite(root, started, stop) -> None:  # another process: record, then weights, generation after generation
    import time

    from studio.adapters.library import write_pair

    folder = Workspace(root).adapters / "shop"
    k = 0
    while not stop.is_set():
        started.set()
        k += 1
        with flocked(folder, create=False):  # as writers do (and, between two, the lock is free)
            write_pair(folder, "shop", *_pair(k))
        time.sleep(0.002)


def test_a_rename_that_fails_at_its_last_step_leaves_the_adapter_as_it_was(tmp_path, monkeypatch):
    """The new name's weights and record are written in the folder, then the folder is renamed: when
    that fails, the old record comes back and the new file goes, so the adapter reads (and copies) as
    before (review, 2026-12-08: a failed rename left a record naming weights that were not there)."""
    import json

    ws = Workspace(tmp_path / "outputs")
    _adapter(ws, "shop")
    folder = ws.adapters / "shop"
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != LOCK}

    def refused(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "rename", refused)
    with pytest.raises(OSError):
        Library(ws).rename("shop", "renamed")
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != LOCK} == files
    Library(ws).duplicate("shop", "copy")
    assert json.loads((ws.adapters / "copy" / "adapter.json").read_text())["duplicated_from"] == "shop"
