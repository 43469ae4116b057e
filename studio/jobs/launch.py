"""Turning a request into a training process: checks, device slot, command, environment."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

from ..config import TrainSettings
from ..errors import StudioError
from ..overlay import apply_sets
from ..paths import Workspace
from .types import TrainRequest

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_request(req: TrainRequest, ws: Workspace) -> str:
    """Refuse a request that cannot start (names, dataset, settings); return its device slot."""
    from ..adapters.library import check_name
    from ..data import manifest as mf

    check_name(req.adapter)
    if not (mf.dataset_dir(req.dataset, ws) / "manifest.json").is_file():
        raise StudioError(f"No image set named {req.dataset!r}.", "Add images to a set on the Images tab (or with "
                          "`studio dataset add`) first.")
    if not isinstance(req.sets, tuple) or not all(isinstance(s, str) for s in req.sets):
        raise StudioError("Settings overrides must be a tuple of 'key=value' strings.")
    apply_sets(TrainSettings(), list(req.sets))  # unknown keys and out-of-range values fail here
    if req.dtype not in ("auto", "fp32", "fp16", "bf16"):
        raise StudioError(f"dtype {str(req.dtype)[:40]!r} is not known.", "Use auto, fp32, fp16 or bf16.")
    if not isinstance(req.model, str) or not req.model or req.model.startswith("-"):
        raise StudioError(f"Base model {str(req.model)[:80]!r} is not a model reference.",
                          "Use 'tiny', a diffusers folder, a .safetensors file or a hub id.")
    if req.preset:
        from ..train.presets import load_preset

        apply_sets(load_preset(req.preset), list(req.sets))
    return resolve_device(req.device)


def planned_steps(req: TrainRequest) -> int:
    """Steps the run will train, when the preset is known without loading the model (0 if not)."""
    from ..train.presets import DEFAULT_FOR_FAMILY, load_preset

    preset = req.preset or (DEFAULT_FOR_FAMILY["tiny"] if req.model == "tiny" else None)
    if preset is None:
        return 0
    try:
        return apply_sets(load_preset(preset), list(req.sets)).steps
    except StudioError:
        return 0


def check_new_adapter(req: TrainRequest, ws: Workspace) -> None:
    """A fresh start must not silently overwrite a library adapter."""
    if (ws.adapters / req.adapter / f"{req.adapter}.safetensors").is_file() and not req.replace:
        raise StudioError(f"An adapter named {req.adapter!r} already exists.",
                          "Choose another name, or ask to replace it (its file is overwritten when the run ends).")


def clear_leftovers(adapter: str, ws: Workspace) -> None:
    """Before a fresh run: a previous run's checkpoints, best weights and previews would be
    taken for this run's (resume, final=best, the preview gallery). Never under a training of the
    same name that this server does not know of (the CLI, another server): refused, nothing lost."""
    from ..adapters import busy

    folder = ws.adapters / adapter
    if not folder.is_dir():
        return
    with busy.holding(folder, NOT_STARTED):
        clear_folder(folder)


NOT_STARTED = "a new training of it was not started"


def clear_folder(folder: Path) -> None:
    """What :func:`clear_leftovers` removes; the caller holds the folder's lock."""
    shutil.rmtree(folder / "checkpoints", ignore_errors=True)
    shutil.rmtree(folder / "samples", ignore_errors=True)
    (folder / "best.safetensors").unlink(missing_ok=True)


def command(args: list[str], events: Path) -> list[str]:
    return [sys.executable, "-m", "studio", "train", *args, "--events", str(events)]


def resolve_device(device: str) -> str:
    """The device slot a training occupies: "cpu", "cuda:N", "mps"; "auto" asks torch."""
    if not isinstance(device, str) or not _DEVICE.match(device):
        raise StudioError(f"Device {str(device)[:40]!r} is not known.", "Use auto, cpu, cuda or cuda:N.")
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda:0" if device == "cuda" else device


def child_env(ws: Workspace) -> dict[str, str]:
    """The training process writes into this workspace and imports this very studio package."""
    env = {**os.environ, "STUDIO_OUTPUTS": str(ws.root.resolve()), "PYTHONUNBUFFERED": "1"}
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file():  # a source checkout (never prepend site-packages)
        path = env.get("PYTHONPATH", "")
        env["PYTHONPATH"] = str(checkout) + (os.pathsep + path if path else "")
    return env

