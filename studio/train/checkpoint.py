"""Resumable checkpoints: LoRA weights, optimizer, LR schedule, RNG states, counters.

Each checkpoint is a folder written under a temporary name and renamed into place
(atomic, :func:`studio.paths.atomic_write_folder`); only the newest ``keep`` survive.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import torch
from safetensors.torch import load_file
from safetensors.torch import save as save_bytes

from ..paths import atomic_write_folder, remove_folder

PREFIX = "step-"


def rng_state() -> dict:
    """Global RNGs (LoRA dropout draws from torch's); noise has its own per-batch seed."""
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(folder: Path, step: int, lora: dict, state: dict, keep: int) -> Path:
    """Write checkpoint ``step`` atomically (a folder renamed into place), then prune old ones.
    A full disk raises :class:`studio.paths.DiskFull` and leaves the older checkpoints as they were."""
    buf = io.BytesIO()
    torch.save(state, buf)
    final = folder / f"{PREFIX}{step:07d}"
    atomic_write_folder(final, {"lora.safetensors": save_bytes(lora), "state.pt": buf.getvalue()})
    for old in list_checkpoints(folder)[:-keep]:
        remove_folder(old)  # renamed away first: never a half-deleted checkpoint under a step- name
    return final


def list_checkpoints(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith(PREFIX))


def load(path: Path) -> tuple[dict, dict]:
    """(LoRA weights, state). Only plain tensors/containers are unpickled (weights_only)."""
    lora = load_file(str(path / "lora.safetensors"))
    state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
    return lora, state
