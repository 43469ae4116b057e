"""The workspace layout under ``outputs/`` (user data; git-ignored)."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import StudioError

DEFAULT_ROOT = Path(os.environ.get("STUDIO_OUTPUTS", "outputs"))


@dataclass(frozen=True)
class Workspace:
    root: Path = DEFAULT_ROOT

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    @property
    def adapters(self) -> Path:
        return self.root / "adapters"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    @property
    def screenshots(self) -> Path:
        return self.root / "screenshots"

    @property
    def uploads(self) -> Path:
        """Gradio's upload cache for ``studio serve`` (files dropped on the page land here first)."""
        return self.root / ".uploads"

    def inside(self, path: Path) -> Path:
        """Resolve ``path`` and refuse anything that escapes the workspace."""
        root = self.root.resolve()
        p = (root / path).resolve() if not Path(path).is_absolute() else Path(path).resolve()
        if p != root and root not in p.parents:
            raise StudioError(f"Refusing to write {path}: it is outside the workspace {root}.",
                              "Choose a path under the outputs folder.")
        return p


class DiskFull(StudioError):
    """A write failed for lack of space; nothing under a final name was changed."""


_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


@contextlib.contextmanager
def readable_disk_errors(path: Path, need: int = 0):
    """Turn 'no space left' (or quota/file-size limits) while writing ``path`` into a
    :class:`DiskFull` that says what was not saved and what to do. Other errors pass."""
    try:
        yield
    except OSError as e:
        if e.errno not in _FULL:
            raise
        size = f" (about {need / 1e6:.1f} MB)" if need else ""
        raise DiskFull(f"The disk is full: {path} was not saved{size}; files saved before it are unchanged.",
                       f"Free space on the drive that holds {path.parent}, then run the same command again "
                       "(a training run continues from its last checkpoint with --resume).") from None


def _write_fd(fd: int, data: bytes) -> None:
    """All of ``data`` to ``fd`` (os.write may write less than asked), then to the disk."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.fsync(fd)  # the rename below must never publish a name whose bytes are still in flight


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file + ``os.replace`` (never a half file)."""
    with readable_disk_errors(path, len(data)):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            try:
                _write_fd(fd, data)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def atomic_write_folder(final: Path, files: dict[str, bytes]) -> None:
    """Write a folder of ``files`` under a hidden temp name, then rename it to ``final``.
    An existing ``final`` is moved aside first and removed only after the new one is in place."""
    need = sum(len(b) for b in files.values())
    with readable_disk_errors(final, need):
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=".tmp-"))
        try:
            for name, data in files.items():
                fd = os.open(tmp / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                try:
                    _write_fd(fd, data)
                finally:
                    os.close(fd)
            old = final.parent / f".old-{final.name}-{os.getpid()}" if final.exists() else None
            if old:
                os.replace(final, old)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    if old:
        shutil.rmtree(old, ignore_errors=True)


def remove_folder(path: Path) -> None:
    """Delete a folder so that no half-deleted copy is ever visible under its name:
    rename it to a hidden name first (one atomic step), then delete that."""
    gone = path.parent / f".del-{path.name}-{os.getpid()}"
    os.replace(path, gone)
    shutil.rmtree(gone, ignore_errors=True)


def atomic_save_image(path: Path, image) -> None:
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
