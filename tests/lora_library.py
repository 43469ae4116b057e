"""A workspace with a few random kohya adapters for the tiny model (made once per session)."""

import tempfile
from pathlib import Path

from studio.adapters.random_lora import random_kohya, write_adapter
from studio.paths import Workspace

# name -> (seed, with text-encoder LoRA)
ADAPTERS = {"neon": (1, True), "pastel": (2, True), "ink": (3, False)}


_made: dict[int, Workspace] = {}


def tiny_library(model) -> Workspace:
    if id(model) in _made:
        return _made[id(model)]
    ws = Workspace(Path(tempfile.mkdtemp(prefix="studio-lib-")))
    for name, (seed, te) in ADAPTERS.items():
        sd = random_kohya(model.pipe, rank=4, alpha=4.0, seed=seed, std=0.3, text_encoder=te)
        write_adapter(ws, name, sd, "tiny", model.base_hash)
    write_adapter(ws, "otherbase", random_kohya(model.pipe, seed=4, std=0.3), "tiny", "0123456789ab")
    write_adapter(ws, "xlstyle", random_kohya(model.pipe, seed=5), "sdxl", "")
    _made[id(model)] = ws
    return ws
