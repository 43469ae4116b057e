"""Ingest user images into a dataset: accept what we can, explain every refusal.

The originals are only read. The dataset keeps normalised PNG copies (RGB, upright,
alpha composited, downscaled to ``store_max_side``) named by content hash, plus a manifest.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ..config import IngestSettings
from ..models.family import NATIVE_RESOLUTION
from ..paths import Workspace, atomic_write_bytes, remove_folder
from ..text import shown
from . import manifest as mf
from .captions import initial_caption
from .decode import Refused, decode
from .sources import SourceFile, collect
from .split import assign_splits

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    dataset: str
    accepted: list[mf.Item] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    total: int = 0  # images in the dataset after this ingest
    val: int = 0

    def format(self) -> str:
        """One line per image; names, captions and reasons come from the user's files, so their
        control characters are escaped (a newline in a name cannot forge a line)."""
        lines = [f"dataset {self.dataset}: accepted {len(self.accepted)}, refused {len(self.refused)} "
                 f"-> {self.total} images ({self.total - self.val} train, {self.val} validation)"]
        for it in self.accepted:
            extra = f"  [{shown('; '.join(it.notes))}]" if it.notes else ""
            lines.append(f"  + {shown(it.source)} -> {it.file} {it.width}x{it.height} \"{shown(it.caption)}\"{extra}")
        lines += [f"  - {shown(name)}: {shown(reason)}" for name, reason in self.refused]
        lines += [f"  ! {shown(n)}" for n in self.notes]
        return "\n".join(lines)


def min_side_for(s: IngestSettings, family: str) -> int:
    return s.min_side or NATIVE_RESOLUTION[family] // 2


def _store(image: Image.Image, max_side: int) -> tuple[Image.Image, bytes, str]:
    if max(image.size) > max_side:
        image = image.copy()
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    digest = hashlib.sha256(f"{image.size}".encode() + image.tobytes()).hexdigest()
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False)
    return image, buf.getvalue(), digest


def _one(f: SourceFile, s: IngestSettings, min_side: int) -> tuple[Image.Image, bytes, str, list[str]]:
    if f.size > s.max_file_mb * 1024 * 1024:
        raise Refused(f"{f.size / 1e6:.0f} MB is over the {s.max_file_mb} MB per-file limit")
    try:
        data = f.read()
    except OSError as e:
        raise Refused(f"could not be read ({e.strerror or e})") from None
    d = decode(data, f.name, s.max_pixels, s.alpha_background)
    w, h = d.image.size
    if min(w, h) < min_side:
        raise Refused(f"{w}x{h} is too small: the short side must be at least {min_side} px for this "
                      "base model (upscaled images train blur into the style)")
    image, png, digest = _store(d.image, s.store_max_side)
    return image, png, digest, d.warnings


def ingest(name: str, paths: list[Path], s: IngestSettings = IngestSettings(), family: str = "tiny",
           ws: Workspace | None = None) -> IngestReport:
    """Add the images under ``paths`` to dataset ``name`` (created if missing). Holds the
    dataset's lock: a second ingest into the same set waits for this one."""
    ws = ws or Workspace()
    with mf.locked(name, ws):
        try:
            return _ingest(name, paths, s, family, ws)
        finally:  # a new set that got no image (or failed) is not left behind as an empty folder
            folder = mf.dataset_dir(name, ws)
            if not (folder / "manifest.json").exists():
                remove_folder(folder)


def _ingest(name: str, paths: list[Path], s: IngestSettings, family: str, ws: Workspace) -> IngestReport:
    folder = mf.dataset_dir(name, ws)
    if (folder / "manifest.json").is_file():
        m = mf.load(name, ws)  # a corrupt manifest raises: never silently start over
    else:
        m = mf.Manifest(name=name, trigger=s.trigger or name.lower())
    report = IngestReport(name)
    got = collect(paths, s)
    report.refused += got.refused
    report.notes += got.notes
    initial_caption(None, s.caption_template, m.trigger, False)  # a bad template fails before any work
    seen = {it.sha256: it.source for it in m.items}
    used_captions = set()
    for f in got.files:
        try:
            image, png, digest, notes = _one(f, s, min_side_for(s, family))
            if digest in seen:
                raise Refused(f"exact duplicate of {seen[digest]}")
        except Refused as e:
            report.refused.append((f.name, str(e)))
            continue
        seen[digest] = f.name
        rel = f"images/{digest[:20]}.png"
        atomic_write_bytes(folder / rel, png)
        sidecar = got.captions.get(f.key)
        used_captions.add(f.key)
        caption, source = initial_caption(sidecar, s.caption_template, m.trigger, s.prepend_trigger)
        item = mf.Item(rel, f.name, digest, image.width, image.height, caption, source, notes=notes)
        m.items.append(item)
        report.accepted.append(item)
    report.notes += [f"{k}.txt: caption without a matching image, ignored"
                     for k in sorted(set(got.captions) - used_captions)]
    for item, split in zip(m.items, assign_splits([i.sha256 for i in m.items], s.val_fraction, s.seed)):
        item.split = split
    m.refused += [{"source": n, "reason": r} for n, r in report.refused]
    if m.items or (folder / "manifest.json").is_file():
        mf.save(m, ws)
    report.total, report.val = len(m.items), len(m.val)
    return report
