"""Load a base model: the embedded tiny model, a diffusers folder, a single file or a hub id.

Single files load through diffusers' ``from_single_file`` with the architecture configs
shipped in ``configs/`` and tokenizers built offline, so no network is needed.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import StudioError
from .family import NATIVE_RESOLUTION, family_from_folder, family_from_keys

log = logging.getLogger(__name__)

TINY_DIR = Path(__file__).parent / "tiny" / "weights"
CONFIG_DIR = Path(__file__).parent / "configs"
PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class ModelRef:
    kind: str  # "tiny" | "folder" | "single_file" | "hub"
    location: str


@dataclass
class LoadedModel:
    pipe: Any  # a diffusers StableDiffusionPipeline / StableDiffusionXLPipeline
    family: str
    ref: ModelRef
    device: torch.device
    dtype: torch.dtype

    @property
    def resolution(self) -> int:
        return NATIVE_RESOLUTION[self.family]

    @functools.cached_property
    def base_hash(self) -> str:
        """Short content hash of the base UNet weights (LoRA parameters excluded)."""
        from .hashing import weights_hash

        return weights_hash(self.pipe.unet)

    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this: VAE factor x the UNet's downsamplings."""
        return self.pipe.vae_scale_factor * 2 ** (len(self.pipe.unet.config.block_out_channels) - 1)


def parse_ref(ref: str) -> ModelRef:
    """Classify what the user typed: 'tiny', a folder, a file, or a hub id."""
    ref = (ref or "tiny").strip()
    if ref == "tiny":
        return ModelRef("tiny", str(TINY_DIR))
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise StudioError(f"{path} is a folder but not a diffusers model (no model_index.json).",
                              "Point at the folder that contains model_index.json, or at a .safetensors file.")
        return ModelRef("folder", str(path))
    if path.suffix.lower() in (".safetensors",) + PICKLE_SUFFIXES:
        if not path.is_file():
            raise StudioError(f"Model file {path} does not exist.")
        return ModelRef("single_file", str(path))
    if path.exists() or ref.startswith((".", "/", "~")) or ref.count("/") != 1:
        raise StudioError(f"Cannot use {ref!r} as a base model.",
                          "Use 'tiny', a diffusers folder, a .safetensors checkpoint or a hub id like 'org/name'.")
    return ModelRef("hub", ref)


def family_of(ref: ModelRef) -> str | None:
    """The family of a base model from names and configs only (no weights are read);
    None for a hub id, which is only known once downloaded."""
    if ref.kind == "tiny":
        return "tiny"
    if ref.kind == "folder":
        return family_from_folder(Path(ref.location))
    if ref.kind == "single_file":
        return family_from_keys(checkpoint_keys(Path(ref.location)))
    return None


def size_multiple_of(ref: ModelRef, family: str) -> int:
    """What :attr:`LoadedModel.size_multiple` will be, from the configs alone: the VAE's
    factor (2 per extra VAE block) x the UNet's downsamplings."""
    import json

    root = Path(ref.location) if ref.kind in ("tiny", "folder") else CONFIG_DIR / family
    vae = json.loads((root / "vae" / "config.json").read_text())
    unet = json.loads((root / "unet" / "config.json").read_text())
    return 2 ** (len(vae["block_out_channels"]) - 1) * 2 ** (len(unet["block_out_channels"]) - 1)


def pick_device_dtype(device: str = "auto", dtype: str = "auto") -> tuple[torch.device, torch.dtype]:
    """CUDA with bf16 (fp16 on pre-Ampere) when present; fp32 on CPU (half is slow/unsupported there)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and "LOCAL_RANK" in os.environ:  # under accelerate/torchrun: one GPU per process
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise StudioError("CUDA was requested but no CUDA GPU is available.", "Use --device cpu.")
    if dtype == "auto":
        if dev.type != "cuda":
            return dev, torch.float32
        return dev, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dtype not in _DTYPES:
        raise StudioError(f"Unknown dtype {dtype!r}.", f"Use one of: auto, {', '.join(_DTYPES)}.")
    return dev, _DTYPES[dtype]


def checkpoint_keys(path: Path) -> list[str]:
    """Tensor names of a single-file checkpoint, without loading tensor data where possible."""
    if path.suffix.lower() == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                return list(f.keys())
        except Exception as e:  # safetensors raises its own error types
            raise StudioError(f"{path.name} is not a valid .safetensors file ({e}).") from None
    try:  # pickle: never execute code from the file
        sd = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:
        raise StudioError(
            f"Refusing {path.name}: it is a pickle file that holds more than plain tensors, and "
            f"unpickling such a file can run arbitrary code ({type(e).__name__}).",
            "Convert it to .safetensors with a tool you trust, or download the .safetensors release.") from None
    sd = sd.get("state_dict", sd) if isinstance(sd, dict) else {}
    return list(sd.keys())


def _single_file(ref: ModelRef, dtype: torch.dtype):
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    from .tokenizers import clip_tokenizer

    path = Path(ref.location)
    family = family_from_keys(checkpoint_keys(path))
    cls = StableDiffusionXLPipeline if family == "sdxl" else StableDiffusionPipeline
    extra: dict[str, Any] = {"tokenizer": clip_tokenizer("!" if family == "sd2" else "<|endoftext|>")}
    if family == "sdxl":
        extra["tokenizer_2"] = clip_tokenizer("!")
    else:
        extra.update(safety_checker=None, requires_safety_checker=False)
    pipe = cls.from_single_file(str(path), config=str(CONFIG_DIR / family), local_files_only=True,
                                torch_dtype=dtype, **extra)
    return pipe, family


def _from_pretrained(location: str, dtype: torch.dtype, offline: bool):
    from diffusers import DiffusionPipeline

    return DiffusionPipeline.from_pretrained(location, torch_dtype=dtype, local_files_only=offline,
                                             safety_checker=None, requires_safety_checker=False)


def _hub(ref: ModelRef, dtype: torch.dtype):
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    try:
        pipe = _from_pretrained(ref.location, dtype, offline)
    except Exception as e:
        raise StudioError(
            f"Could not load {ref.location!r} from the model hub ({type(e).__name__}: {str(e)[:200]}).",
            "Without network access use a local model instead: 'tiny' (built in), a diffusers "
            "folder (--model /path/to/folder), or a single .safetensors checkpoint "
            "(--model /path/to/model.safetensors).") from None
    return pipe, _family_of_pipe(pipe)


def _family_of_pipe(pipe) -> str:
    if "XL" in type(pipe).__name__:
        return "sdxl"
    cross = pipe.unet.config.cross_attention_dim
    return {768: "sd1", 1024: "sd2"}.get(cross, "tiny")


def load_model(ref: str = "tiny", device: str = "auto", dtype: str = "auto") -> LoadedModel:
    """Load a base model for generation or training, placed on the chosen device."""
    mref = parse_ref(ref)
    dev, dt = pick_device_dtype(device, dtype)
    if mref.kind in ("tiny", "folder"):
        family = "tiny" if mref.kind == "tiny" else family_from_folder(Path(mref.location))
        pipe = _from_pretrained(mref.location, dt, offline=True)
    elif mref.kind == "single_file":
        pipe, family = _single_file(mref, dt)
    else:
        pipe, family = _hub(mref, dt)
    if family == "sdxl" and dt == torch.float16:
        pipe.vae.config.force_upcast = True  # the SDXL VAE overflows in fp16
    pipe.set_progress_bar_config(disable=True)
    log.info("loaded %s (%s) on %s as %s", mref.location, family, dev, dt)
    return LoadedModel(pipe.to(dev), family, mref, dev, dt)
