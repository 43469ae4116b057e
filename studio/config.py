"""Every setting: frozen dataclasses with one default and a one-line help each.

The CLI builds its flags from these fields, the UI reads its defaults from them and
presets (``presets/*.toml``) overlay them; unknown keys are errors.
"""

from __future__ import annotations

import dataclasses
import math
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


@dataclass(frozen=True)
class ModelSettings:
    model: str = setting("tiny", "Base model: 'tiny', a diffusers folder, a .safetensors file or a hub id.")
    device: str = setting("auto", "Device: auto (CUDA if present, else CPU), cuda, cuda:N or cpu.")
    dtype: str = setting("auto", "Weights dtype: auto (fp16/bf16 on CUDA, fp32 on CPU), fp32, fp16, bf16.")


@dataclass(frozen=True)
class GenerateSettings:
    prompt: str = setting("a red mug on a white background", "What to draw.", level="basic")
    negative: str = setting("", "What to steer away from (negative prompt).")
    seed: int = setting(0, "Random seed; the same seed gives the same image.")
    steps: int = setting(25, "Drawing steps: more = finer, slower (sampler steps).", min=1, max=150)
    guidance: float = setting(6.0, "How closely the image follows the prompt; 5-8 is typical "
                                   "(classifier-free guidance scale).", min=0.0, max=30.0)
    width: int = setting(0, "Image width in pixels; 0 = the model's native size.", min=0, max=4096)
    height: int = setting(0, "Image height in pixels; 0 = the model's native size.", min=0, max=4096)
    sampler: str = setting("DPM++ 2M Karras", "Sampler by its A1111 name: DPM++ 2M Karras, DPM++ 2M, Euler a, "
                           "Euler, DDIM, UniPC.")
    count: int = setting(1, "Images to draw; image i uses seed + i.", min=1, max=16, level="basic")

    def __post_init__(self) -> None:
        check_ranges(self)
        for name in ("prompt", "negative"):
            check_text(name, getattr(self, name))


MAX_PROMPT_CHARS = 20_000  # the text encoder reads ~75 tokens; the rest only costs tokenizer time


def check_text(name: str, text: str) -> None:
    """A prompt: a string of at most MAX_PROMPT_CHARS without control characters (tab/newline are fine)."""
    if not isinstance(text, str):
        raise StudioError(f"{name} must be text, not {type(text).__name__}.")
    if len(text) > MAX_PROMPT_CHARS:
        raise StudioError(f"The {name} is {len(text):,} characters long; at most {MAX_PROMPT_CHARS:,} are accepted.",
                          "The model reads only about 75 tokens (~300 characters) of it anyway; shorten it.")
    bad = next((i for i, c in enumerate(text) if (ord(c) < 32 and c not in "\t\n\r") or 127 <= ord(c) < 160), None)
    if bad is not None:
        raise StudioError(f"The {name} holds the control character U+{ord(text[bad]):04X} at position {bad}.",
                          "Remove it (it is invisible, and often pasted by accident).")


@dataclass(frozen=True)
class EngineSettings:
    """How the generation engine keeps adapters on its one pipeline."""
    max_loaded_adapters: int = setting(8, "Adapters kept loaded at once; the least recently used is unloaded "
                                       "beyond this.", min=1, max=256)
    fuse_after: int = setting(3, "Fuse the blend into the weights after this many identical requests in a row "
                              "(0 = only when asked).", min=0, max=1000)
    exact_unfuse: bool = setting(True, "Keep a CPU copy of the weights a fuse changes, so unfusing restores them "
                                 "bit-exactly (peft's own unfuse leaves rounding residue).")


@dataclass(frozen=True)
class ServeSettings:
    host: str = setting("127.0.0.1", "Interface to listen on (0.0.0.0 exposes the studio to your network).")
    port: int = setting(7860, "TCP port.", min=1, max=65535)
    max_file_size_mb: int = setting(50, "Largest upload accepted, in MB.", min=1, max=2048)
    queue_size: int = setting(16, "Requests allowed to wait in the queue.", min=1, max=1024)
    auth: str = setting("", "USER:PASS required to open the studio (or set STUDIO_AUTH); empty = no login.")


