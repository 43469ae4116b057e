"""The shipped configs build the real full-size architectures (on the meta device: no memory)."""

import pytest
import torch
from diffusers import UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from studio.models.loading import CONFIG_DIR


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _unet(family: str) -> UNet2DConditionModel:
    with torch.device("meta"):
        return UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(CONFIG_DIR / family / "unet"))


def _text(family: str, sub: str = "text_encoder", cls=CLIPTextModel):
    with torch.device("meta"):
        return cls(CLIPTextConfig.from_pretrained(CONFIG_DIR / family / sub))


@pytest.mark.parametrize("family,unet,text", [
    ("sd1", 859_520_964, 123_060_480),
    ("sd2", 865_910_724, 340_387_840),
    ("sdxl", 2_567_463_684, 123_060_480),
])
def test_full_size_parameter_counts(family, unet, text):
    assert _count(_unet(family)) == unet
    assert _count(_text(family)) == text


def test_sdxl_second_text_encoder():
    assert _count(_text("sdxl", "text_encoder_2", CLIPTextModelWithProjection)) == 694_659_840


def test_sdxl_vae_config_upcasts_and_scales():
    from diffusers import AutoencoderKL

    cfg = AutoencoderKL.load_config(CONFIG_DIR / "sdxl" / "vae")
    assert cfg["scaling_factor"] == 0.13025 and cfg["force_upcast"] is True
