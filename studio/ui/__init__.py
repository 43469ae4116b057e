"""Gradio Blocks for the studio. Talks to the engine modules, never to torch directly."""