@dataclass(frozen=True)
class JobSettings:
    """The background training runner (``studio.jobs``)."""
    max_queued: int = setting(4, "Trainings allowed to wait for a busy device; more are refused (queue full).",
                              min=0, max=100)
    stderr_tail_lines: int = setting(20, "Last lines of a training's stderr kept in its run record.",
                                     min=1, max=1000)

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass(frozen=True)
class IngestSettings:
    """Limits and conversions applied when images enter a dataset (see README for reasons)."""
    max_pixels: int = setting(64_000_000, "Largest image accepted, in pixels (a 50 MP phone photo fits).",
                              min=1, max=178_956_970)
    max_file_mb: int = setting(100, "Largest single file accepted, in MB.", min=1, max=2048)
    min_side: int = setting(0, "Smallest accepted short side in pixels; 0 = half the base model's native size.",
                            min=0, max=8192)
    store_max_side: int = setting(2048, "Stored copies are downscaled to at most this long side.",
                                  min=64, max=8192)
    alpha_background: str = setting("#ffffff", "Colour that transparent pixels are composited onto.")
    zip_max_members: int = setting(2000, "Most files a zip may hold.", min=1, max=100_000)
    zip_max_total_mb: int = setting(2048, "Most bytes a zip may unpack to, in MB.", min=1, max=65_536)
    zip_max_ratio: int = setting(100, "Highest compression ratio a zip member may have (zip bombs exceed it).",
                                 min=2, max=10_000)
    caption_template: str = setting("a photo in {trigger} style", "Caption for images without a .txt sidecar.")
    trigger: str = setting("", "A made-up word that calls up the style in a prompt (e.g. sepiashop); "
                               "empty = the set's name.")
    prepend_trigger: bool = setting(False, "Put the trigger word in front of sidecar captions too.")
    val_fraction: float = setting(0.1, "Share of images held out for validation (at least one when there are 5+).",
                                  min=0.0, max=0.5)
    seed: int = setting(0, "Seed of the hold-out split.")


@dataclass(frozen=True)
class ExportSettings:
    """How `studio export` writes an adapter for another tool (see README: compatibility table)."""
    format: str = setting("kohya", "kohya: for AUTOMATIC1111, Forge, ComfyUI and kohya (SDXL with sd-scripts "
                                   "block names); diffusers: for Python code (PEFT keys, `load_lora_weights`).")
    dtype: str = setting("fp16", "Number precision in the file: fp16 is half the size of fp32 and looks "
                                 "the same; bf16 also half.")
    rank: int = setting(0, "A smaller file: compress every module to this rank (SVD, error "
                               "reported); 0 = keep the trained ranks.", min=0, max=1024)
    keep: float = setting(0.0, "Resize each module to the smallest rank keeping this share of its singular-value "
                               "energy (sv_fro, e.g. 0.95); 0 = off.", min=0.0, max=1.0)
    fold_alpha: bool = setting(True, "diffusers format: fold alpha/rank into lora_B (scale 1 in every loader); "
                                     "off = exact weights, alphas only in the lora_adapter_metadata header.")

    def __post_init__(self) -> None:
        check_ranges(self)
        for name, allowed in (("format", ("kohya", "diffusers")), ("dtype", ("fp32", "fp16", "bf16"))):
            if getattr(self, name) not in allowed:
                raise StudioError(f"{name}={getattr(self, name)!r} is not one of: {', '.join(allowed)}.")


@dataclass(frozen=True)
class ImportSettings:
    """Limits for LoRA files from elsewhere (untrusted input), checked before any tensor is read."""
    max_file_mb: int = setting(2048, "Largest LoRA file accepted, in MB (big SDXL LoCons are ~1.7 GB).",
                               min=1, max=16_384)
    max_header_mb: int = setting(16, "Largest safetensors JSON header accepted, in MB.", min=1, max=100)
    max_tensors: int = setting(20_000, "Most tensors a LoRA file may hold (SDXL full LoCon: ~7,000).",
                               min=1, max=1_000_000)
    max_rank: int = setting(1024, "Highest LoRA rank accepted.", min=1, max=4096)
    allow_pickle: bool = setting(True, "Accept .pt/.ckpt/.bin files, read only with torch.load(weights_only=True).")


