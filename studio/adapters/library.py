"""The adapter library: every adapter under ``outputs/adapters/<name>/``.

One folder per adapter: ``<name>.safetensors`` (canonical kohya layout, alphas explicit),
``adapter.json`` (the studio's record: family, base model + hash, steps, trigger, ...),
optionally ``preview.png``, ``best.safetensors``, ``samples/``, ``checkpoints/``.
Trained, imported and blended adapters share this record; unknown fields are empty.

An entry the studio cannot fully read is *damaged* (:mod:`.records`): :meth:`Library.list` shows
it with its reason, :meth:`Library.names` (what pickers and ``<lora:…>`` tags offer) leaves it out,
:meth:`Library.get` refuses it with the reason, and :meth:`Library.delete` removes it. A folder
without its ``<name>.safetensors`` (a training still running) is not an entry yet. Opening the
library removes the studio's own staging leftovers of killed imports and exports (:mod:`.stale`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..errors import StudioError
from ..paths import Workspace, atomic_write_bytes, flocked
from . import busy
from .records import AdapterRecord, LayerGroup, printable, read_record

__all__ = ["AdapterRecord", "LayerGroup", "Library", "check_name"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")  # \Z: "$" would let a trailing newline in
# Windows device names: a folder called CON cannot be copied to a Windows machine.
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


RENAMES_KEPT = 16  # earlier names an adapter's record keeps (Library.current_name)


def check_name(name: str) -> str:
    """Adapter names become folder and file names: letters, digits, '-' and '_' only."""
    if isinstance(name, str) and not name.strip():
        raise StudioError("An empty adapter name is not allowed.", "Type a name: 1-64 letters, digits, '-' or '_'.")
    if not isinstance(name, str) or not _NAME.match(name) or name.lower() in _RESERVED:
        shown = repr(name)[:80]
        raise StudioError(f"Adapter name {shown} is not allowed.",
                          "Use 1-64 letters, digits, '-' or '_', starting with a letter or digit "
                          "(no paths, no hidden or reserved names such as CON).")
    return name


# ---------------------------------------------------------------- changing the library
def staging_folder(root: Path) -> Path:
    import tempfile

    root.mkdir(parents=True, exist_ok=True)
    # hidden: never listed; the pid tells a later start whether its writer is gone (stale.py)
    return Path(tempfile.mkdtemp(dir=root, prefix=f".staging-{os.getpid()}-"))


WEIGHTS_HASH = "weights_sha256"  # adapter.json: the weights file it describes (see write_pair)


def weights_hash(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def write_pair(folder: Path, name: str, weights: bytes, info: dict, record_first: bool = True) -> None:
    """An adapter's record and weights, each atomically: ``adapter.json`` first (a folder whose
    ``NAME.safetensors`` is there but no record counts as half-written), carrying the hash of the
    weights it describes, so that a reader that copies the two while they are rewritten can tell an
    old record beside new weights (:meth:`_Changes.read_pair`). Every writer of a library folder
    (training, "use this checkpoint", rename, import, blend) writes through here. ``record_first=False``
    only for weights under a name nobody reads yet (a rename's): killed in between, the old record
    still describes the old weights."""
    record = json.dumps({**info, WEIGHTS_HASH: weights_hash(weights)}, indent=1, default=str).encode()
    writes = [(folder / "adapter.json", record), (folder / f"{name}.safetensors", weights)]
    for path, data in writes if record_first else writes[::-1]:
        atomic_write_bytes(path, data)


def _write_adapter(folder: Path, name: str, sd: dict, metadata: dict[str, str], info: dict,
                   record_first: bool = True) -> None:
    from safetensors.torch import save

    write_pair(folder, name, save(sd, metadata=metadata), info, record_first)


def _drop_if_only_lock(folder: Path) -> bool:
    """A folder holding nothing but an idle lock file (a training that failed before it wrote
    anything) is no adapter: removed, and True. Anything else in it, or the lock held: False."""
    def only_lock() -> bool:
        try:
            return folder.is_dir() and not folder.is_symlink() and os.listdir(folder) == [busy.LOCK]
        except OSError:
            return False

    if not only_lock():
        return False
    try:
        with flocked(folder, wait=False, create=False) as held:
            if not (held and only_lock()):
                return False
            os.unlink(folder / busy.LOCK)  # (whoever opened it meanwhile notices: paths.flocked)
            os.rmdir(folder)
    except (OSError, StudioError):
        return False
    return True


def _retitled(metadata: dict[str, str], name: str) -> dict[str, str]:
    return {**metadata, "ss_output_name": name, "modelspec.title": name}


class _Changes:
    """rename / delete / duplicate / add, mixed into :class:`Library`. Each change is atomic:
    the new state appears by one ``os.rename`` of a folder, or not at all."""

    def _free(self, name: str) -> Path:
        folder = self.folder(name)
        if folder.exists() and not _drop_if_only_lock(folder):
            raise StudioError(f"An adapter named {name!r} already exists.", "Pick another name.")
        return folder

    def read(self, name: str) -> tuple[dict, dict[str, str]]:
        """The canonical tensors and header metadata of a library adapter."""
        from safetensors import safe_open

        file = self.get(name).file
        with safe_open(str(file), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})

    def read_pair(self, name: str, wait_s: float = 30.0, pause: float = 0.1) -> tuple[bytes, dict]:
        """(weights file bytes, adapter.json) of ``name`` as one pair, without taking its lock: a
        training of it holds the lock for its whole run, and refusing then would refuse every copy.

        Whoever changes an adapter folder holds its lock and writes through :func:`write_pair` (the
        record first, naming the weights it describes). So the record is read before and after the
        weights, and the pair holds when it did not change in between and names these weights (a
        record from before the hash was kept names none: no newer record was written meanwhile, so
        the weights are its own). Otherwise a writer is between its two writes: read again after
        ``pause``. When nobody holds the lock, nobody is writing: what is there is the adapter (a
        writer killed between its writes left it so) and it is read under the lock, as it is. After
        ``wait_s`` of a writer that never finishes, refused."""
        import time

        deadline = time.monotonic() + wait_s
        while True:
            file = self.get(name).file  # (renamed or deleted meanwhile: a StudioError says so)
            record = file.parent / "adapter.json"
            try:
                before, weights, after = record.read_bytes(), file.read_bytes(), record.read_bytes()
            except FileNotFoundError:  # replaced or moved between get() and the read: look again
                before = after = None
            info = _read_json_bytes(after) if after is not None else {}
            want = info.get(WEIGHTS_HASH)
            if after is not None and before == after and (not isinstance(want, str) or want == weights_hash(weights)):
                return weights, info
            with flocked(file.parent, wait=False, create=False) as mine:
                if mine:
                    return file.read_bytes(), _read_json(record)
            if time.monotonic() > deadline:
                raise StudioError(f"Adapter {name!r} is being written right now and did not settle in "
                                  f"{wait_s:.0f} s.", "Try again once its training or change has finished.")
            time.sleep(pause)

    def add(self, name: str, sd: dict, metadata: dict[str, str], info: dict) -> Path:
        """Write a new adapter (imports, blends): staged in a hidden folder, then renamed into place."""
        import os
        import shutil

        from .validate import check_finite

        target = self._free(check_name(name))
        check_finite(sd, f"Adapter {name!r} was not written")
        tmp = staging_folder(self.root)
        try:
            _write_adapter(tmp, name, sd, _retitled(metadata, name), {**info, "name": name})
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target / f"{name}.safetensors"

    def overwrite(self, name: str, sd: dict, metadata: dict[str, str], info: dict) -> Path:
        """Replace an adapter's weights and record in place (\"use this checkpoint\"): each file
        atomically, the values checked first."""
        from .validate import check_finite

        folder = self.folder(self.record(name).name)
        check_finite(sd, f"Adapter {name!r} was not changed")
        _write_adapter(folder, name, sd, _retitled(metadata, name), {**info, "name": name})
        return folder / f"{name}.safetensors"

    def rename(self, old: str, new: str) -> AdapterRecord:
        import os

        self.record(old)  # exists, or a StudioError listing the known names
        check_name(new)  # bad input is refused before anything is touched (the lock file too)
        folder = self.folder(old)
        with busy.holding(folder, "it was not renamed"):  # (its training would lose its folder)
            sd, meta = self.read(old)
            target = self._free(new)
            record = folder / "adapter.json"
            kept = record.read_bytes() if record.is_file() else None
            info = _read_json(record)
            info = {**info, "name": new, "renamed_from": (_earlier_names(info) + [old])[-RENAMES_KEPT:]}
            # the new name's file first: killed in between, the old record and file still match
            _write_adapter(folder, new, sd, _retitled(meta, new), info, record_first=False)
            try:
                os.rename(folder, target)
            except BaseException:  # the old name stays: its own record back, the new file gone
                if kept is not None:
                    atomic_write_bytes(record, kept)
                (folder / f"{new}.safetensors").unlink(missing_ok=True)
                raise
            (target / f"{old}.safetensors").unlink(missing_ok=True)
        return self.get(new)

    def duplicate(self, name: str, new: str) -> AdapterRecord:
        import os
        import shutil

        from safetensors import safe_open

        target, folder = self._free(check_name(new)), self.folder(name)
        tmp = staging_folder(self.root)
        try:
            weights, info = self.read_pair(name)  # (no lock: a training of it may be running)
            (tmp / "source.safetensors").write_bytes(weights)
            with safe_open(str(tmp / "source.safetensors"), framework="pt") as f:
                sd, meta = {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
            os.unlink(tmp / "source.safetensors")
            from ..judge.scorecard import FILE as SCORECARD

            for kept in ("preview.png", SCORECARD):  # the copy is the same weights: same picture, same
                if (folder / kept).is_file():  # style meter (its rounds' weights stay with the original)
                    shutil.copy2(folder / kept, tmp / kept)
            info = {k: v for k, v in info.items() if k != "renamed_from"}  # (the original's earlier names stay its own)
            _write_adapter(tmp, new, sd, _retitled(meta, new), {**info, "name": new, "duplicated_from": name})
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self.get(new)

    def delete(self, name: str) -> None:
        import os
        import shutil

        self.record(name)  # exists (usable or damaged), or a StudioError listing the known names
        with busy.holding(self.folder(name), "it was not deleted"):
            trash = staging_folder(self.root) / name
            os.rename(self.folder(name), trash)  # gone from the library in one step
        shutil.rmtree(trash.parent, ignore_errors=True)


class Library(_Changes):
    def __init__(self, ws: Workspace | None = None, clean: bool = True):
        self.ws = ws or Workspace()
        self._cache: dict[str, tuple[tuple, AdapterRecord]] = {}
        if clean:
            from .stale import clean_once

            clean_once(self.ws)

    @property
    def root(self) -> Path:
        return self.ws.adapters

    def folder(self, name: str) -> Path:
        return self.root / check_name(name)

    def _entries(self) -> list[str]:
        """Every non-hidden folder holding a ``<folder>.safetensors`` (valid names or not), sorted."""
        try:
            found = [p.name for p in os.scandir(self.root) if not p.name.startswith(".") and p.is_dir()]
        except OSError:
            return []
        return sorted(n for n in found if os.path.isfile(os.path.join(self.root, n, f"{n}.safetensors")))

    def _stamp(self, name: str) -> tuple:
        out = []
        for f in (f"{name}.safetensors", "adapter.json", "preview.png"):
            try:
                st = os.stat(os.path.join(self.root, name, f))
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                out.append(None)
        return tuple(out)

    def _record(self, name: str) -> AdapterRecord:
        stamp = self._stamp(name)
        hit = self._cache.get(name)
        if hit and hit[0] == stamp:
            return hit[1]
        rec = read_record(self.root / name, name, bool(_NAME.match(name)) and name.lower() not in _RESERVED)
        self._cache[name] = (stamp, rec)
        return rec

    def list(self) -> list[AdapterRecord]:
        """Every entry, usable or damaged (``record.damaged`` says why), sorted by name."""
        return [self._record(n) for n in self._entries()]

    def names(self) -> list[str]:
        """The usable adapters: what pickers, blends and ``<lora:…>`` tags may name."""
        return [r.name for r in self.list() if r.ok]

    def current_name(self, name: str) -> str:
        """The name the adapter once called ``name`` has now: ``name`` while it is in the library, else
        the one adapter renamed from it (a run's scorecard and checkpoints moved with its folder);
        a StudioError when it was deleted (or more than one claims the name)."""
        if name in [r.name for r in self.list()]:  # (a damaged one too: its use says why it cannot be used)
            return name
        names = self.names()
        later = [n for n in names if name in _earlier_names(_read_json(self.folder(n) / "adapter.json"))]
        if len(later) == 1:
            return later[0]
        raise StudioError(f"The adapter this run wrote, {name!r}, is no longer in the library: deleted, and its "
                          "checkpoints with it.", "Train again to get checkpoints to choose from.")

    def damaged(self) -> list[AdapterRecord]:
        return [r for r in self.list() if not r.ok]

    def taken(self, name: str) -> bool:
        """Whether a new adapter (training, import) may not use ``name``: any folder of that name counts."""
        return (self.root / name).exists()

    def signature(self) -> tuple:
        """Changes whenever an entry appears, disappears or is rewritten (stat only: cheap to poll)."""
        return tuple((n, *self._stamp(n)) for n in self._entries())

    def record(self, name: str) -> AdapterRecord:
        """The record of ``name``, usable or damaged; a StudioError listing the known names if absent."""
        if not isinstance(name, str) or name not in self._entries():
            self.folder(name)  # a name no adapter may have is refused as such ("... is not allowed")
            known = ", ".join(self.names()) or "none yet"
            raise StudioError(f"No adapter named {printable(repr(name), 82)}.", f"Known adapters: {known}.")
        return self._record(name)

    def get(self, name: str) -> AdapterRecord:
        """A usable adapter's record; a damaged one is refused with its reason."""
        rec = self.record(name)
        if not rec.ok:
            raise StudioError(f"Adapter {rec.shown_name!r} is damaged and cannot be used: {rec.damaged}.",
                              f"Delete it (studio adapters delete {rec.shown_name}) and train or import it again.")
        return rec


def _earlier_names(info: dict) -> list[str]:
    """The names a record says its adapter had before (``renamed_from``; anything else in a hand-edited
    or foreign record counts as none)."""
    names = info.get("renamed_from")
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def _read_json(path: Path) -> dict:
    try:
        return _read_json_bytes(path.read_bytes())
    except OSError:
        return {}


def _read_json_bytes(data: bytes) -> dict:
    try:
        value = json.loads(data.decode("utf-8"))
        return value if isinstance(value, dict) else {}
    except (ValueError, RecursionError):
        return {}
