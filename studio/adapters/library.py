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


class Library:
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
