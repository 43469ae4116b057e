"""SDXL UNet module names: diffusers (``down_blocks.1.attentions.0``) <-> the original SGM / sd-scripts
names (``input_blocks.4.1``) that kohya's sd-scripts, A1111, Forge and ComfyUI write for SDXL LoRAs.

The block table is derived from the UNet config (block types, ``layers_per_block``) the same way
the SGM UNet lays its blocks out, so it also fits miniature UNets. The SGM -> diffusers direction
for import is diffusers' own ``_maybe_map_sgm_blocks_to_diffusers``; tests check that it inverts
:func:`to_sgm` on every module of the full-size SDXL UNet.
"""

from __future__ import annotations

# Inside a resnet the SGM names differ too; inside a transformer (attentions) they are the same.
RESNET = {"conv1": "in_layers.2", "conv2": "out_layers.3", "time_emb_proj": "emb_layers.1",
          "conv_shortcut": "skip_connection"}
TOP = {"conv_in": "input_blocks.0.0", "conv_out": "out.2", "time_embedding.linear_1": "time_embed.0",
       "time_embedding.linear_2": "time_embed.2", "add_embedding.linear_1": "label_emb.0.0",
       "add_embedding.linear_2": "label_emb.0.2"}


def block_map(config: dict) -> dict[str, str]:
    """diffusers block prefix -> SGM block prefix, e.g. ``down_blocks.1.attentions.0`` -> ``input_blocks.4.1``."""
    lpb = config["layers_per_block"]
    if not isinstance(lpb, int):
        raise ValueError("per-block layers_per_block lists have no SGM layout")
    down, up = config["down_block_types"], config["up_block_types"]
    m: dict[str, str] = {}
    for i, kind in enumerate(down):
        for j in range(lpb):
            n = 1 + i * (lpb + 1) + j
            m[f"down_blocks.{i}.resnets.{j}"] = f"input_blocks.{n}.0"
            if "CrossAttn" in kind:
                m[f"down_blocks.{i}.attentions.{j}"] = f"input_blocks.{n}.1"
        if i < len(down) - 1:
            m[f"down_blocks.{i}.downsamplers.0.conv"] = f"input_blocks.{(i + 1) * (lpb + 1)}.0.op"
    m.update({"mid_block.resnets.0": "middle_block.0", "mid_block.attentions.0": "middle_block.1",
              "mid_block.resnets.1": "middle_block.2"})
    for i, kind in enumerate(up):
        attn = "CrossAttn" in kind
        for j in range(lpb + 1):
            n = i * (lpb + 1) + j
            m[f"up_blocks.{i}.resnets.{j}"] = f"output_blocks.{n}.0"
            if attn:
                m[f"up_blocks.{i}.attentions.{j}"] = f"output_blocks.{n}.1"
        if i < len(up) - 1:
            m[f"up_blocks.{i}.upsamplers.0.conv"] = f"output_blocks.{i * (lpb + 1) + lpb}.{2 if attn else 1}.conv"
    return m


def to_sgm(path: str, blocks: dict[str, str]) -> str:
    """A diffusers UNet module path in SGM naming; raises KeyError for modules SGM does not have."""
    if path in TOP:
        return TOP[path]
    for prefix in sorted(blocks, key=len, reverse=True):
        if path == prefix or path.startswith(prefix + "."):
            rest = path[len(prefix) + 1:]
            if ".resnets." in prefix or prefix.startswith("mid_block.resnets"):
                rest = RESNET.get(rest, rest)
            return blocks[prefix] + ("." + rest if rest else "")
    raise KeyError(path)


def sgm_key(path: str, blocks: dict[str, str]) -> str:
    """The kohya key sd-scripts writes for a diffusers UNet module path."""
    return "lora_unet_" + to_sgm(path, blocks).replace(".", "_")
