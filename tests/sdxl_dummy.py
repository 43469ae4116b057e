"""A miniature SDXL pipeline (two text encoders, text_time conditioning) for CPU tests."""

import torch
from diffusers import (AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline,
                       UNet2DConditionModel)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from studio.models.loading import TINY_DIR, LoadedModel, ModelRef


def dummy_sdxl(tokenizer_dir=TINY_DIR / "tokenizer") -> LoadedModel:
    torch.manual_seed(0)
    tok = CLIPTokenizer.from_pretrained(tokenizer_dir)
    tok.model_max_length = min(tok.model_max_length, 77)
    n = len(tok)
    te_cfg = dict(vocab_size=n, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  max_position_embeddings=tok.model_max_length, bos_token_id=tok.bos_token_id,
                  eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, projection_dim=32)
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 2), projection_class_embeddings_input_dim=80,
        cross_attention_dim=64, norm_num_groups=32)
    vae = AutoencoderKL(block_out_channels=(32, 32), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        norm_num_groups=32, sample_size=32)
    pipe = StableDiffusionXLPipeline(
        vae=vae, text_encoder=CLIPTextModel(CLIPTextConfig(**te_cfg)), tokenizer=tok,
        text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**te_cfg)), tokenizer_2=tok, unet=unet,
        scheduler=EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                         timestep_spacing="leading", steps_offset=1))
    pipe.set_progress_bar_config(disable=True)
    return LoadedModel(pipe, "sdxl", ModelRef("random", "dummy sdxl"), torch.device("cpu"), torch.float32)
