"""Reading one library entry into an :class:`AdapterRecord` — never raising.

A folder the studio cannot fully read (a file of junk bytes, a truncated or crafted header,
keys that are not the canonical kohya layout, a missing or broken ``adapter.json``, a family that
is unknown or disagrees with the file) becomes a record with ``damaged`` set to the reason.
Every consumer (CLI table, page cards, pickers, the engine) checks ``record.ok``; a damaged entry
is listed with its reason and never loaded.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..text import shown

log = logging.getLogger(__name__)

CANONICAL_KEY = re.compile(r"^lora_(unet|te|te1|te2)_[A-Za-z0-9_]+\.(lora_down\.weight|lora_up\.weight|alpha)\Z")
MAX_REASON = 300


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
    damaged: str = ""  # why the entry cannot be used ("" = usable); printable, control characters escaped

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(self.layers)

    @property
    def ok(self) -> bool:
        return not self.damaged

    @property
    def shown_name(self) -> str:
        return printable(self.name, 80)


def printable(text: object, limit: int = MAX_REASON) -> str:
    """``text`` safe to print in a terminal or a page (control characters escaped, see
    :func:`studio.text.shown`), cut to ``limit`` characters."""
    return shown(text, limit=limit)


class Damaged(Exception):
    """Internal: why an entry cannot be used (``why``), and for a library entry what to do (``fix``)."""

    def __init__(self, why: str, fix: str = ""):
        super().__init__(why)
        self.why, self.fix = why, fix

    def __str__(self) -> str:
        return f"{self.why}; {self.fix}" if self.fix else self.why


def read_info(folder: Path) -> dict:
    path = folder / "adapter.json"
    if not path.is_file():
        raise Damaged("adapter.json is missing (a half-written adapter: a training, import or copy was cut short)")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise Damaged("adapter.json is nested too deeply to read") from None
    except (OSError, ValueError) as e:
        raise Damaged(f"adapter.json cannot be read ({type(e).__name__}: {e})") from None
    if not isinstance(value, dict):
        raise Damaged("adapter.json is not a JSON object")
    return value


def _check_keys(header: dict) -> None:
    names = [k for k in header if k != "__metadata__"]
    foreign = next((k for k in names if not CANONICAL_KEY.match(k)), None)
    if foreign is not None:
        raise Damaged(f"tensor {foreign[:80]!r} is not in the studio's kohya layout (a file copied in by hand?)",
                      "import the original file with `studio import`")
    downs = {k[: -len(".lora_down.weight")] for k in names if k.endswith(".lora_down.weight")}
    ups = {k[: -len(".lora_up.weight")] for k in names if k.endswith(".lora_up.weight")}
    if downs != ups:
        odd = sorted(downs ^ ups)[0]
        raise Damaged(f"module {odd[:80]} has only one of its two LoRA matrices")
    if not downs:
        raise Damaged("the file holds no LoRA modules")


def _family(info: dict, summary) -> str:
    from ..models.family import FAMILIES
    from .canonical import FAMILY_LABEL

    said, declared = info.get("family") or "", summary.family
    if not isinstance(said, str) or (said and said not in FAMILIES):
        raise Damaged(f"adapter.json names an unknown base family {str(said)[:40]!r} "
                      f"(known: {', '.join(FAMILIES)})")
    if said and declared and said != declared:
        raise Damaged(f"adapter.json says {FAMILY_LABEL[said]} but the file says {FAMILY_LABEL[declared]}")
    return said or declared


def _number(value, kind):
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


def check_layout(file: Path):
    """The header summary (:mod:`.inspect`) of a file in the library's own layout: header, caps and
    keys checked as for every library entry; :class:`Damaged` with the reason otherwise."""
    from ..config import ImportSettings
    from ..errors import StudioError
    from . import validate
    from .inspect import read_header_summary

    try:
        header, _, _ = validate.read_header(file, ImportSettings())
    except StudioError as e:
        raise Damaged(getattr(e, "why", None) or str(e)) from None
    _check_keys(header)
    return read_header_summary(file)


def _read(folder: Path, name: str, file: Path):
    summary = check_layout(file)
    info = read_info(folder)
    family = _family(info, summary)
    preview = folder / "preview.png"
    text = lambda k: info.get(k) if isinstance(info.get(k), str) else ""  # noqa: E731
    return AdapterRecord(
        name=name, file=file, family=family, base=text("base"),
        base_hash=text("base_hash") or summary.metadata.get("studio_base_hash", ""),
        source=text("source") or ("trained" if info else ""), steps=_number(info.get("steps"), int),
        created=text("created"), trigger=text("trigger"), best_val=_number(info.get("best_val"), (int, float)),
        preview=preview if preview.is_file() else None, size_bytes=file.stat().st_size,
        layers=summary.layers, metadata=summary.metadata)


def read_record(folder: Path, name: str, valid_name: bool) -> AdapterRecord:
    """The record of entry ``folder`` (named ``name``); damaged with the reason if anything is wrong."""
    file = folder / f"{name}.safetensors"
    size = file.stat().st_size if file.is_file() else 0
    if not valid_name:
        why = ("the folder's name is not a valid adapter name (1-64 letters, digits, '-', '_'); "
               "rename the folder or move it out of the library")
        return AdapterRecord(name=name, file=file, size_bytes=size, damaged=printable(why))
    try:
        return _read(folder, name, file)
    except Exception as e:  # noqa: BLE001 - anything a damaged file can raise becomes its reason
        from ..errors import StudioError

        why = str(e) if isinstance(e, Damaged) else e.what if isinstance(e, StudioError) else \
            f"{type(e).__name__}: {e}"
        log.debug("adapter %r is damaged: %s", name, why)
        return AdapterRecord(name=name, file=file, size_bytes=size, damaged=printable(why))
