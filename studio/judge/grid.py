"""Checkpoints compared: prompts (rows) x checkpoints (columns, the base model first) at one seed.

The judged checkpoints (``rounds/step-N.safetensors``) are listed in a throw-away library so the
generation engine draws them exactly as it draws any adapter (:meth:`Engine.grid`), on the
caller's pipeline (the page's engine in the server: :meth:`Engine.borrow`).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..adapters.library import Library, staging_folder
from ..config import GenerateSettings
from ..errors import StudioError
from ..paths import Workspace
from . import scorecard
from .use import checked_round


def checkpoint_grid(engine, name: str, prompts: list[str] | None = None, s: GenerateSettings | None = None,
                    ws: Workspace | None = None, max_columns: int = 8):
    """A :class:`studio.generate.grid.GridResult` drawn on ``engine``'s pipeline (borrowed: see
    :meth:`Engine.borrow`); columns labelled "base model", "step N", ..."""
    from ..generate.tags import LoraWeight

    lib = Library(ws)
    record = lib.get(name)
    folder = lib.folder(record.name)
    rows, _ = scorecard.load(folder)
    kept = [(r.step, path) for r in rows if (path := scorecard.weights(folder, r))]
    if not kept:
        raise StudioError(f"Adapter {name!r} has no judged checkpoints to compare.",
                          "Train it with preview rounds (sample_every > 0), or use `studio grid --lora-set`.")
    if len(kept) > max_columns:  # evenly spread, the last always shown
        kept = [kept[round(i * (len(kept) - 1) / (max_columns - 1))] for i in range(max_columns)]
    for step, path in kept:  # the gate of Use this checkpoint, named by its step (not the throw-away name)
        checked_round(path, step, record.family, "Nothing was compared: train the adapter again to compare "
                      "its checkpoints (the others can still be used one by one).")
    # distinct rows: a set whose captions repeat is judged on repeats (at other seeds), which one seed
    # would draw as identical rows (newcomer review, 2026-12-07: four rows of "a photo in X style")
    prompts = prompts or list(dict.fromkeys(scorecard.prompts_of(folder)))[:4] or ["a photo"]
    # The throw-away library lives in a staging folder of the library itself: inside outputs/, never
    # listed, and removed by the next start if this process dies before it does (adapters/stale.py).
    tmp = staging_folder(lib.root)
    try:
        temp = Workspace(tmp)
        for step, src in kept:
            sub = temp.adapters / f"step-{step}"
            sub.mkdir(parents=True)
            try:
                os.link(src, sub / f"step-{step}.safetensors")
            except OSError:
                shutil.copyfile(src, sub / f"step-{step}.safetensors")
            (sub / "adapter.json").write_text(json.dumps({"name": f"step-{step}", "steps": step}))
        sets = [[]] + [[LoraWeight(f"step-{step}")] for step, _ in kept]
        cols = ["base model", *(f"step {step}" for step, _ in kept)]  # not the throw-away names ("step-5 1")
        with engine.borrow(Library(temp)) as borrowed:
            return borrowed.grid(prompts, sets, s or GenerateSettings(), col_labels=cols)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
