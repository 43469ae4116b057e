"""The embedded tiny Stable Diffusion: real diffusers/transformers components, small sizes.

Same shapes of code path as SD 1.5 (4 latent channels, CLIP text encoder with 77 tokens,
epsilon prediction, SD's scaled-linear noise schedule); only the widths are small.
"""

from __future__ import annotations

from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

RESOLUTION = 64  # pixels
VAE_FACTOR = 4  # 64 px -> 16x16 latents
MAX_TOKENS = 20  # captions are <= 12 tokens; 77 would cost 4x the text work for nothing

SCHEDULER = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
    prediction_type="epsilon", steps_offset=1,
)


def make_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=RESOLUTION // VAE_FACTOR, in_channels=4, out_channels=4,
        block_out_channels=(64, 128, 128), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=64, attention_head_dim=2, norm_num_groups=32,
    )


def make_vae(scaling_factor: float = 1.0) -> AutoencoderKL:
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, sample_size=RESOLUTION,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(32, 64, 64), layers_per_block=1, norm_num_groups=32,
        scaling_factor=scaling_factor,
    )


def make_text_encoder(vocab_size: int, bos: int, eos: int) -> CLIPTextModel:
    cfg = CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=256, num_hidden_layers=3,
        num_attention_heads=4, max_position_embeddings=MAX_TOKENS, hidden_act="quick_gelu",
        bos_token_id=bos, eos_token_id=eos, pad_token_id=eos, projection_dim=64,
    )
    return CLIPTextModel(cfg)


def make_scheduler() -> DPMSolverMultistepScheduler:
    """The default sampler shipped with the model (20-30 steps are enough)."""
    return DPMSolverMultistepScheduler(**SCHEDULER)
