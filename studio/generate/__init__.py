"""Image generation: one pipeline, reused for previews and for real generation."""

from .engine import Engine, GenerationResult

__all__ = ["Engine", "GenerationResult"]
