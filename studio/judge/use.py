""""Use this checkpoint": a judged checkpoint becomes the adapter, or a new named adapter."""

from __future__ import annotations

import json
import shutil

from ..adapters.library import Library, check_name
from ..errors import StudioError
from ..paths import Workspace, atomic_write_bytes
from . import scorecard
from .session import preview_path


def checkpoint_file(lib: Library, name: str, step: int):
    rows, _ = scorecard.load(lib.folder(name))
    row = next((r for r in rows if r.step == step), None)
    if row is None or not row.adapter:
        steps = ", ".join(str(r.step) for r in rows if r.adapter) or "none"
        raise StudioError(f"Adapter {name!r} has no judged checkpoint at step {step}.",
                          f"Judged checkpoints: {steps}.")
    path = lib.folder(name) / "rounds" / f"step-{step:07d}.safetensors"
    if not path.is_file():
        raise StudioError(f"The weights of step {step} are missing ({path}).", "Pick another checkpoint.")
    return path


def use_checkpoint(name: str, step: int, new_name: str = "", ws: Workspace | None = None) -> str:
    """Write checkpoint ``step`` of adapter ``name`` as the adapter itself (``new_name`` empty) or as a
    new library adapter; its before|after preview goes with it. Returns the adapter's name."""
    lib = Library(ws)
    lib.get(name)  # exists, or a StudioError listing the known names
    src, folder = checkpoint_file(lib, name, step), lib.folder(name)
    preview = preview_path(folder, step, 0)
    info = json.loads((folder / "adapter.json").read_text(encoding="utf-8"))
    info = {**info, "steps": step, "chosen": f"step {step}"}
    if not new_name:
        atomic_write_bytes(folder / f"{name}.safetensors", src.read_bytes())
        if preview.is_file():
            atomic_write_bytes(folder / "preview.png", preview.read_bytes())
        atomic_write_bytes(folder / "adapter.json", json.dumps(info, indent=1, default=str).encode())
        return name
    from safetensors.torch import load_file
    from safetensors import safe_open

    check_name(new_name)
    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata() or {})
    lib.add(new_name, load_file(str(src)), meta, {**info, "checkpoint_of": name})
    if preview.is_file():
        shutil.copyfile(preview, lib.folder(new_name) / "preview.png")
    return new_name
