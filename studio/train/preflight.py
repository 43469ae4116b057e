"""VRAM preflight: estimate peak training memory before any step runs.

peak ~= frozen weights on the GPU (by dtype / quantization)
      + LoRA weights (fp32) + their gradients (fp32) + optimizer state (8-bit: 2 B/param)
      + activations kept for backward (measured per latent pixel, see
        benchmarks/activation_model.py) x batch x latent pixels
      + the largest unit's activations once more for backward's transient gradients
        (twice with gradient checkpointing: its recompute, then its gradients)
      + 10 % allocator slack
This is an estimate from CPU measurements; GPU peaks were not measured in this milestone.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ..config import LoraSettings, TrainSettings
from ..errors import StudioError

GiB = 2**30
# bf16 bytes kept for backward per latent pixel, batch 1, LoRA on attention
# (benchmarks/activation_model.py, 2026-11-23): (full, checkpointed, largest checkpointed unit).
# tiny: same method, fp32 on CPU halved (its real runs are fp32 on CPU: the estimate doubles it back).
ACTIVATIONS = {
    "sd1": (198_202, 36_560, 15_106),
    "sd2": (187_532, 25_959, 15_121),
    "sdxl": (365_380, 30_072, 7_910),
    "tiny": (15_400, 2_900, 2_100),
}
VAE_FACTOR = {"tiny": 4, "sd1": 8, "sd2": 8, "sdxl": 8}
SUGGEST = {"sd1": "sd15-8gb", "sd2": "sd15-8gb", "sdxl": "sdxl-8gb", "tiny": "tiny-cpu"}


@dataclass(frozen=True)
class Estimate:
    weights: int
    lora: int
    activations: int
    total: int

    def format(self) -> str:
        return (f"~{self.total / GiB:.1f} GiB (frozen weights {self.weights / GiB:.1f}, LoRA+grads+optimizer "
                f"{self.lora / GiB:.2f}, activations {self.activations / GiB:.1f})")


def estimate(family: str, s: TrainSettings, unet_params: int, text_params: list[int], vae_params: int,
             lora_params: int, dtype_bytes: int, resolution: int) -> Estimate:
    qbytes = {"none": dtype_bytes, "8bit": 1.0, "nf4": 0.55}[s.quantize]
    weights = unet_params * qbytes
    text_on_gpu = s.lora.text_encoder or not s.cache_text
    weights += sum(text_params) * (qbytes if text_on_gpu else 0)
    if not s.cache_latents or s.random_crop:
        weights += vae_params * (4 if family == "sdxl" else dtype_bytes)  # the SDXL VAE runs in fp32
    opt_bytes = 2 if s.optimizer == "adamw8bit" else 8
    lora = lora_params * (4 + 4 + opt_bytes)
    px = (resolution // VAE_FACTOR[family]) ** 2
    full, ckpt, block = ACTIVATIONS[family]
    scale = 2 if dtype_bytes == 4 else 1  # measured in bf16
    act = (ckpt * px * s.batch_size + 2 * block * px * s.batch_size) if s.gradient_checkpointing \
        else (full * px + block * px) * s.batch_size
    act *= scale
    total = int((weights + lora + act) * 1.10)
    return Estimate(int(weights), int(lora), int(act), total)


def check(est: Estimate, budget_bytes: int, family: str, preset_hint: bool = True) -> None:
    """Refuse to start a run that will not fit, and say what would."""
    if est.total <= budget_bytes:
        return
    fix = f"Try --preset {SUGGEST[family]}" if preset_hint else "Reduce batch size or resolution"
    raise StudioError(f"This run needs {est.format()} but only {budget_bytes / GiB:.1f} GiB of GPU memory is "
                      "available.", f"{fix} (gradient checkpointing, cached latents/text, 8-bit AdamW), "
                      "a smaller batch or resolution, or --set quantize=nf4.")


def param_count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def lora_param_count(unet, text_encoders: list, s: TrainSettings) -> int:
    """Trainable LoRA parameters for these settings (built on the meta device: free)."""
    import copy

    import torch

    from ..lora.inject import inject

    with torch.device("meta"):
        u = copy.deepcopy(unet).to("meta")
        tes = [copy.deepcopy(t).to("meta") for t in text_encoders]
        return sum(p.numel() for p in inject(u, tes, s.lora))


def for_family(family: str, s: TrainSettings, resolution: int = 0) -> Estimate:
    """Estimate from the shipped full-size configs, without loading any weights."""
    from ..models.family import NATIVE_RESOLUTION

    unet, tes, vae, lora = _config_counts(family, s.lora)
    dtype_bytes = 4 if family == "tiny" else 2
    return estimate(family, s, unet, list(tes), vae, lora, dtype_bytes,
                    resolution or s.resolution or NATIVE_RESOLUTION[family])


@functools.lru_cache(maxsize=32)
def _config_counts(family: str, lora: LoraSettings) -> tuple[int, tuple[int, ...], int, int]:
    """Parameter counts of a family's shipped configs (built on the meta device; cached because
    the page asks again on every settings change)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from ..models.loading import CONFIG_DIR, TINY_DIR

    root = TINY_DIR if family == "tiny" else CONFIG_DIR / family
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(root / "unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(root / "vae"))
        tes = [CLIPTextModel(CLIPTextConfig.from_pretrained(root / sub))
               for sub in ("text_encoder", "text_encoder_2") if (root / sub).is_dir()]
    lora_params = lora_param_count(unet, tes, TrainSettings(lora=lora))
    return param_count(unet), tuple(param_count(t) for t in tes), param_count(vae), lora_params


def device_memory(device) -> int:
    """Total memory of a CUDA device in bytes; 0 for a CPU (the estimate is then for a GPU)."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return 0
    return torch.cuda.mem_get_info(device)[1]
