"""Enumerate the files a user handed us: folders, zips and single files (uploads).

Nothing is extracted to disk: zip members are read into memory with hard caps, so
zip-slip names can do no harm (they are still refused, with the reason).
"""

from __future__ import annotations

import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

from ..config import IngestSettings
from ..text import has_control

ARCHIVE_SUFFIXES = {".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".zst"}
CAPTION_SUFFIX = ".txt"
CAPTION_MAX_BYTES = 16_384


@dataclass(frozen=True)
class SourceFile:
    name: str  # what the user calls it: relative path inside the folder/zip, or the file name
    size: int
    read: Callable[[], bytes]

    @property
    def key(self) -> str:
        """Folder + stem: an image and its caption sidecar share it."""
        p = PurePosixPath(self.name)
        return str(p.with_suffix(""))


@dataclass
class Collected:
    files: list[SourceFile]
    captions: dict[str, str]  # key -> sidecar text
    refused: list[tuple[str, str]]  # (name, reason)
    notes: list[str]


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif"}


def _is_zip(path: Path) -> bool:
    """A ``.zip``, or an unnamed archive; a file named as an image is read as an image even
    when a zip is glued to its end (a PNG+zip polyglot): the user handed us a picture."""
    suffix = path.suffix.lower()
    return suffix == ".zip" or (suffix not in IMAGE_SUFFIXES and zipfile.is_zipfile(path))


def _caption_text(data: bytes) -> str | None:
    """The sidecar's text, or None when it is not text (not UTF-8, or holding NUL/control characters)."""
    try:
        text = data[:CAPTION_MAX_BYTES].decode("utf-8")
    except UnicodeDecodeError as e:
        if len(data) <= CAPTION_MAX_BYTES or e.start < CAPTION_MAX_BYTES - 3:  # not just a cut character
            return None
        text = data[:e.start].decode("utf-8")
    return None if has_control(text, allow="\t\n\r") else text.strip()


def _add(out: Collected, f: SourceFile) -> None:
    name = PurePosixPath(f.name)
    if name.name.startswith(".") or "__MACOSX" in name.parts:
        return  # OS metadata (.DS_Store, AppleDouble), not user content
    if name.suffix.lower() == CAPTION_SUFFIX:
        if f.size > CAPTION_MAX_BYTES:
            out.notes.append(f"{f.name}: caption file over {CAPTION_MAX_BYTES} bytes was cut")
        try:
            text = _caption_text(f.read())
        except OSError as e:
            out.notes.append(f"{f.name}: caption file could not be read ({e.strerror or e}), ignored")
            return
        if text is None:
            out.notes.append(f"{f.name}: caption file is not text (binary or control characters), ignored")
        else:
            out.captions[f.key] = text
    else:
        out.files.append(f)


def _from_folder(root: Path, out: Collected) -> None:
    try:
        found = sorted(root.rglob("*"))
    except OSError as e:
        out.refused.append((str(root), f"folder cannot be read ({e.strerror or e})"))
        return
    for p in found:
        try:
            st = p.lstat()
        except OSError:
            continue  # gone since the listing
        if stat.S_ISLNK(st.st_mode):
            out.refused.append((str(p.relative_to(root)), "symbolic link: not followed"))
        elif stat.S_ISREG(st.st_mode):
            _add(out, SourceFile(f"{root.name}/{p.relative_to(root).as_posix()}", st.st_size, p.read_bytes))
        elif not stat.S_ISDIR(st.st_mode):
            out.refused.append((f"{root.name}/{p.relative_to(root).as_posix()}", f"{_kind(st.st_mode)}: not read"))


def _unsafe(name: str) -> str | None:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or (len(name) > 1 and name[1] == ":"):
        return "absolute path inside the zip"
    if ".." in p.parts:
        return "path leaves the archive ('..'): zip-slip attempt"
    return None


def _from_zip(path: Path, s: IngestSettings, out: Collected) -> None:
    label = path.name
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        out.refused.append((label, f"not a readable zip ({e})"))
        return
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if len(members) > s.zip_max_members:
            out.refused.append((label, f"holds {len(members)} files, over the {s.zip_max_members} limit; "
                                       "split it into smaller zips"))
            return
        budget = s.zip_max_total_mb * 1024 * 1024
        for m in members:
            name = f"{label}/{m.filename}"
            reason = _unsafe(m.filename)
            if reason is None and m.create_system == 3 and stat.S_ISLNK(m.external_attr >> 16):
                reason = "symbolic link inside the zip: not followed"
            if reason is None and PurePosixPath(m.filename).suffix.lower() in ARCHIVE_SUFFIXES:
                reason = "nested archive: unpack it and add its contents instead"
            if reason is None and m.file_size / max(1, m.compress_size) > s.zip_max_ratio:
                reason = (f"compression ratio {m.file_size // max(1, m.compress_size)}:1 is over "
                          f"{s.zip_max_ratio}:1 (zip-bomb guard)")
            if reason is None and m.file_size > min(budget, s.max_file_mb * 1024 * 1024):
                reason = (f"unpacks to {m.file_size / 1e6:.0f} MB, over the per-file or per-zip limit")
            if reason:
                out.refused.append((name, reason))
                continue
            budget -= m.file_size
            data, reason = _bounded_read(zf, m)
            if reason:
                out.refused.append((name, reason))
                continue
            _add(out, SourceFile(PurePosixPath(label, m.filename).as_posix(), len(data), lambda d=data: d))


def _bounded_read(zf: zipfile.ZipFile, m: zipfile.ZipInfo) -> tuple[bytes, str | None]:
    """Read a member, never more than its declared size (headers can lie)."""
    try:
        with zf.open(m) as f:
            data = f.read(m.file_size + 1)
    except RuntimeError:
        return b"", "encrypted zip member: unzip it with its password first"
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, ValueError) as e:
        return b"", f"damaged zip member ({e})"
    if len(data) > m.file_size:
        return b"", "unpacks to more bytes than its header declares (zip-bomb guard)"
    return data, None


def _kind(mode: int) -> str:
    return ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or
            stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")


def collect(paths: list[Path], s: IngestSettings) -> Collected:
    """Every path is looked at (``stat``) before it is opened: a FIFO would block forever and
    ``/dev/zero`` never ends, so only folders and regular files are read."""
    out = Collected([], {}, [], [])
    for path in paths:
        path = Path(path)
        try:
            st = path.stat()
        except FileNotFoundError:
            out.refused.append((str(path), "does not exist"))
            continue
        except (OSError, ValueError) as e:  # a NUL in the name, too long, no permission
            out.refused.append((str(path), f"cannot be read ({getattr(e, 'strerror', None) or e})"))
            continue
        if stat.S_ISDIR(st.st_mode):
            _from_folder(path, out)
        elif not stat.S_ISREG(st.st_mode):
            out.refused.append((str(path), f"{_kind(st.st_mode)}, not an image file: not read"))
        elif _is_zip(path):
            _from_zip(path, s, out)
        else:
            _add(out, SourceFile(path.name, st.st_size, path.read_bytes))
    return out
