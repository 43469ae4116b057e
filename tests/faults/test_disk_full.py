"""Disk full (issue 11, item 2): ENOSPC injected at the write calls during ingest, a
checkpoint, a preview and the adapter save. The files saved before are byte-equal, no
partial file appears under a final name, the error says the disk is full, what was not
saved and what to do, and the work continues once space is "freed" (injection removed).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
from pathlib import Path

import pytest

from studio import events as ev
from studio.config import TrainSettings
from studio.data import manifest as mf
from studio.data.ingest import ingest
from studio.errors import StudioError
from studio.models.loading import load_model
from studio.models.tiny.sample_data import write_style_set
from studio.overlay import apply_sets
from studio.paths import DiskFull, Workspace
from studio.train.loop import Trainer

SETS = ["steps=4", "batch_size=2", "checkpoint_every=2", "sample_every=4", "validate_every=2", "sample_steps=1",
        "optimizer=adamw", "lora.rank=2", "lora.alpha=2", "lora.ff_rank=0", "lora.conv_rank=0"]


def snapshot(root: Path) -> dict[str, str]:
    """Hashes of every file under a final (non-hidden) name."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file() and not any(x.startswith(".") for x in p.relative_to(root).parts)}


class DiskFiller:
    """os.write that fills the disk: the ``nth`` write to a file whose path matches
    ``pattern`` under ``root`` writes half its bytes, then raises ENOSPC (as a full disk does)."""

    def __init__(self, monkeypatch, root: Path, pattern: str, nth: int = 1):
        self.real, self.root, self.pattern, self.left = os.write, str(root.resolve()), re.compile(pattern), nth
        self.before: dict[str, str] | None = None
        monkeypatch.setattr(os, "write", self.write)

    def write(self, fd: int, data) -> int:
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            path = ""
        if path.startswith(self.root) and self.pattern.search(path):
            self.left -= 1
            if self.left <= 0:
                if self.before is None:
                    self.before = snapshot(Path(self.root))
                self.real(fd, bytes(data[: len(data) // 2]))
                raise OSError(errno.ENOSPC, "No space left on device")
        return self.real(fd, data)


def _assert_readable(err: BaseException, not_saved: str) -> None:
    msg = str(err)
    assert "disk is full" in msg and not_saved in msg and "was not saved" in msg, msg
    assert "Free space" in msg and "run the same command again" in msg, msg


def _unchanged(filler: DiskFiller, root: Path) -> None:
    assert filler.before is not None, "the injected ENOSPC never fired"
    after = snapshot(root)
    changed = [k for k, h in filler.before.items() if after.get(k) != h]
    assert not changed, f"files saved before the full disk changed: {changed}"


@pytest.fixture
def world(tmp_path):
    write_style_set(tmp_path / "a", "neon", 6)
    write_style_set(tmp_path / "b", "pastel", 4, seed=5)
    return tmp_path, Workspace(tmp_path / "outputs")


def test_ingest_on_a_full_disk_keeps_the_dataset_and_continues(world, monkeypatch, tally):
    tmp, ws = world
    ingest("ds", [tmp / "a"], ws=ws)
    before_manifest = (ws.datasets / "ds" / "manifest.json").read_bytes()
    filler = DiskFiller(monkeypatch, ws.root, r"/datasets/ds/images/", nth=2)
    with pytest.raises(DiskFull) as e:
        ingest("ds", [tmp / "b"], ws=ws)
    _assert_readable(e.value, "/datasets/ds/images/")
    _unchanged(filler, ws.root)
    assert (ws.datasets / "ds" / "manifest.json").read_bytes() == before_manifest
    monkeypatch.undo()  # space freed
    r = ingest("ds", [tmp / "b"], ws=ws)
    assert len(mf.load("ds", ws).items) == 10 and len(r.accepted) == 4
    tally.record("disk full", "ingest", "ENOSPC at the 2nd image", True, bytes_lost=0)


def _trainer(ws: Workspace, sink=None) -> Trainer:
    return Trainer("style", "ds", load_model("tiny", device="cpu"), apply_sets(TrainSettings(), SETS),
                   sink or ev.ListSink(), ws=ws)


@pytest.mark.parametrize("where, pattern, nth, not_saved", [
    ("checkpoint", r"/checkpoints/\.tmp-[^/]+/lora\.safetensors$", 2, "step-0000004"),  # step 2's is the 1st
    ("preview", r"/samples/\.step-0000004-0\.png\.", 1, "step-0000004-0.png"),
])
def test_training_on_a_full_disk_stops_keeps_the_checkpoint_and_resumes(world, monkeypatch, tally,
                                                                        where, pattern, nth, not_saved):
    tmp, ws = world
    ingest("ds", [tmp / "a"], ws=ws)
    filler = DiskFiller(monkeypatch, ws.root, pattern, nth)
    sink = ev.ListSink()
    with pytest.raises(StudioError) as e:
        _trainer(ws, sink).run()
    _assert_readable(e.value, not_saved)
    assert "Training stopped at step 4" in str(e.value) and "step-0000002" in str(e.value)
    assert "--resume" in str(e.value) and sink.of(ev.Failed)
    _unchanged(filler, ws.root)
    monkeypatch.undo()
    r = _trainer(ws).run(resume=True)
    assert r.steps == 4 and r.adapter.is_file()
    tally.record("disk full", where, f"ENOSPC at the step-4 {where}", True, bytes_lost=0)


def test_adapter_save_on_a_full_disk_keeps_the_old_adapter(world, monkeypatch, tally):
    tmp, ws = world
    ingest("ds", [tmp / "a"], ws=ws)
    first = _trainer(ws).run()
    old = first.adapter.read_bytes()
    filler = DiskFiller(monkeypatch, ws.root, r"/adapters/style/\.style\.safetensors\.")
    with pytest.raises(StudioError) as e:
        _trainer(ws).run(resume=True)  # from the step-4 checkpoint: straight to the adapter save
    _assert_readable(e.value, "style.safetensors")
    _unchanged(filler, ws.root)
    assert first.adapter.read_bytes() == old
    assert not [p for p in first.adapter.parent.iterdir() if p.name.endswith(".tmp")], "temp file left behind"
    monkeypatch.undo()
    r = _trainer(ws).run(resume=True)
    assert r.adapter.read_bytes() != b"" and r.steps == 4
    tally.record("disk full", "adapter save", "ENOSPC at the final adapter", True, bytes_lost=0)
