"""Presets: ``presets/*.toml`` overlaid on the TrainSettings defaults."""

from __future__ import annotations

from pathlib import Path

from ..config import TrainSettings
from ..errors import StudioError
from ..overlay import load_toml, overlay

PRESET_DIR = Path(__file__).resolve().parents[2] / "presets"
DEFAULT_FOR_FAMILY = {"tiny": "tiny-cpu", "sd1": "sd15-8gb", "sd2": "sd15-8gb", "sdxl": "sdxl-8gb"}


def available() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def load_preset(name_or_path: str) -> TrainSettings:
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = PRESET_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            raise StudioError(f"No preset named {name_or_path!r}.", f"Available: {', '.join(available())}.")
    return overlay(TrainSettings(), load_toml(path), str(path))
