"""Image generation: one pipeline, reused for previews and for real generation."""

from .engine import Engine, GenerationResult
from .tags import LoraWeight

__all__ = ["Engine", "GenerationResult", "LoraWeight"]
