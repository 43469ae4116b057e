"""The adapter library: every adapter under ``outputs/adapters/<name>/``.

One folder per adapter: ``<name>.safetensors`` (canonical kohya layout, alphas explicit),
``adapter.json`` (the studio's record: family, base model + hash, steps, trigger, ...),
optionally ``preview.png``, ``best.safetensors``, ``samples/``, ``checkpoints/``.
Trained, imported and blended adapters share this record; unknown fields are empty.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import StudioError
from ..paths import Workspace

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")  # \Z: "$" would let a trailing newline in
# Windows device names: a folder called CON cannot be copied to a Windows machine.
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


def check_name(name: str) -> str:
    """Adapter names become folder and file names: letters, digits, '-' and '_' only."""
    if not isinstance(name, str) or not _NAME.match(name) or name.lower() in _RESERVED:
        shown = repr(name)[:80]
        raise StudioError(f"Adapter name {shown} is not allowed.",
                          "Use 1-64 letters, digits, '-' or '_', starting with a letter or digit "
                          "(no paths, no hidden or reserved names such as CON).")
    return name


@dataclass(frozen=True)
class LayerGroup:
    """Rank and alpha of one layer type (modules of a type may differ; min/max kept)."""
    modules: int
    rank: int  # the most common rank
    alpha: float  # alpha of a module with that rank


@dataclass(frozen=True)
class AdapterRecord:
    name: str
    file: Path  # the .safetensors the engine and exports read
    family: str = ""  # tiny | sd1 | sd2 | sdxl | "" (unknown)
    base: str = ""  # base model reference it was trained on
    base_hash: str = ""  # studio.models.hashing.weights_hash of that base UNet
    source: str = ""  # trained | imported | blended
    steps: int | None = None
    created: str = ""
    trigger: str = ""
    best_val: float | None = None
    preview: Path | None = None
    size_bytes: int = 0
    layers: dict[str, LayerGroup] = field(default_factory=dict)  # unet_attention/unet_ff/unet_conv/te/te1/te2
    metadata: dict[str, str] = field(default_factory=dict)  # the file's own header metadata (strings)

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(self.layers)


# ---------------------------------------------------------------- changing the library
def _stage(root: Path) -> Path:
    import tempfile

    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=root, prefix=".staging-"))  # hidden: names() never lists it


def _write_adapter(folder: Path, name: str, sd: dict, metadata: dict[str, str], info: dict) -> None:
    from safetensors.torch import save

    from ..paths import atomic_write_bytes

    atomic_write_bytes(folder / f"{name}.safetensors", save(sd, metadata=metadata))
    atomic_write_bytes(folder / "adapter.json", json.dumps(info, indent=1, default=str).encode())


def _retitled(metadata: dict[str, str], name: str) -> dict[str, str]:
    return {**metadata, "ss_output_name": name, "modelspec.title": name}


class _Changes:
    """rename / delete / duplicate / add, mixed into :class:`Library`. Each change is atomic:
    the new state appears by one ``os.rename`` of a folder, or not at all."""

    def _free(self, name: str) -> Path:
        folder = self.folder(name)
        if folder.exists():
            raise StudioError(f"An adapter named {name!r} already exists.", "Pick another name.")
        return folder

    def read(self, name: str) -> tuple[dict, dict[str, str]]:
        """The canonical tensors and header metadata of a library adapter."""
        from safetensors import safe_open

        file = self.get(name).file
        with safe_open(str(file), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})

    def add(self, name: str, sd: dict, metadata: dict[str, str], info: dict) -> Path:
        """Write a new adapter (imports, blends): staged in a hidden folder, then renamed into place."""
        import os
        import shutil

        target = self._free(check_name(name))
        tmp = _stage(self.root)
        try:
            _write_adapter(tmp, name, sd, _retitled(metadata, name), {**info, "name": name})
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target / f"{name}.safetensors"

    def rename(self, old: str, new: str) -> AdapterRecord:
        import os

        sd, meta = self.read(old)
        target, folder = self._free(check_name(new)), self.folder(old)
        info = {**_read_json(folder / "adapter.json"), "name": new}
        _write_adapter(folder, new, sd, _retitled(meta, new), info)  # old file still there: folder stays valid
        try:
            os.rename(folder, target)
        except BaseException:
            (folder / f"{new}.safetensors").unlink(missing_ok=True)
            raise
        (target / f"{old}.safetensors").unlink(missing_ok=True)
        return self.get(new)

    def duplicate(self, name: str, new: str) -> AdapterRecord:
        import os
        import shutil

        sd, meta = self.read(name)
        target, folder = self._free(check_name(new)), self.folder(name)
        tmp = _stage(self.root)
        try:
            preview = folder / "preview.png"
            if preview.is_file():
                shutil.copy2(preview, tmp / "preview.png")
            info = {**_read_json(folder / "adapter.json"), "name": new, "duplicated_from": name}
            _write_adapter(tmp, new, sd, _retitled(meta, new), info)
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self.get(new)

    def delete(self, name: str) -> None:
        import os
        import shutil

        self.get(name)  # exists, or a StudioError listing the known names
        trash = _stage(self.root) / name
        os.rename(self.folder(name), trash)  # gone from the library in one step
        shutil.rmtree(trash.parent, ignore_errors=True)


class Library(_Changes):
    def __init__(self, ws: Workspace | None = None):
        self.ws = ws or Workspace()

    @property
    def root(self) -> Path:
        return self.ws.adapters

    def folder(self, name: str) -> Path:
        return self.root / check_name(name)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and _NAME.match(p.name) and (p / f"{p.name}.safetensors").is_file())

    def list(self) -> list[AdapterRecord]:
        return [self.get(n) for n in self.names()]

    def get(self, name: str) -> AdapterRecord:
        folder = self.folder(name)
        file = folder / f"{name}.safetensors"
        if not file.is_file():
            known = ", ".join(self.names()) or "none yet"
            raise StudioError(f"No adapter named {name!r}.", f"Known adapters: {known}.")
        from .inspect import read_header_summary

        info = _read_json(folder / "adapter.json")
        summary = read_header_summary(file)
        preview = folder / "preview.png"
        return AdapterRecord(
            name=name, file=file, family=info.get("family") or summary.family, base=info.get("base", ""),
            base_hash=info.get("base_hash", "") or summary.metadata.get("studio_base_hash", ""),
            source=info.get("source", "trained" if info else ""), steps=info.get("steps"),
            created=info.get("created", ""), trigger=info.get("trigger", ""), best_val=info.get("best_val"),
            preview=preview if preview.is_file() else None, size_bytes=file.stat().st_size,
            layers=summary.layers, metadata=summary.metadata)


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}
