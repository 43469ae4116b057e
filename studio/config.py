"""Every setting: frozen dataclasses with one default and a one-line help each.

The CLI builds its flags from these fields, the UI reads its defaults from them and
presets (``presets/*.toml``) overlay them; unknown keys are errors.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from .errors import StudioError

T = TypeVar("T")


def setting(default: Any, help: str, **meta: Any) -> Any:
    """A dataclass field with its default and one-line help text."""
    return field(default=default, metadata={"help": help, **meta})


def help_of(cls: type, name: str) -> str:
    return {f.name: f.metadata.get("help", "") for f in fields(cls)}[name]


@dataclass(frozen=True)
class ModelSettings:
    model: str = setting("tiny", "Base model: 'tiny', a diffusers folder, a .safetensors file or a hub id.")
    device: str = setting("auto", "Device: auto (CUDA if present, else CPU), cuda, cuda:N or cpu.")
    dtype: str = setting("auto", "Weights dtype: auto (fp16/bf16 on CUDA, fp32 on CPU), fp32, fp16, bf16.")


@dataclass(frozen=True)
class GenerateSettings:
    prompt: str = setting("a red mug on a white background", "What to draw.")
    negative: str = setting("", "What to steer away from (negative prompt).")
    seed: int = setting(0, "Random seed; the same seed gives the same image.")
    steps: int = setting(25, "Sampler steps.", min=1, max=150)
    guidance: float = setting(6.0, "Classifier-free guidance scale.", min=0.0, max=30.0)
    width: int = setting(0, "Image width in pixels; 0 = the model's native size.", min=0, max=4096)
    height: int = setting(0, "Image height in pixels; 0 = the model's native size.", min=0, max=4096)

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass(frozen=True)
class ServeSettings:
    host: str = setting("127.0.0.1", "Interface to listen on (0.0.0.0 exposes the studio to your network).")
    port: int = setting(7860, "TCP port.", min=1, max=65535)
    max_file_size_mb: int = setting(50, "Largest upload accepted, in MB.", min=1, max=2048)
    queue_size: int = setting(16, "Requests allowed to wait in the queue.", min=1, max=1024)


@dataclass(frozen=True)
class IngestSettings:
    """Limits and conversions applied when images enter a dataset (see README for reasons)."""
    max_pixels: int = setting(64_000_000, "Largest image accepted, in pixels (a 50 MP phone photo fits).",
                              min=1, max=178_956_970)
    max_file_mb: int = setting(100, "Largest single file accepted, in MB.", min=1, max=2048)
    min_side: int = setting(0, "Smallest accepted short side in pixels; 0 = half the base model's native size.",
                            min=0, max=8192)
    store_max_side: int = setting(2048, "Stored copies are downscaled to at most this long side.",
                                  min=64, max=8192)
    alpha_background: str = setting("#ffffff", "Colour that transparent pixels are composited onto.")
    zip_max_members: int = setting(2000, "Most files a zip may hold.", min=1, max=100_000)
    zip_max_total_mb: int = setting(2048, "Most bytes a zip may unpack to, in MB.", min=1, max=65_536)
    zip_max_ratio: int = setting(100, "Highest compression ratio a zip member may have (zip bombs exceed it).",
                                 min=2, max=10_000)
    caption_template: str = setting("a photo in {trigger} style", "Caption for images without a .txt sidecar.")
    trigger: str = setting("", "Trigger word of the style; empty = the dataset name.")
    prepend_trigger: bool = setting(False, "Put the trigger word in front of sidecar captions too.")
    val_fraction: float = setting(0.1, "Share of images held out for validation (at least one when there are 5+).",
                                  min=0.0, max=0.5)
    seed: int = setting(0, "Seed of the hold-out split.")


def check_ranges(obj: Any) -> None:
    for f in fields(obj):
        v, lo, hi = getattr(obj, f.name), f.metadata.get("min"), f.metadata.get("max")
        if lo is not None and v < lo or hi is not None and v > hi:
            raise StudioError(f"{f.name}={v!r} is out of range.", f"Use a value from {lo} to {hi}.")
        if dataclasses.is_dataclass(v):
            check_ranges(v)


def coerce(cls: type, name: str, raw: str) -> Any:
    """Parse a ``--set key=value`` string into the field's type."""
    ftype = {f.name: f.type for f in fields(cls)}[name]
    ftype = ftype if isinstance(ftype, str) else ftype.__name__
    try:
        if ftype == "bool":
            if raw.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(raw)
            return raw.lower() in ("1", "true", "yes", "on")
        return {"int": int, "float": float}.get(ftype, str)(raw)
    except ValueError:
        raise StudioError(f"{name}={raw!r} is not a valid {ftype}.") from None


def overlay(obj: T, values: dict[str, Any], source: str) -> T:
    """Return ``obj`` with ``values`` applied; unknown keys are errors naming ``source``."""
    known = {f.name: f for f in fields(obj)}
    changes: dict[str, Any] = {}
    for key, val in values.items():
        if key not in known:
            raise StudioError(f"Unknown setting {key!r} in {source}.",
                              f"Known settings: {', '.join(sorted(known))}.")
        cur = getattr(obj, key)
        if dataclasses.is_dataclass(cur):
            if not isinstance(val, dict):
                raise StudioError(f"Setting {key!r} in {source} must be a table.")
            changes[key] = overlay(cur, val, f"{source} [{key}]")
        else:
            changes[key] = coerce(type(obj), key, val) if isinstance(val, str) and \
                not isinstance(cur, str) else val
    return dataclasses.replace(obj, **changes)


def load_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudioError(f"Preset file {path} does not exist.") from None
    except tomllib.TOMLDecodeError as e:
        raise StudioError(f"{path} is not valid TOML: {e}.") from None
