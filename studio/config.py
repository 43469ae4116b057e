"""Every setting: frozen dataclasses with one default and a one-line help each.

The CLI builds its flags from these fields, the UI reads its defaults from them and
presets (``presets/*.toml``) overlay them (:mod:`studio.overlay`); unknown keys are errors.
Every value is checked against its field's declaration by one schema (:mod:`studio.schema`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from .schema import check_fields


def setting(default: Any, help: str, **meta: Any) -> Any:
    """A dataclass field with its default and one-line help text."""
    return field(default=default, metadata={"help": help, **meta})


def help_of(cls: type, name: str) -> str:
    return {f.name: f.metadata.get("help", "") for f in fields(cls)}[name]


SEED = {"min": 0, "max": 2**32 - 1}  # every seed: numpy and the samplers take 32-bit seeds


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
    width: int = setting(0, "Image width in pixels, a multiple of 8 (16 on the tiny model), up to 4x the "
                         "model's native size; 0 = the native size.", min=0, max=4096)
    height: int = setting(0, "Image height in pixels, a multiple of 8 (16 on the tiny model), up to 4x the "
                         "model's native size; 0 = the native size.", min=0, max=4096)
    sampler: str = setting("DPM++ 2M Karras", "Sampler by its A1111 name: DPM++ 2M Karras, DPM++ 2M, Euler a, "
                           "Euler, DDIM, UniPC.")
    count: int = setting(1, "Images to draw; image i uses seed + i.", min=1, max=16, level="basic")


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
    judge_confirm: int = setting(8, "final=recommended: the checkpoints within plateau_delta of the best are "
                                    "judged again on this many captions before the pick is written (a round's "
                                    "few captions are noisy); 0 = off.", min=0, max=64)
    copy_threshold: float = setting(0.8, "Copy warning when drawn images come this much closer to a training "
                                         "photo than held-out photos do (0.8 = a fifth closer; 1 = as close).",
                                    min=0.0, max=1.0)
    stop: str = setting("steps", "When to stop: steps (all of them), or learned (the style score has "
                                 "plateaued, or the adapter starts copying its photos; needs sample_every > 0).",
                          choices=("steps", "learned"))
    plateau_rounds: int = setting(2, "stop=learned: rounds without a gain of plateau_delta before stopping.",
                                  min=1, max=100)
    plateau_delta: float = setting(5.0, "Style-score gain (percentage points) that counts as progress.",
                                   min=0.0, max=100.0)
    max_bad_steps: int = setting(3, "Non-finite losses in a row before training stops with an error.",
                                min=1, max=1_000_000)
