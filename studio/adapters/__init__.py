"""Adapter files: format rules (pure dict -> dict functions) and metadata."""
