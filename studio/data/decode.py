"""Decode one untrusted image file into a clean RGB picture, or refuse it with a reason.

Only the decoders we accept are allowed to run; the pixel count is checked from the
header before any pixel is decoded; Pillow's decompression-bomb warning is an error.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageColor, ImageOps, UnidentifiedImageError

ACCEPTED = ["JPEG", "PNG", "WEBP", "BMP", "TIFF"]
try:  # HEIC/HEIF from phones, only when the optional plugin is installed
    from pillow_heif import register_heif_opener

    register_heif_opener()
    ACCEPTED.append("HEIF")
except ImportError:
    pass

# Magic numbers of common non-image files, so a refusal can say what the file is.
_KNOWN = [(b"%PDF", "a PDF document"), (b"PK\x03\x04", "a zip archive"), (b"\x1f\x8b", "a gzip archive"),
          (b"Rar!", "a RAR archive"), (b"7z\xbc\xaf", "a 7-Zip archive"), (b"GIF8", "a GIF image"),
          (b"\x00\x00\x00\x18ftyp", "an MP4/HEIC container"), (b"\x00\x00\x00\x1cftyp", "an MP4/HEIC container")]


class Refused(Exception):
    """This file cannot be used; ``str(e)`` says why and what to do."""


@dataclass
class Decoded:
    image: Image.Image  # RGB
    original_size: tuple[int, int]
    original_mode: str
    format: str
    warnings: list[str] = field(default_factory=list)


# Magic numbers of the formats we accept: such a file that Pillow cannot identify has a bad header.
_IMAGE_MAGIC = [(b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"BM", "BMP"),
                (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF")]


def _what_is(data: bytes) -> str:
    for magic, fmt in _IMAGE_MAGIC:
        if data.startswith(magic):
            return f"a {fmt} file whose header is invalid (e.g. 0x0 pixels)"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "a WebP file whose header is invalid"
    for magic, name in _KNOWN:
        if data.startswith(magic):
            return name
    if data[:512].isascii():
        return "a text file"
    return "not an image we can read"


def _to_rgb(img: Image.Image, background: tuple[int, int, int], notes: list[str]) -> Image.Image:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit grey: scale, don't clip
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
        notes.append("16-bit image scaled to 8 bits")
    elif mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.clip(arr * 255.0 + 0.5 if arr.max() <= 1.0 else arr, 0, 255).astype(np.uint8), "L")
    elif mode in ("RGB;16", "RGBA;16"):
        img = img.convert("RGBA")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("LA", "PA", "La"):
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "RGBa"):
        alpha = img.getchannel("A")
        if alpha.getextrema()[0] < 255:
            notes.append("transparent pixels composited onto the background colour")
        base = Image.new("RGB", img.size, background)
        base.paste(img.convert("RGB"), (0, 0), alpha)
        return base
    if img.mode == "CMYK":
        notes.append("CMYK converted to RGB")
    return img.convert("RGB")


def decode(data: bytes, name: str, max_pixels: int, background: str = "#ffffff") -> Decoded:
    """Decode ``data`` (the bytes of file ``name``) or raise :class:`Refused`."""
    if not data:
        raise Refused("the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=ACCEPTED)
            w, h = img.size
            if w * h > max_pixels:
                raise Refused(f"{w}x{h} is {w * h / 1e6:.0f} megapixels, over the {max_pixels / 1e6:.0f} MP limit "
                              "(a decompression-bomb guard); downscale it first")
            fmt = img.format or "?"
            notes = []
            if getattr(img, "is_animated", False):
                notes.append(f"animated ({getattr(img, 'n_frames', '?')} frames): used the first frame")
                img.seek(0)
            img.load()
            original_mode = img.mode
            img = ImageOps.exif_transpose(img)
            if img.size != (w, h) and img.size == (h, w):
                notes.append("rotated upright from its EXIF orientation")
    except Refused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise Refused(f"its header claims far more than the {max_pixels / 1e6:.0f} MP limit "
                      "(a decompression-bomb guard); downscale it first") from None
    except UnidentifiedImageError:
        kind = _what_is(data)
        if "header is invalid" in kind:
            raise Refused(f"{kind}; re-export it from an image editor") from None
        accepted = ", ".join(ACCEPTED)
        raise Refused(f"{kind}: not an accepted format (accepted: {accepted}); "
                      "convert it to PNG or JPEG") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise Refused(f"unreadable or truncated image ({e}); re-export it from an image editor") from None
    rgb_bg = ImageColor.getrgb(background)[:3]
    icc = img.info.get("icc_profile")
    image = _to_srgb(_to_rgb(img, rgb_bg, notes), icc, original_mode, notes)
    image.info.clear()  # the stored copy carries no user metadata (EXIF, profiles, text chunks)
    return Decoded(image, (w, h), original_mode, fmt, notes)


def _to_srgb(image: Image.Image, icc: bytes | None, mode: str, notes: list[str]) -> Image.Image:
    """Pixels in a colour profile other than sRGB (Display P3 phone photos, Adobe RGB) are
    converted to sRGB, which is what the model was trained on; a damaged or mismatched
    profile is ignored (pixels read as sRGB) and noted."""
    if not icc:
        return image
    from PIL import ImageCms

    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        space = src.profile.xcolor_space.strip()
        if mode not in ("RGB", "RGBA", "P") or space != "RGB":
            notes.append(f"colour profile ({space or '?'}) does not match the {mode} pixels: ignored")
            return image
        if "srgb" in ImageCms.getProfileDescription(src).lower():
            return image
        out = ImageCms.profileToProfile(image, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
        notes.append("converted from its colour profile to sRGB")
        return out
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        notes.append("colour profile is damaged: ignored (colours read as sRGB)")
        return image
