"""Checkpoints compared: prompts (rows) x checkpoints (columns, the base model first) at one seed.

The judged checkpoints (``rounds/step-N.safetensors``) are listed in a throw-away library so the
generation engine draws them exactly as it draws any adapter (:meth:`Engine.grid`), on the
caller's pipeline (the page's engine in the server: :meth:`Engine.borrow`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ..adapters.library import Library
from ..config import GenerateSettings
from ..errors import StudioError
from ..paths import Workspace
from . import scorecard


def checkpoint_grid(engine, name: str, prompts: list[str] | None = None, s: GenerateSettings | None = None,
                    ws: Workspace | None = None, max_columns: int = 8):
    """A :class:`studio.generate.grid.GridResult` drawn on ``engine``'s pipeline (borrowed: see
    :meth:`Engine.borrow`); columns labelled "base model", "step N", ..."""
    from ..generate.tags import LoraWeight

    lib = Library(ws)
    folder = lib.folder(lib.get(name).name)
    rows, _ = scorecard.load(folder)
    steps = [r.step for r in rows if (folder / "rounds" / f"step-{r.step:07d}.safetensors").is_file()]
    if not steps:
        raise StudioError(f"Adapter {name!r} has no judged checkpoints to compare.",
                          "Train it with preview rounds (sample_every > 0), or use `studio grid --lora-set`.")
    if len(steps) > max_columns:  # evenly spread, the last always shown
        steps = [steps[round(i * (len(steps) - 1) / (max_columns - 1))] for i in range(max_columns)]
    prompts = prompts or scorecard.prompts_of(folder)[:4] or ["a photo"]
    with tempfile.TemporaryDirectory() as tmp:
        temp = Workspace(Path(tmp))
        for step in steps:
            sub = temp.adapters / f"step-{step}"
            sub.mkdir(parents=True)
            src = folder / "rounds" / f"step-{step:07d}.safetensors"
            try:
                os.link(src, sub / f"step-{step}.safetensors")
            except OSError:
                shutil.copyfile(src, sub / f"step-{step}.safetensors")
            (sub / "adapter.json").write_text(json.dumps({"name": f"step-{step}", "steps": step}))
        sets = [[]] + [[LoraWeight(f"step-{step}")] for step in steps]
        cols = ["base model", *(f"step {step}" for step in steps)]  # not the throw-away names ("step-5 1")
        with engine.borrow(Library(temp)) as borrowed:
            return borrowed.grid(prompts, sets, s or GenerateSettings(), col_labels=cols)
