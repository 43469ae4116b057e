"""The workspace layout under ``outputs/`` (user data; git-ignored)."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

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


# ---------------------------------------------------------------- the one rule for files the user names
_READABLE_WRITE_ERRORS = {errno.EACCES: "permission denied", errno.EPERM: "not permitted",
                          errno.EROFS: "the file system is read-only", errno.ENAMETOOLONG: "the name is too long",
                          errno.ENOTDIR: "a part of the path is a file, not a folder",
                          errno.EISDIR: "it is a folder", errno.ELOOP: "too many symbolic links"}


def check_output(path: Path | str, ws: Workspace | None = None, *, suffixes: tuple[str, ...] = (),
                 overwrite: bool = True, what: str = "Output path", flag: str = "--out") -> Path:
    """Every file the studio writes where the user said (``generate --out``, ``grid --out``,
    ``export --out``, ``sample-data``) passes here before any work:

    - never into the adapter library or the datasets (only those stores write there), also not
      through a symlinked folder; never over a symbolic link, a folder or a non-regular file
      (FIFO, device); an existing regular file only with ``overwrite``;
    - a clear refusal for empty names, NUL bytes, names over 255 bytes, a wrong suffix, a parent
      that is a file or a folder that cannot be written.
    Returns the path as given (relative paths stay relative)."""
    import stat

    ws = ws or Workspace()
    raw = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
    from .text import shown

    label = shown(raw, limit=200)
    if "\0" in raw or not raw.strip():
        raise StudioError(f"{what} {shown(repr(raw), limit=120)} is not a usable file name.",
                          f"Give a path like my-file{suffixes[0] if suffixes else ''}.")
    p = Path(raw)
    if suffixes and p.suffix.lower() not in suffixes:
        raise StudioError(f"{what} {label} does not end in {' or '.join(suffixes)}.",
                          f"Add the extension ({suffixes[0]}): that is the format written.")
    if len(p.name.encode("utf-8", "surrogateescape")) > 255 or len(raw.encode("utf-8", "surrogateescape")) > 4000:
        raise StudioError(f"{what} is {len(p.name.encode('utf-8', 'surrogateescape'))} bytes long in its last part "
                          "(or the whole path is too long); file systems allow 255.", "Choose a shorter name.")
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise StudioError(f"{what} {label} cannot be used: {_READABLE_WRITE_ERRORS.get(e.errno, e.strerror)}.",
                          f"Choose another {flag}.") from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise StudioError(f"{what} {label} is a folder.", "Give a file name inside it.")
        if stat.S_ISLNK(st.st_mode):
            raise StudioError(f"{what} {label} is a symbolic link; the studio never writes through one.",
                              f"Give the real file's path, or another {flag}.")
        if not stat.S_ISREG(st.st_mode):
            raise StudioError(f"{what} {label} is not a regular file (a device, FIFO or socket).",
                              f"Choose another {flag}: it would be replaced.")
    real = p.resolve()
    for folder, store in ((ws.adapters, "the adapter library"), (ws.datasets, "the datasets")):
        if real.is_relative_to(folder.resolve()):
            raise StudioError(f"Refusing to write {label} into {store} ({folder}): it would replace the "
                              "studio's own files.", f"Choose a {flag} outside {folder}.")
    if st is not None and not overwrite:
        raise StudioError(f"{label} already exists.", "Pass --overwrite to replace it, or choose another name.")
    _check_parent(real.parent, label, what, flag)
    return p


def _check_parent(parent: Path, label: str, what: str, flag: str) -> None:
    """The nearest existing folder above the target must be a writable folder."""
    probe = parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise StudioError(f"{what} {label} cannot be written: {probe} is a file, not a folder.", f"Choose another {flag}.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise StudioError(f"{what} {label} cannot be written: the folder {probe} is read-only for you.",
                          f"Choose another {flag}, or make the folder writable.")


def check_output_folder(path: Path | str, ws: Workspace | None = None, what: str = "Output folder") -> Path:
    """A folder the studio writes files into (``sample-data OUT_DIR``): the same rule, for a folder."""
    from .text import shown

    ws = ws or Workspace()
    raw = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
    if "\0" in raw or not raw.strip():
        raise StudioError(f"{what} {shown(repr(raw), limit=120)} is not a usable folder name.")
    p = Path(raw)
    if any(len(part.encode("utf-8", "surrogateescape")) > 255 for part in p.parts):
        raise StudioError(f"{what} has a part over 255 bytes long; file systems allow 255.", "Choose a shorter name.")
    if p.is_symlink() or (p.exists() and not p.is_dir()):
        raise StudioError(f"{what} {shown(raw, limit=200)} exists and is not a folder.", "Choose another folder.")
    real = p.resolve()
    for folder, store in ((ws.adapters, "the adapter library"), (ws.datasets, "the datasets")):
        if real.is_relative_to(folder.resolve()):
            raise StudioError(f"Refusing to write into {store} ({folder}): it would mix with the studio's own files.",
                              "Choose a folder outside it.")
    _check_parent(real, shown(raw, limit=200), what, "folder")
    return p


def write_output(path: Path, data: bytes, ws: Workspace | None = None, **rule) -> None:
    """:func:`check_output` again (the file may have changed since), then an atomic write; an OS
    refusal (read-only, permission) becomes a StudioError that says nothing was written."""
    check_output(path, ws, **rule)
    try:
        atomic_write_bytes(Path(path), data)
    except StudioError:
        raise
    except OSError as e:
        from .text import shown

        raise StudioError(f"Could not write {shown(str(path), limit=200)}: "
                          f"{_READABLE_WRITE_ERRORS.get(e.errno, e.strerror or str(e))}.",
                          "Check the folder's permissions and free space, or choose another path; nothing "
                          "was written.") from None


def png_bytes(image) -> bytes:
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


LOCK = ".lock"  # the one name every studio lock file has (runs/, datasets/NAME/, adapters/NAME/)


@contextlib.contextmanager
def flocked(folder: Path, wait: bool = True, create: bool = True) -> Iterator[bool]:
    """Hold ``folder/.lock`` (an advisory ``flock``: across threads and processes, released by
    the OS when its holder ends, however it ends; the file itself is never deleted).

    Yields True while held; with ``wait=False`` it yields False at once if someone else holds it.
    ``create=False``: the folder must exist (a StudioError says it is gone: renamed or deleted
    meanwhile), it is never made again. What is held is the file at ``folder/.lock`` when the lock
    was taken (a folder moved between opening and locking is noticed, and the lock taken again).
    A link put in the lock's place is never followed (it would switch the lock off, or create a
    file where it points): it is replaced by a plain lock file. A folder there: a StudioError."""
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    for _ in range(100):
        fd = _open_lock(path)
        try:
            held = _flock(fd, wait)
            if held and not _same_file(fd, path):  # moved or replaced meanwhile: not its lock any more
                if not create and not folder.is_dir():
                    raise _gone(folder)
                continue
        except BaseException:
            os.close(fd)
            raise
        try:
            yield held
        finally:
            os.close(fd)  # releases the lock
        return
    raise StudioError(f"{path} keeps changing: it cannot be locked.", "Try again.")


def _gone(folder: Path) -> StudioError:
    return StudioError(f"{folder.name!r} is gone (renamed or deleted a moment ago).", "Refresh and pick it again.")


def _open_lock(path: Path) -> int:
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        try:
            return os.open(path, flags, 0o644)
        except OSError as e:
            if e.errno != errno.ELOOP:
                raise
            if os.path.islink(path):  # a link in the lock's place: no holder ever holds one
                path.unlink(missing_ok=True)
            return os.open(path, flags, 0o644)  # (made by whoever comes first: no O_EXCL needed)
    except FileNotFoundError:
        raise _gone(path.parent) from None
    except OSError as e:
        raise StudioError(f"{path} cannot be used as a lock file ({os.strerror(e.errno)}).",
                          "Remove it; studio makes it again.") from None


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    me = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (me.st_dev, me.st_ino)


def _flock(fd: int, wait: bool) -> bool:
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock; one writer at a time is up to the user
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True
