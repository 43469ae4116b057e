"""Every setting: frozen dataclasses with one default and a one-line help each.

The CLI builds its flags from these fields, the UI reads its defaults from them and
presets (``presets/*.toml``) overlay them; unknown keys are errors.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from .errors import StudioError

T = TypeVar("T")


def setting(default: Any, help: str, **meta: Any) -> Any:
    """A dataclass field with its default and one-line help text."""
    return field(default=default, metadata={"help": help, **meta})


def help_of(cls: type, name: str) -> str:
    return {f.name: f.metadata.get("help", "") for f in fields(cls)}[name]


SEED = {"min": 0, "max": 2**32 - 1}  # every seed: numpy and the samplers take 32-bit seeds
INT_LIMIT = 2**63 - 1  # bounds an int setting that declares no max (it must still fit a C long)
MAX_TEXT_CHARS = 20_000


class Checked:
    """Base of every settings dataclass: each field is checked against its declaration on
    construction (:func:`check_fields`), so the CLI flags, ``--set``, presets and page forms
    all pass one schema."""

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class ModelSettings(Checked):
    model: str = setting("tiny", "Base model: 'tiny', a diffusers folder, a .safetensors file or a hub id.",
                         line=True, path=True)
    device: str = setting("auto", "Device: auto (CUDA if present, else CPU), cuda, cuda:N or cpu.",
                          pattern=r"auto|cpu|mps|cuda(:\d{1,3})?")
    dtype: str = setting("auto", "Weights dtype: auto (fp16/bf16 on CUDA, fp32 on CPU), fp32, fp16, bf16.")


@dataclass(frozen=True)
class GenerateSettings(Checked):
    prompt: str = setting("a red mug on a white background", "What to draw.", level="basic")
    negative: str = setting("", "What to steer away from (negative prompt).")
    seed: int = setting(0, "Random seed; the same seed gives the same image.", **SEED)
    steps: int = setting(25, "Drawing steps: more = finer, slower (sampler steps).", min=1, max=150)
    guidance: float = setting(6.0, "How closely the image follows the prompt; 5-8 is typical "
                                   "(classifier-free guidance scale).", min=0.0, max=30.0)
    width: int = setting(0, "Image width in pixels; 0 = the model's native size.", min=0, max=4096)
    height: int = setting(0, "Image height in pixels; 0 = the model's native size.", min=0, max=4096)
    sampler: str = setting("DPM++ 2M Karras", "Sampler by its A1111 name: DPM++ 2M Karras, DPM++ 2M, Euler a, "
                           "Euler, DDIM, UniPC.")
    count: int = setting(1, "Images to draw; image i uses seed + i.", min=1, max=16, level="basic")


MAX_PROMPT_CHARS = 20_000  # the text encoder reads ~75 tokens; the rest only costs tokenizer time


def check_text(name: str, text: str, max_chars: int = MAX_PROMPT_CHARS, allow: str = "\t\n\r") -> None:
    """Text: a string of at most ``max_chars`` without control characters (``allow``: tab/newline)."""
    from .text import BIDI, shown

    if not isinstance(text, str):
        raise StudioError(f"{name} must be text, not {type(text).__name__}.")
    if len(text) > max_chars:
        raise StudioError(f"The {name} is {len(text):,} characters long; at most {max_chars:,} are accepted.",
                          "The model reads only about 75 tokens (~300 characters) of it anyway; shorten it."
                          if max_chars == MAX_PROMPT_CHARS else "Shorten it.")
    bad = next((i for i, c in enumerate(text) if (ord(c) < 32 or 127 <= ord(c) < 160 or c in BIDI)
                and c not in allow), None)
    if bad is not None:
        raise StudioError(f"The {name} holds the control character {shown(text[bad])} (U+{ord(text[bad]):04X}) "
                          f"at position {bad}.", "Remove it (it is invisible, and often pasted by accident).")


@dataclass(frozen=True)
class EngineSettings(Checked):
    """How the generation engine keeps adapters on its one pipeline."""
    max_loaded_adapters: int = setting(8, "Adapters kept loaded at once; the least recently used is unloaded "
                                       "beyond this.", min=1, max=256)
    fuse_after: int = setting(3, "Fuse the blend into the weights after this many identical requests in a row "
                              "(0 = only when asked).", min=0, max=1000)
    exact_unfuse: bool = setting(True, "Keep a CPU copy of the weights a fuse changes, so unfusing restores them "
                                 "bit-exactly (peft's own unfuse leaves rounding residue).")


@dataclass(frozen=True)
class ServeSettings(Checked):
    host: str = setting("127.0.0.1", "Interface to listen on (0.0.0.0 exposes the studio to your network).")
    port: int = setting(7860, "TCP port.", min=1, max=65535)
    max_file_size_mb: int = setting(50, "Largest upload accepted, in MB.", min=1, max=2048)
    queue_size: int = setting(16, "Requests allowed to wait in the queue.", min=1, max=1024)
    auth: str = setting("", "USER:PASS required to open the studio (or set STUDIO_AUTH); empty = no login.")
    allowed_hosts: str = setting("", "More names the browser may use to reach the studio (comma-separated, "
                                 "'*.example.com' for subdomains); localhost, loopback addresses and --host "
                                 "are always allowed, any other Host header is refused.")


@dataclass(frozen=True)
class JobSettings(Checked):
    """The background training runner (``studio.jobs``)."""
    max_queued: int = setting(4, "Trainings allowed to wait for a busy device; more are refused (queue full).",
                              min=0, max=100)
    stderr_tail_lines: int = setting(20, "Last lines of a training's stderr kept in its run record.",
                                     min=1, max=1000)



@dataclass(frozen=True)
class IngestSettings(Checked):
    """Limits and conversions applied when images enter a dataset (see README for reasons)."""
    max_pixels: int = setting(64_000_000, "Largest image accepted, in pixels (a 50 MP phone photo fits).",
                              min=1, max=178_956_970)
    max_file_mb: int = setting(100, "Largest single file accepted, in MB.", min=1, max=2048)
    min_side: int = setting(0, "Smallest accepted short side in pixels; 0 = half the base model's native size.",
                            min=0, max=8192)
    store_max_side: int = setting(2048, "Stored copies are downscaled to at most this long side.",
                                  min=64, max=8192)
    alpha_background: str = setting("#ffffff", "Colour that transparent pixels are composited onto.", line=True,
                                    max_chars=100, colour=True)
    zip_max_members: int = setting(2000, "Most files a zip may hold.", min=1, max=100_000)
    zip_max_total_mb: int = setting(2048, "Most bytes a zip may unpack to, in MB.", min=1, max=65_536)
    zip_max_ratio: int = setting(100, "Highest compression ratio a zip member may have (zip bombs exceed it).",
                                 min=2, max=10_000)
    caption_template: str = setting("a photo in {trigger} style", "Caption for images without a .txt sidecar.",
                                    template=("trigger",), line=True)
    trigger: str = setting("", "A made-up word that calls up the style in a prompt (e.g. sepiashop); "
                               "empty = the set's name.", line=True, max_chars=200)
    prepend_trigger: bool = setting(False, "Put the trigger word in front of sidecar captions too.")
    val_fraction: float = setting(0.1, "Share of images held out for validation (at least one when there are 5+).",
                                  min=0.0, max=0.5)
    seed: int = setting(0, "Seed of the hold-out split.", **SEED)


@dataclass(frozen=True)
class ExportSettings(Checked):
    """How `studio export` writes an adapter for another tool (see README: compatibility table)."""
    format: str = setting("kohya", "kohya: for AUTOMATIC1111, Forge, ComfyUI and kohya (SDXL with sd-scripts "
                                   "block names); diffusers: for Python code (PEFT keys, `load_lora_weights`).",
                     choices=("kohya", "diffusers"))
    dtype: str = setting("fp16", "Number precision in the file: fp16 is half the size of fp32 and looks "
                                 "the same; bf16 also half.",
                    choices=("fp32", "fp16", "bf16"))
    rank: int = setting(0, "A smaller file: compress every module to this rank (SVD, error "
                               "reported); 0 = keep the trained ranks.", min=0, max=1024)
    keep: float = setting(0.0, "Resize each module to the smallest rank keeping this share of its singular-value "
                               "energy (sv_fro, e.g. 0.95); 0 = off.", min=0.0, max=1.0)
    fold_alpha: bool = setting(True, "diffusers format: fold alpha/rank into lora_B (scale 1 in every loader); "
                                     "off = exact weights, alphas only in the lora_adapter_metadata header.")


@dataclass(frozen=True)
class ImportSettings(Checked):
    """Limits for LoRA files from elsewhere (untrusted input), checked before any tensor is read."""
    max_file_mb: int = setting(2048, "Largest LoRA file accepted, in MB (big SDXL LoCons are ~1.7 GB).",
                               min=1, max=16_384)
    max_header_mb: int = setting(16, "Largest safetensors JSON header accepted, in MB.", min=1, max=100)
    max_tensors: int = setting(20_000, "Most tensors a LoRA file may hold (SDXL full LoCon: ~7,000).",
                               min=1, max=1_000_000)
    max_rank: int = setting(1024, "Highest LoRA rank accepted.", min=1, max=4096)
    allow_pickle: bool = setting(True, "Accept .pt/.ckpt/.bin files, read only with torch.load(weights_only=True).")


@dataclass(frozen=True)
class LoraSettings(Checked):
    rank: int = setting(8, "How much the style can learn: higher keeps more detail, bigger file "
                                "(LoRA rank of the attention layers; 4-16 is typical).", min=1, max=256)
    alpha: float = setting(8.0, "Strength scale of what is learned (scale = alpha / rank); "
                                    "same as Rank if unsure.", min=0.0, max=1024.0)
    ff_rank: int = setting(0, "LoRA rank of the UNet feed-forward layers; 0 = none.", min=0, max=256)
    ff_alpha: float = setting(0.0, "Alpha of the feed-forward LoRA; 0 = same as its rank.", min=0.0, max=1024.0)
    conv_rank: int = setting(0, "LoRA rank of the UNet resnet 3x3 convs (LoCon); 0 = none.", min=0, max=256)
    conv_alpha: float = setting(0.0, "Alpha of the conv LoRA; 0 = same as its rank.", min=0.0, max=1024.0)
    dropout: float = setting(0.0, "Dropout on the LoRA path during training.", min=0.0, max=0.9)
    text_encoder: bool = setting(True, "Also teach the prompt reader the trigger word "
                                 "(LoRA on the text-encoder attention); usually better.")
    te_rank: int = setting(0, "Rank of the text-encoder LoRA; 0 = same as rank.", min=0, max=256)
    te_alpha: float = setting(0.0, "Alpha of the text-encoder LoRA; 0 = same as alpha.", min=0.0, max=1024.0)


@dataclass(frozen=True)
class TrainSettings(Checked):
    lora: LoraSettings = field(default_factory=LoraSettings)
    # schedule
    steps: int = setting(500, "How long to train: more steps = a stronger style and a longer run.", min=1,
                         max=1_000_000, level="basic")
    batch_size: int = setting(4, "Images looked at per step: more = steadier but more memory.", min=1, max=256)
    grad_accum: int = setting(1, "Micro-batches accumulated per optimizer step.", min=1, max=256)
    lr_unet: float = setting(1e-4, "How fast the image model learns; too high gives noise "
                                  "(learning rate of the UNet LoRA).", min=0.0, max=1.0)
    lr_text: float = setting(5e-5, "How fast the prompt reader learns "
                                  "(learning rate of the text-encoder LoRA).", min=0.0, max=1.0)
    lr_scheduler: str = setting("constant_with_warmup", "LR schedule (diffusers.optimization): constant, "
                                "constant_with_warmup, cosine, linear, polynomial.",
                                choices=("constant", "constant_with_warmup", "cosine", "linear", "polynomial"))
    warmup_steps: int = setting(0, "Linear warm-up steps.", min=0, max=100_000)
    optimizer: str = setting("adamw8bit", "adamw8bit (bitsandbytes, default) or adamw (torch).",
                              choices=("adamw8bit", "adamw"))
    weight_decay: float = setting(1e-2, "AdamW weight decay.", min=0.0, max=1.0)
    max_grad_norm: float = setting(1.0, "Gradient clipping norm; 0 = off.", min=0.0, max=1e6)
    seed: int = setting(0, "Seed of data order, noise and timesteps.", **SEED)
    # loss
    min_snr_gamma: float = setting(0.0, "Min-SNR-gamma loss weighting (5 is common); 0 = off.", min=0.0, max=100.0)
    noise_offset: float = setting(0.0, "Noise offset (helps very dark/bright styles); 0 = off.", min=0.0, max=1.0)
    # data
    resolution: int = setting(0, "Size the images are trained at, in pixels; 0 = the base model's own "
                                 "size.", min=0, max=4096)
    repeats: int = setting(1, "Times each image appears per epoch.", min=1, max=1000)
    flip: bool = setting(False, "Random horizontal flips.")
    random_crop: bool = setting(False, "Random instead of centred crops (disables the latent cache).")
    caption_dropout: float = setting(0.0, "Share of steps that see an empty caption.", min=0.0, max=1.0)
    shuffle_tags: bool = setting(False, "Shuffle comma-separated caption tags.")
    keep_tokens: int = setting(1, "Leading tags kept in place when shuffling.", min=0, max=64)
    # memory recipe
    mixed_precision: str = setting("auto", "auto (bf16/fp16 on CUDA, fp32 on CPU), no, fp16, bf16.",
                                    choices=("auto", "no", "fp16", "bf16"))
    gradient_checkpointing: bool = setting(False, "Recompute activations in backward to save memory.")
    cache_latents: bool = setting(True, "Encode images once; the VAE then leaves the GPU.")
    cache_text: bool = setting(True, "Encode captions once when the text encoder is not trained.")
    quantize: str = setting("none", "Save GPU memory by keeping the base model in 8-bit or "
                             "4-bit (nf4) form (QLoRA, bitsandbytes); none = off.",
                             choices=("none", "8bit", "nf4"))
    vram_budget_gb: float = setting(0.0, "GPU memory the preflight allows; 0 = the GPU's total.", min=0.0, max=1024.0)
    # validation, previews, checkpoints
    validate_every: int = setting(50, "Validation loss on held-out images every N steps; 0 = off.", min=0,
                                 max=1_000_000)
    sample_every: int = setting(100, "Preview images every N steps; 0 = off.", min=0, max=1_000_000)
    sample_prompts: tuple = setting((), "Extra preview prompts ({trigger} is replaced); the previews always "
                                        "show the set's own captions, each beside the base model's image.")
    sample_seed: int = setting(0, "Seed of the preview images.", **SEED)
    sample_steps: int = setting(20, "Sampler steps of the previews.", min=1, max=150)
    checkpoint_every: int = setting(100, "Resumable checkpoint every N steps; 0 = only at the end.",
                                   min=0, max=1_000_000)
    keep_checkpoints: int = setting(2, "Checkpoints kept (oldest deleted).", min=1, max=100)
    final: str = setting("last", "Adapter written at the end: last, best (lowest validation loss), or "
                                 "recommended (the style meter's pick: learned, not copying, fewest steps).",
                          choices=("last", "best", "recommended"))
    # the style meter (studio.judge): judged at every preview round
    judge_first: int = setting(20, "First preview and style-meter round at this step (an early look); "
                                   "0 = only every sample_every.", min=0, max=1_000_000)
    judge_prompts: int = setting(4, "Captions of the set drawn each round (held-out first, fixed seeds) for "
                                    "the previews and the style and copy meters.", min=1, max=64)
    judge_free: int = setting(1, "Of those, drawn again without the trigger word: the leak meter.",
                              min=0, max=64)
    copy_threshold: float = setting(0.5, "Copy warning when drawn images come this much closer to a training "
                                         "photo than held-out photos do (0.5 = twice as close).", min=0.0, max=1.0)
    stop: str = setting("steps", "When to stop: steps (all of them), or learned (the style score has "
                                 "plateaued, or the adapter starts copying its photos; needs sample_every > 0).",
                          choices=("steps", "learned"))
    plateau_rounds: int = setting(2, "stop=learned: rounds without a gain of plateau_delta before stopping.",
                                  min=1, max=100)
    plateau_delta: float = setting(5.0, "Style-score gain (percentage points) that counts as progress.",
                                   min=0.0, max=100.0)
    max_bad_steps: int = setting(3, "Non-finite losses in a row before training stops with an error.",
                                min=1, max=1_000_000)


def check_fields(obj: Any) -> None:
    """The one schema check: every field of a settings object against its declaration
    (type from the annotation; ``min``/``max``, ``choices``, ``template``, ``line``,
    ``max_chars`` from the metadata). Raises a StudioError naming the field."""
    for f in fields(obj):
        check_value(f, getattr(obj, f.name))


def check_value(f: dataclasses.Field, v: Any) -> None:
    kind, meta, name = str(f.type), f.metadata, f.name
    if f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory):
        if not isinstance(v, f.default_factory):
            raise StudioError(f"Setting {name!r} must be a table of settings, not {_kind(v)}.")
        return  # checked on its own construction
    if kind == "bool":
        if not isinstance(v, bool):
            raise StudioError(f"{name}={_short(v)} must be true or false, not {_kind(v)}.")
    elif kind in ("int", "float"):
        _number(name, v, kind, meta)
    elif kind == "str":
        _text(name, v, meta)
    elif kind == "tuple":
        if not isinstance(v, tuple):
            raise StudioError(f"{name}={_short(v)} must be a list of texts, not {_kind(v)}.")
        if len(v) > 64:
            raise StudioError(f"{name} holds {len(v)} entries; at most 64 are accepted.")
        for item in v:
            _text(name, item, meta)
    allowed = meta.get("choices")  # the allowed values live on the field (the UI's dropdowns read them too)
    if allowed and v not in allowed:
        raise StudioError(f"{name}={_short(v)} is not one of: {', '.join(allowed)}.")


def _kind(v: Any) -> str:
    return {bool: "true/false", int: "a whole number", float: "a number", str: "text", dict: "a table",
            list: "a list", tuple: "a list"}.get(type(v), type(v).__name__)


def _short(v: Any) -> str:
    from .text import shown

    return shown(repr(v), limit=80)


def _number(name: str, v: Any, kind: str, meta: Any) -> None:
    lo, hi = meta.get("min"), meta.get("max")
    ok = isinstance(v, int) and not isinstance(v, bool) or kind == "float" and isinstance(v, float)
    if not ok:
        raise StudioError(f"{name}={_short(v)} must be {'a whole number' if kind == 'int' else 'a number'}, "
                          f"not {_kind(v)}.", f"Use a value from {lo} to {hi}." if hi is not None else None)
    if isinstance(v, float) and not math.isfinite(v):  # NaN passes every < and > test
        raise StudioError(f"{name}={v!r} is not a number.", f"Use a finite value from {lo} to {hi}.")
    if kind == "int" and hi is None:
        hi = INT_LIMIT
    if lo is not None and v < lo or hi is not None and v > hi:
        raise StudioError(f"{name}={_short(v)} is out of range.", f"Use a value from {lo} to {hi}.")


def _text(name: str, v: Any, meta: Any) -> None:
    if not isinstance(v, str):
        raise StudioError(f"{name}={_short(v)} must be text, not {_kind(v)}.",
                          "Quote it in a preset (e.g. name = \"value\").")
    check_text(name, v, meta.get("max_chars", MAX_TEXT_CHARS), allow="" if meta.get("line") else "\t\n\r")
    if meta.get("template"):
        check_template(name, v, meta["template"])
    if meta.get("pattern") and not re.fullmatch(meta["pattern"], v):
        raise StudioError(f"{name}={_short(v)} is not allowed.", f"{f_help(meta)}")
    if meta.get("path") and (len(v) > 4096 or any(len(part.encode("utf-8", "surrogateescape")) > 255
                                                   for part in v.replace("\\", "/").split("/"))):
        raise StudioError(f"{name} is too long for a path ({len(v):,} characters; each part at most 255 bytes).",
                          "Check the value.")
    if meta.get("colour"):
        from PIL import ImageColor

        try:
            ImageColor.getrgb(v)
        except ValueError:
            raise StudioError(f"{name}={_short(v)} is not a colour.", "Use e.g. #ffffff, white or rgb(255,255,255).") from None


def f_help(meta: Any) -> str:
    return meta.get("help", "")


def check_template(name: str, text: str, allowed: tuple[str, ...]) -> None:
    """A user template may only use plain ``{field}`` placeholders from ``allowed``: no attribute or
    index access (``{trigger.__class__}``), conversions or format specs (``{trigger:>999999999}``)."""
    import string

    fix = f"Use plain text with {' or '.join('{' + a + '}' for a in allowed)}; write {{{{ and }}}} for braces."
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as e:
        raise StudioError(f"{name} {_short(text)} is not a valid template ({e}).", fix) from None
    for _, field_name, spec, conversion in parts:
        if field_name is None:
            continue
        if field_name not in allowed or spec or conversion:
            raise StudioError(f"{name} {_short(text)} uses {{{_short(field_name)[1:-1]}"
                              f"{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}: "
                              "only plain named fields are replaced.", fix)


def fill(template: str, **values: str) -> str:
    """Replace the plain ``{name}`` fields of a template checked by :func:`check_template`
    (never ``str.format``'s attribute access on user text)."""
    import string

    return "".join(literal + (values[f] if f is not None else "")
                   for literal, f, _, _ in string.Formatter().parse(template))


def coerce(cls: type, name: str, raw: str) -> Any:
    """Parse a ``--set key=value`` string into the field's type."""
    ftype = {f.name: f.type for f in fields(cls)}[name]
    ftype = ftype if isinstance(ftype, str) else ftype.__name__
    try:
        if ftype == "bool":
            if raw.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(raw)
            return raw.lower() in ("1", "true", "yes", "on")
        return {"int": int, "float": float}.get(ftype, str)(raw)
    except ValueError:  # int("9" * 5000) too: Python refuses over 4,300 digits
        raise StudioError(f"{name}={_short(raw)} is not a valid {ftype}.") from None


def overlay(obj: T, values: dict[str, Any], source: str) -> T:
    """Return ``obj`` with ``values`` applied; unknown keys are errors naming ``source``.
    The result passes :func:`check_fields` (the constructor runs it)."""
    known = {f.name: f for f in fields(obj)}
    changes: dict[str, Any] = {}
    if not isinstance(values, dict):
        raise StudioError(f"{source} must be a table of settings, not {_kind(values)}.")
    for key, val in values.items():
        if key not in known:
            raise StudioError(f"Unknown setting {_short(key)} in {source}.",
                              f"Known settings: {', '.join(sorted(known))}.")
        cur = getattr(obj, key)
        if dataclasses.is_dataclass(cur):
            if not isinstance(val, dict):
                raise StudioError(f"Setting {key!r} in {source} must be a table.")
            changes[key] = overlay(cur, val, f"{source} [{key}]")
        elif isinstance(val, dict):
            raise StudioError(f"Setting {key!r} in {source} is a single value, not a group: "
                              f"{key}.{next(iter(val), '')} does not exist.", f"Write {key}=VALUE.")
        elif isinstance(cur, tuple):
            changes[key] = tuple(val) if isinstance(val, (list, tuple)) else tuple(str(val).split("|")) \
                if isinstance(val, str) else val  # a number stays a number: the schema refuses it
        else:
            changes[key] = coerce(type(obj), key, val) if isinstance(val, str) and \
                not isinstance(cur, str) else _typed(key, val, cur, source)
    try:
        return dataclasses.replace(obj, **changes)
    except StudioError as e:  # the schema's refusal, with where the value came from
        if source in e.what:
            raise
        raise StudioError(f"{e.what.rstrip('.')} (in {source}).", e.fix) from None


def _typed(key: str, val: Any, cur: Any, source: str) -> Any:
    """A preset or form value as it is: the schema (:func:`check_fields`) judges its type, so TOML
    ``steps = 10.5`` is refused like ``--set steps=10.5``. Only a whole number for a float field is
    converted."""
    if isinstance(cur, float) and isinstance(val, int) and not isinstance(val, bool):
        try:
            return float(val)
        except OverflowError:  # an int beyond 1e308
            raise StudioError(f"{key}={_short(val)} is out of range (in {source}).") from None
    return val


def apply_sets(obj: T, pairs: list[str], source: str = "--set") -> T:
    """Apply ``key=value`` strings; ``lora.rank=16`` reaches into a nested group."""
    nested: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise StudioError(f"{source} {_short(pair)} is not key=value.")
        node = nested
        *parents, leaf = key.strip().split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise StudioError(f"{source} {_short(pair)}: {p} is a single value, not a group.")
        if isinstance(node.get(leaf), dict):
            raise StudioError(f"{source} {_short(pair)}: {leaf} is a group; set one of its keys ({leaf}.KEY=VALUE).")
        node[leaf] = value.strip()
    return overlay(obj, nested, source)


def load_toml(path: Path) -> dict[str, Any]:
    """A preset file: refused readably when missing, a folder, not a regular file, too big,
    not UTF-8 text or not TOML."""
    import stat

    from .text import shown

    path = Path(path)
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            raise StudioError(f"Preset {_where(path)} is a folder.", "Give a .toml file.")
        if not stat.S_ISREG(st.st_mode):
            raise StudioError(f"Preset {_where(path)} is not a regular file.", "Give a .toml file.")
        if st.st_size > 1_000_000:
            raise StudioError(f"Preset {_where(path)} is {st.st_size:,} bytes; a preset is a few hundred.", "Give a .toml file.")
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise StudioError(f"Preset file {_where(path)} does not exist.") from None
    except UnicodeDecodeError:
        raise StudioError(f"Preset {_where(path)} is not text (not UTF-8).", "Give a .toml file.") from None
    except tomllib.TOMLDecodeError as e:
        raise StudioError(f"{_where(path)} is not valid TOML: {shown(str(e))}.") from None
    except (OSError, ValueError, RecursionError) as e:
        raise StudioError(f"Preset {_where(path)} could not be read: {shown(getattr(e, 'strerror', None) or e)}.") from None


def _where(path: Path) -> str:
    from .text import shown

    return shown(str(path), limit=200)
