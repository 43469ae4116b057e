"""Gradio inputs made from settings dataclass fields: label, default, limits, help, choices.

A field's default, its min/max, its allowed values and its one-line help live only in
:mod:`studio.config`; every input on the page is built here from that field, so no default
is typed twice. Nested groups (``TrainSettings.lora``) are addressed as ``"lora.rank"``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gradio as gr

from ..overlay import overlay

# Labels a user reads; a field without one gets its name in sentence case. Basic fields say what
# they do in plain words; advanced ones keep their technical name in brackets.
LABELS = {
    "steps": "Training length (steps)", "batch_size": "Batch size", "lr_unet": "Learning speed, image (learning rate, UNet)",
    "lr_text": "Learning speed, prompt (learning rate, text encoder)", "resolution": "Resolution (px)",
    "lora.rank": "Detail capacity (rank)", "lora.alpha": "Strength scale (alpha)",
    "lora.text_encoder": "Also learn the words (text-encoder LoRA)", "quantize": "Save GPU memory (QLoRA)",
    "sample_every": "Preview every N steps", "validate_every": "Validate every N steps",
    "sample_prompts": "Preview prompts (separate with |)", "vram_budget_gb": "VRAM budget (GB)",
    "lora.ff_rank": "Feed-forward LoRA rank", "lora.ff_alpha": "Feed-forward LoRA alpha",
    "lora.conv_rank": "Conv LoRA rank (LoCon)", "lora.conv_alpha": "Conv LoRA alpha",
    "lora.te_rank": "Text-encoder LoRA rank", "lora.te_alpha": "Text-encoder LoRA alpha",
    "lora.dropout": "LoRA dropout", "lr_scheduler": "LR schedule", "min_snr_gamma": "Min-SNR gamma",
    "grad_accum": "Gradient accumulation", "final": "Final adapter", "max_bad_steps": "Max bad steps",
}


def is_basic(cls: type, path: str) -> bool:
    """Whether the field is on a form's first screen (``level="basic"`` in its metadata)."""
    return field_of(cls, path)[0].metadata.get("level") == "basic"


def field_of(cls: type, path: str) -> tuple[dataclasses.Field, type]:
    """The field at ``path`` ("steps", "lora.rank") and the dataclass that owns it."""
    *parents, leaf = path.split(".")
    for p in parents:
        cls = {f.name: f for f in dataclasses.fields(cls)}[p].default_factory
    return {f.name: f for f in dataclasses.fields(cls)}[leaf], cls


def value_at(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def label_for(path: str) -> str:
    if path in LABELS:
        return LABELS[path]
    leaf = path.split(".")[-1].replace("_", " ")
    prefix = "LoRA " if path.startswith("lora.") else ""
    return prefix + leaf[0].upper() + leaf[1:] if not prefix else prefix + leaf


def as_display(value: Any) -> Any:
    return " | ".join(value) if isinstance(value, tuple) else value


def field_input(cls: type, path: str, value: Any = None, label: str | None = None, **kw) -> gr.Component:
    """One input for one field; ``value`` defaults to the field's default."""
    f, owner = field_of(cls, path)
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    value = as_display(default if value is None else value)
    meta = f.metadata
    kw = {"label": label or label_for(path), "info": meta.get("help"),
          "elem_id": "set-" + path.replace(".", "-").replace("_", "-"), **kw}
    ftype = str(f.type)
    if ftype == "bool":
        return gr.Checkbox(value=value, **kw)
    if meta.get("choices"):
        return gr.Dropdown(choices=list(meta["choices"]), value=value, **kw)
    if ftype in ("int", "float"):
        # no minimum/maximum here: Gradio would refuse an out-of-range value itself, before any of our
        # code, with "Value 0 is less than minimum value 1." and no word of which field; build() refuses
        # it instead, naming the field and its range (newcomer review, 2026-12-08)
        return gr.Number(value=value, precision=0 if ftype == "int" else None, **kw)
    return gr.Textbox(value=value, **kw)


def leaf_paths(cls: type, prefix: str = "") -> list[str]:
    """Every settable field of ``cls`` as a dotted path (nested groups flattened)."""
    out = []
    for f in dataclasses.fields(cls):
        if f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory):
            out += leaf_paths(f.default_factory, f"{prefix}{f.name}.")
        else:
            out.append(prefix + f.name)
    return out


def nest(paths: list[str], values: list[Any]) -> dict[str, Any]:
    """{"lora.rank": 8} -> {"lora": {"rank": 8}}."""
    out: dict[str, Any] = {}
    for path, v in zip(paths, values):
        node = out
        *parents, leaf = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    return out


def build(base: Any, paths: list[str], values: list[Any], source: str = "the form") -> Any:
    """``base`` with the form's values applied; range and choice errors raise StudioError."""
    cleaned = [_clean(base, p, v) for p, v in zip(paths, values)]
    return overlay(base, nest(paths, cleaned), source)


def _clean(base: Any, path: str, v: Any) -> Any:
    cur = value_at(base, path)
    if isinstance(cur, tuple) and isinstance(v, str):
        return tuple(x.strip() for x in v.split("|") if x.strip())
    if isinstance(cur, bool):
        return bool(v)
    if isinstance(cur, int) and isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(cur, float) and isinstance(v, int):
        return float(v)
    if v is None and isinstance(cur, (int, float)):
        from ..errors import StudioError

        raise StudioError(f"{label_for(path)} is empty.", "Enter a number.")
    return v


def diff_sets(base: Any, settings: Any, paths: list[str]) -> list[str]:
    """``key=value`` strings for every field where ``settings`` differs from ``base``."""
    out = []
    for p in paths:
        a, b = value_at(base, p), value_at(settings, p)
        if a != b:
            out.append(f"{p}={'|'.join(b) if isinstance(b, tuple) else b}")
    return out
