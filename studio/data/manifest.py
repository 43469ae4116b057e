"""A dataset on disk: ``outputs/datasets/<name>/images/*.png`` + ``manifest.json``."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..adapters.library import _RESERVED as RESERVED_NAMES
from ..errors import StudioError
from ..paths import Workspace, atomic_write_bytes, flocked

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")  # \Z: "$" would let a trailing newline in


@dataclass
class Item:
    file: str  # stored copy, relative to the dataset folder (content-addressed name)
    source: str  # the name the user gave it
    sha256: str  # of the decoded pixels: exact duplicates share it
    width: int
    height: int
    caption: str
    caption_source: str  # "sidecar" | "template" | "edited" | "captioner"
    split: str = "train"  # "train" | "val"
    notes: list[str] = field(default_factory=list)


@dataclass
class Manifest:
    name: str
    trigger: str
    items: list[Item] = field(default_factory=list)
    refused: list[dict] = field(default_factory=list)  # {"source", "reason"}, newest batch last

    @property
    def train(self) -> list[Item]:
        return [i for i in self.items if i.split == "train"]

    @property
    def val(self) -> list[Item]:
        return [i for i in self.items if i.split == "val"]


def check_name(name: str) -> str:
    """Dataset names become folder names: the adapter library's rule (no reserved device names)."""
    if not isinstance(name, str) or not _NAME.match(name) or name.lower() in RESERVED_NAMES:
        raise StudioError(f"Image set name {repr(name)[:80]} is not allowed.",
                          "Use 1-64 letters, digits, '-' or '_', starting with a letter or digit "
                          "(no spaces, slashes or emoji; no reserved name such as CON).")
    return name


def dataset_dir(name: str, ws: Workspace | None = None) -> Path:
    return (ws or Workspace()).datasets / check_name(name)


def load(name: str, ws: Workspace | None = None) -> Manifest:
    path = dataset_dir(name, ws) / "manifest.json"
    if not path.is_file():
        raise StudioError(f"No image set named {name!r}.", "Make it on the Images tab, or with `studio dataset add "
                          "NAME PATH...`.")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        raw["items"] = [Item(**i) for i in raw.get("items", [])]
        return Manifest(**raw)
    except (ValueError, TypeError, KeyError) as e:
        raise StudioError(f"The manifest of dataset {name!r} is damaged ({e}).",
                          f"Fix or delete {path}; the images next to it are intact.") from None


def save(m: Manifest, ws: Workspace | None = None) -> Path:
    path = dataset_dir(m.name, ws) / "manifest.json"
    atomic_write_bytes(path, json.dumps(asdict(m), indent=1, ensure_ascii=False).encode("utf-8"))
    return path


@contextlib.contextmanager
def locked(name: str, ws: Workspace | None = None) -> Iterator[None]:
    """Hold dataset ``name``'s lock while reading, changing and saving its manifest.

    Two ingests into one set (the page's upload and sample buttons, a second browser, the CLI)
    would each load the manifest, add their images and save: the last save dropped the other's
    items and left their images on disk unlisted. The lock (``datasets/NAME/.lock``, an flock:
    across threads and processes) makes them take turns; both are kept."""
    with flocked(dataset_dir(name, ws)):
        yield


def set_caption(name: str, file: str, caption: str, ws: Workspace | None = None) -> Manifest:
    """Edit one image's caption (the UI's caption editor and the CLI use this)."""
    with locked(name, ws):
        m = load(name, ws)
        for item in m.items:
            if item.file == file:
                item.caption, item.caption_source = caption.strip(), "edited"
                save(m, ws)
                return m
    raise StudioError(f"Image set {name!r} has no image {file!r}.")
