"""Golden key names from the meta-device models: SD 1.5 and SDXL (sd-scripts SGM block names).

A renamed key fails here: these are the names A1111, ComfyUI, Forge and kohya look for.
"""

import torch

from studio.adapters import foreign, sdxl_names
from studio.adapters.structure import family_table, unet_config

SD1_KEYS = [
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q",
    "lora_unet_down_blocks_2_attentions_1_transformer_blocks_0_attn2_to_k",
    "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn1_to_out_0",
    "lora_unet_up_blocks_3_attentions_2_transformer_blocks_0_ff_net_2",
    "lora_unet_up_blocks_1_attentions_0_transformer_blocks_0_ff_net_0_proj",
    "lora_unet_down_blocks_0_resnets_0_conv1",
    "lora_te_text_model_encoder_layers_0_self_attn_q_proj",
    "lora_te_text_model_encoder_layers_11_self_attn_out_proj",
]

SDXL_SGM = {  # diffusers module path -> the key sd-scripts writes
    "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q": "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q",
    "down_blocks.2.attentions.1.transformer_blocks.9.attn2.to_k": "lora_unet_input_blocks_8_1_transformer_blocks_9_attn2_to_k",
    "down_blocks.1.attentions.1.proj_in": "lora_unet_input_blocks_5_1_proj_in",
    "mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj": "lora_unet_middle_block_1_transformer_blocks_0_ff_net_0_proj",
    "up_blocks.0.attentions.2.transformer_blocks.9.attn1.to_out.0": "lora_unet_output_blocks_2_1_transformer_blocks_9_attn1_to_out_0",
    "up_blocks.1.attentions.0.proj_out": "lora_unet_output_blocks_3_1_proj_out",
    "down_blocks.0.resnets.1.conv2": "lora_unet_input_blocks_2_0_out_layers_3",
    "up_blocks.2.resnets.2.conv1": "lora_unet_output_blocks_8_0_in_layers_2",
    "mid_block.resnets.1.time_emb_proj": "lora_unet_middle_block_2_emb_layers_1",
    "up_blocks.1.resnets.0.conv_shortcut": "lora_unet_output_blocks_3_0_skip_connection",
    "up_blocks.0.upsamplers.0.conv": "lora_unet_output_blocks_2_2_conv",
    "down_blocks.1.downsamplers.0.conv": "lora_unet_input_blocks_6_0_op",
}


def test_sd1_golden_keys_exist_in_the_meta_model():
    table = family_table("sd1")
    for key in SD1_KEYS:
        assert key in table, key
    assert table[SD1_KEYS[1]].shape == (1280, 768)  # attn2.to_k reads the 768-wide CLIP-L states
    assert table[SD1_KEYS[6]].component == "text_encoder"


def test_sdxl_sgm_golden_names():
    table, blocks = family_table("sdxl"), sdxl_names.block_map(unet_config("sdxl"))
    paths = {m.path for m in table.values() if m.component == "unet"}
    for path, key in SDXL_SGM.items():
        assert path in paths, path
        assert sdxl_names.sgm_key(path, blocks) == key
    assert "lora_te1_text_model_encoder_layers_11_self_attn_q_proj" in table
    assert table["lora_te2_text_model_encoder_layers_31_self_attn_out_proj"].shape == (1280, 1280)


def test_diffusers_reads_every_sgm_name_back_to_its_module():
    """diffusers' own SGM conversion inverts sdxl_names on all 794 Linear/Conv modules of the SDXL UNet."""
    table, config = family_table("sdxl"), unet_config("sdxl")
    blocks = sdxl_names.block_map(config)
    unet = {m.path for m in table.values() if m.component == "unet"}
    assert len(unet) == 794
    sd = {}
    for path in unet:
        k = sdxl_names.sgm_key(path, blocks)
        sd.update({f"{k}.lora_down.weight": torch.zeros(1, 1), f"{k}.lora_up.weight": torch.zeros(1, 1),
                   f"{k}.alpha": torch.tensor(3.0)})
    parts = foreign.parts(sd, config, {})
    assert {p for _, p in parts} == unet
    assert {v["alpha"] for v in parts.values()} == {3.0}