@dataclass(frozen=True)
class LoraSettings:
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
class TrainSettings:
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
    seed: int = setting(0, "Seed of data order, noise and timesteps.")
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
    validate_every: int = setting(50, "Validation loss on held-out images every N steps; 0 = off.", min=0)
    sample_every: int = setting(100, "Preview images every N steps; 0 = off.", min=0)
    sample_prompts: tuple = setting(("a red mug, {trigger} style",), "Preview prompts ({trigger} is replaced).")
    sample_seed: int = setting(0, "Seed of the preview images.")
    sample_steps: int = setting(20, "Sampler steps of the previews.", min=1, max=150)
    checkpoint_every: int = setting(100, "Resumable checkpoint every N steps; 0 = only at the end.", min=0)
    keep_checkpoints: int = setting(2, "Checkpoints kept (oldest deleted).", min=1, max=100)
    final: str = setting("last", "Adapter written at the end: last, or best (lowest validation loss).",
                          choices=("last", "best"))
    max_bad_steps: int = setting(3, "Non-finite losses in a row before training stops with an error.", min=1)

    def __post_init__(self) -> None:
        check_ranges(self)
        for f in fields(self):  # the allowed values live on the field (the UI's dropdowns read them too)
            allowed = f.metadata.get("choices")
            if allowed and getattr(self, f.name) not in allowed:
                raise StudioError(f"{f.name}={getattr(self, f.name)!r} is not one of: {', '.join(allowed)}.")


def check_ranges(obj: Any) -> None:
    for f in fields(obj):
        v, lo, hi = getattr(obj, f.name), f.metadata.get("min"), f.metadata.get("max")
        if isinstance(v, float) and not math.isfinite(v):  # NaN passes every < and > test
            raise StudioError(f"{f.name}={v!r} is not a number.", f"Use a finite value from {lo} to {hi}.")
        if lo is not None and v < lo or hi is not None and v > hi:
            raise StudioError(f"{f.name}={v!r} is out of range.", f"Use a value from {lo} to {hi}.")
        if dataclasses.is_dataclass(v):
            check_ranges(v)


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
    except ValueError:
        raise StudioError(f"{name}={raw!r} is not a valid {ftype}.") from None


def overlay(obj: T, values: dict[str, Any], source: str) -> T:
    """Return ``obj`` with ``values`` applied; unknown keys are errors naming ``source``."""
    known = {f.name: f for f in fields(obj)}
    changes: dict[str, Any] = {}
    for key, val in values.items():
        if key not in known:
            raise StudioError(f"Unknown setting {key!r} in {source}.",
                              f"Known settings: {', '.join(sorted(known))}.")
        cur = getattr(obj, key)
        if dataclasses.is_dataclass(cur):
            if not isinstance(val, dict):
                raise StudioError(f"Setting {key!r} in {source} must be a table.")
            changes[key] = overlay(cur, val, f"{source} [{key}]")
        elif isinstance(cur, tuple):
            changes[key] = tuple(val) if isinstance(val, (list, tuple)) else tuple(str(val).split("|"))
        else:
            changes[key] = coerce(type(obj), key, val) if isinstance(val, str) and \
                not isinstance(cur, str) else _typed(key, val, cur, source)
    return dataclasses.replace(obj, **changes)


def _typed(key: str, val: Any, cur: Any, source: str) -> Any:
    """A preset value must have the setting's type (TOML ``steps = 10.5`` is not a step count)."""
    kind = type(cur)
    ok = isinstance(val, kind) and not (kind is int and isinstance(val, bool)) or \
        kind is float and isinstance(val, int) and not isinstance(val, bool)
    if not ok:
        raise StudioError(f"Setting {key!r} in {source} is {val!r}; it must be of type {kind.__name__}.")
    return float(val) if kind is float else val


def apply_sets(obj: T, pairs: list[str], source: str = "--set") -> T:
    """Apply ``key=value`` strings; ``lora.rank=16`` reaches into a nested group."""
    nested: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise StudioError(f"{source} {pair!r} is not key=value.")
        node = nested
        *parents, leaf = key.strip().split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value.strip()
    return overlay(obj, nested, source)


def load_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudioError(f"Preset file {path} does not exist.") from None
    except tomllib.TOMLDecodeError as e:
        raise StudioError(f"{path} is not valid TOML: {e}.") from None
