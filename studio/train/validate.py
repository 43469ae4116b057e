"""Fail before the work, not after it: every setting that can be checked against the model
family, the dataset and the device is checked here, before the model loads and before step 1.

One pure function, :func:`check_settings`, called by the CLI before ``load_model`` (the family
comes from names and configs, see :func:`studio.models.loading.family_of`), by the trainer
before its setup, and by the page before it starts a job. It raises one
:class:`~studio.errors.StudioError` that lists every problem found.
"""

from __future__ import annotations

import string
from importlib import metadata, util

from ..config import TrainSettings
from ..data.manifest import Manifest
from ..errors import StudioError
from ..models.family import NATIVE_RESOLUTION
from ..text import shown

BNB_CPU_MIN = (0, 50)  # bitsandbytes runs 8-bit AdamW / NF4 on CPU tensors from 0.50 on


def check_settings(s: TrainSettings, family: str, manifest: Manifest | None = None,
                   device: object = "cpu", size_multiple: int | None = None) -> None:
    """Raise a StudioError naming every setting that cannot work with this family, dataset
    and device. ``manifest`` None (dataset not ingested yet) skips the dataset checks;
    ``size_multiple`` None takes the family's shipped architecture (a folder model: pass its own)."""
    dev = str(device).split(":")[0]
    problems = [p for p in (
        _resolution(s, family, size_multiple or _shipped_multiple(family)),
        _learning(s),
        _precision(s, dev),
        _bitsandbytes(s, dev),
        *_prompts(s),
        _final(s, manifest),
        _dataset(manifest),
    ) if p]
    if problems:
        what = problems[0] if len(problems) == 1 else "These settings cannot work:\n  - " + "\n  - ".join(problems)
        raise StudioError(what, "Nothing was loaded or trained; change the settings and run again.")


def _shipped_multiple(family: str) -> int:
    from ..models.loading import TINY_DIR, ModelRef, size_multiple_of

    return size_multiple_of(ModelRef("tiny", str(TINY_DIR)) if family == "tiny" else ModelRef("hub", ""), family)


def _resolution(s: TrainSettings, family: str, m: int) -> str | None:
    r = s.resolution
    if not r or r % m == 0:
        return None
    lo, hi = max(m, r // m * m), (r // m + 1) * m
    return (f"resolution={r} does not fit the {family} model: image sides must be multiples of {m} "
            f"(native {NATIVE_RESOLUTION[family]}). Use {lo} or {hi}, or 0 for the native size.")


def _learning(s: TrainSettings) -> str | None:
    if s.lr_unet == 0 and (s.lr_text == 0 or not s.lora.text_encoder):
        return "lr_unet=0 (and no text-encoder learning rate): nothing would train. Use e.g. lr_unet=1e-4."
    return None


def _precision(s: TrainSettings, dev: str) -> str | None:
    if s.mixed_precision == "fp16" and dev != "cuda":
        return "mixed_precision=fp16 needs a CUDA GPU. Use bf16, no or auto on the CPU."
    if s.mixed_precision == "bf16" and dev == "cuda":
        import torch

        if not torch.cuda.is_bf16_supported():
            return "mixed_precision=bf16: this GPU has no bf16. Use fp16 or auto."
    return None


def _bitsandbytes(s: TrainSettings, dev: str) -> str | None:
    uses = [x for x in (s.optimizer == "adamw8bit" and "optimizer=adamw8bit",
                        s.quantize != "none" and f"quantize={s.quantize}") if x]
    if not uses:
        return None
    if util.find_spec("bitsandbytes") is None:
        return f"{' and '.join(uses)} need bitsandbytes, which is not installed. " \
               "pip install 'bitsandbytes>=0.50', or use optimizer=adamw and quantize=none."
    version = tuple(int(x) for x in metadata.version("bitsandbytes").split(".")[:2] if x.isdigit())
    if dev == "cpu" and version < BNB_CPU_MIN:
        return f"{' and '.join(uses)} on the CPU need bitsandbytes >= 0.50 (installed: " \
               f"{metadata.version('bitsandbytes')}). Upgrade it, or use optimizer=adamw and quantize=none."
    return None


def _prompts(s: TrainSettings) -> list[str | None]:
    """Extra preview prompts may only use the {trigger} placeholder (anything else fails at the
    first preview); the set's own captions are always drawn, so none are needed."""
    out = []
    for p in s.sample_prompts:
        try:
            parsed = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(str(p)) if f is not None]
            names = {f for f, _, _ in parsed}
        except ValueError as e:
            out.append(f"sample prompt {p!r} has a stray brace ({e}). Write {{{{ and }}}} for literal braces.")
            continue
        if not str(p).strip():
            out.append("a sample prompt is empty. Remove it or write what to draw.")
        elif any(spec or conv for _, spec, conv in parsed):
            out.append(f"sample prompt {shown(repr(p), limit=80)} uses a conversion or format spec: "
                       "only plain {trigger} is replaced.")
        elif names - {"trigger"}:
            bad = ", ".join("{" + n + "}" for n in sorted(names - {"trigger"}))
            out.append(f"sample prompt {p!r} uses {bad}: only {{trigger}} is replaced.")
    return out


def _final(s: TrainSettings, m: Manifest | None) -> str | None:
    if s.judge_free > s.judge_prompts:
        return f"judge_free={s.judge_free} is more than judge_prompts={s.judge_prompts}: use at most that many."
    if s.final != "best":
        return None
    if not s.validate_every:
        return "final=best needs validation: set validate_every above 0 (or final=last)."
    if m is not None and not m.val:
        return (f"final=best needs held-out images, and dataset {m.name!r} has none "
                "(sets of 5+ images hold one out). Add images, or use final=last.")
    return None


def _dataset(m: Manifest | None) -> str | None:
    if m is not None and not m.train:
        return f"dataset {m.name!r} has no training images. Add images with `studio dataset add`."
    return None


def check_device_memory(s: TrainSettings, family: str, device: object) -> None:
    """On a GPU, refuse a run the VRAM preflight says cannot fit, before loading anything."""
    import torch

    from . import preflight

    dev = torch.device(device)
    if dev.type != "cuda":
        return
    est = preflight.for_family(family, s, s.resolution)
    budget = s.vram_budget_gb * preflight.GiB or torch.cuda.mem_get_info(dev)[1]
    preflight.check(est, int(budget), family)
