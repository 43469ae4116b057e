"""The workspace layout under ``outputs/`` (user data; git-ignored)."""

from __future__ import annotations

import os
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

    def inside(self, path: Path) -> Path:
        """Resolve ``path`` and refuse anything that escapes the workspace."""
        root = self.root.resolve()
        p = (root / path).resolve() if not Path(path).is_absolute() else Path(path).resolve()
        if p != root and root not in p.parents:
            raise StudioError(f"Refusing to write {path}: it is outside the workspace {root}.",
                              "Choose a path under the outputs folder.")
        return p


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file + ``os.replace`` (never a half file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save_image(path: Path, image) -> None:
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
