""""Use this checkpoint": a judged checkpoint becomes the adapter, or a new named adapter.

The round's file passes the same gate as every library entry (header, caps, the library's own
layout, the adapter's base family, finite values) before anything is written, and nothing is
written while a training holds the adapter (:mod:`studio.adapters.busy`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..adapters import busy
from ..adapters.library import Library, check_name
from ..adapters.records import Damaged, check_layout, read_info
from ..errors import StudioError
from ..paths import Workspace, atomic_write_bytes
from . import scorecard
from .session import preview_path


def checkpoint_file(lib: Library, name: str, step: int) -> Path:
    folder = lib.folder(name)
    rows, _ = scorecard.load(folder)
    row = next((r for r in rows if r.step == step), None)
    if row is None or not row.adapter:
        steps = ", ".join(str(r.step) for r in rows if r.adapter) or "none"
        raise StudioError(f"Adapter {name!r} has no judged checkpoint at step {step}.",
                          f"Judged checkpoints: {steps}.")
    path = scorecard.weights(folder, row)
    if path is None:
        raise StudioError(f"The weights of step {step} are missing (or not a plain file) in "
                          f"{folder / 'rounds'}.", "Pick another checkpoint.")
    return path


def checked_round(path: Path, step: int, family: str, fix: str = "Pick another checkpoint.") -> tuple[dict, dict[str, str]]:
    """The tensors and metadata of a round's file, every check of a library entry and of an import
    passed (header, caps, layout, finite values, the modules' shapes fit the adapter's base model).
    Used, compared or judged, a round's file is trusted only through this."""
    from ..adapters import validate
    from ..adapters.canonical import FAMILY_LABEL
    from ..adapters.importer import fitted
    from ..config import ImportSettings

    def refused(why: str) -> StudioError:
        return StudioError(f"The weights of step {step} cannot be used: {why}.", fix)

    try:
        check_layout(path)
        sd, meta = validate.load_tensors(path, ImportSettings())
        validate.check_values(path, sd, ImportSettings())
        _, fits = fitted(path, sd, meta)
    except Damaged as e:
        raise refused(e.why) from None  # (a library entry's fix, "import the original file", is not a round's)
    except StudioError as e:
        raise refused(getattr(e, "why", None) or e.what) from None
    if family and fits != family:
        raise refused(f"they are for {FAMILY_LABEL[fits]}, the adapter is for {FAMILY_LABEL[family]}")
    return sd, meta


def use_checkpoint(name: str, step: int, new_name: str | None = None, ws: Workspace | None = None) -> str:
    """Write checkpoint ``step`` of adapter ``name`` as the adapter itself (``new_name`` None) or as a
    new library adapter; its before|after preview goes with it. Returns the adapter's name."""
    lib = Library(ws)
    record = lib.get(name)  # exists, or a StudioError listing the known names
    folder = lib.folder(name)
    if new_name is not None:
        check_name(new_name)
    with busy.holding(folder, "the checkpoint was not used"):  # (and no training starts meanwhile)
        sd, meta = checked_round(checkpoint_file(lib, name, step), step, record.family)
        preview = preview_path(folder, step, 0)
        info = {**read_info(folder), "steps": step, "chosen": f"step {step}"}
        if new_name is None:
            lib.overwrite(name, sd, meta, info)
            if preview.is_file() and not preview.is_symlink():
                atomic_write_bytes(folder / "preview.png", preview.read_bytes())
            return name
        info.pop("renamed_from", None)  # (a new adapter: the earlier names are the original's own)
        lib.add(new_name, sd, meta, {**info, "checkpoint_of": name})
        if preview.is_file() and not preview.is_symlink():
            shutil.copyfile(preview, lib.folder(new_name) / "preview.png")
        return new_name

