"""Pictures the page shows, as files written once.

Gradio turns a PIL image returned by an event into a PNG in its cache named by the image's hash,
and writes that file again, in place, every time the same picture is returned: a second identical
draw (same prompt and seed), the History gallery re-sent with every new picture, the placeholder of
every card without a preview. A browser fetching the file meanwhile read it cut short (CI, 2026-12-07:
"image file is truncated" on the second "no adapters" draw of the same seed). A *path* inside
Gradio's cache is served as it is, so every picture goes out through :func:`as_file`: a PNG under the
cache named by its content, written atomically and never rewritten.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

FOLDER = "studio-drawn"


def cache_dir() -> Path:
    from gradio import utils

    return Path(utils.get_upload_folder()).absolute() / FOLDER


def as_file(image) -> str:
    """``image`` (PIL) as a PNG file in Gradio's cache (its path, for any image or gallery output)."""
    from ..paths import atomic_write_bytes

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    data = buf.getvalue()
    path = cache_dir() / f"{hashlib.sha256(data).hexdigest()}.png"
    if not path.is_file():  # the same bytes are already there: nothing to write (and nothing to tear)
        atomic_write_bytes(path, data)
    return str(path)
