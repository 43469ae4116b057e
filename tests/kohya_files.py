"""LoRA files in the exact layout kohya sd-scripts' ``networks/lora.py`` writes (test fixtures).

What sd-scripts does (``LoRANetwork.__init__`` / ``create_modules`` / ``save_weights``):
- text encoder: every ``Linear`` inside ``CLIPAttention`` *and* ``CLIPMLP`` — ``q_proj``, ``k_proj``,
  ``v_proj``, ``out_proj``, ``mlp.fc1``, ``mlp.fc2`` — prefix ``lora_te_`` (SD 1.x/2.x) or
  ``lora_te1_`` / ``lora_te2_`` (SDXL), module path ``text_model.encoder.layers.N…`` with '.' -> '_';
- UNet: every ``Linear``/``Conv2d`` inside ``Transformer2DModel`` (``proj_in``, ``proj_out``, attn1/attn2
  ``to_q/k/v/out.0``, ``ff.net.0.proj``, ``ff.net.2``), rank ``network_dim``; with ``conv_dim`` (LoCon)
  also inside ``ResnetBlock2D``, ``Downsample2D``, ``Upsample2D``: 3x3 convs get ``conv_dim``/``conv_alpha``,
  the block's ``Linear`` (``time_emb_proj``) and 1x1 ``conv_shortcut`` get ``network_dim``/``network_alpha``;
- SD 1.x UNet names are diffusers' (sd-scripts' ``original_unet`` mirrors them); SDXL UNet names are
  the SGM ones of ``sdxl_original_unet`` (``input_blocks_4_1_…``, ``in_layers_2``, ``op``, ...);
- conv LoRA: ``lora_down`` is a Conv2d with the module's kernel [r, in, kh, kw], ``lora_up`` 1x1 [out, r, 1, 1];
- ``alpha`` is a registered buffer (a 0-d tensor); ``save_weights(dtype)`` casts every tensor,
  alpha included, to the save precision (fp16 by default in practice); files converted by other
  tools often keep fp32 alphas — both are built here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from studio.adapters import kohya, sdxl_names
from studio.adapters.structure import family_table, prefix_of, unet_config

TE = re.compile(r"encoder\.layers\.\d+\.(self_attn\.(q|k|v|out)_proj|mlp\.fc[12])\Z")
TRANSFORMER = re.compile(r"(down_blocks\.\d+|up_blocks\.\d+|mid_block)\.attentions\.\d+\.")
RESNET = re.compile(r"\.resnets\.\d+\.(conv1|conv2|conv_shortcut|time_emb_proj)\Z")
SAMPLERS = re.compile(r"\.(down|up)samplers\.0\.conv\Z")


@dataclass(frozen=True)
class KohyaModule:
    key: str  # the key sd-scripts writes (without .lora_down.weight / .lora_up.weight / .alpha)
    canonical: str  # the studio's canonical key of the same module
    component: str
    path: str
    shape: tuple[int, ...]


def modules(family: str, te: bool = True, conv: bool = True) -> list[KohyaModule]:
    """The modules sd-scripts puts LoRA on for ``family`` (``conv``: LoCon, ``conv_dim`` set)."""
    table = family_table(family)
    n_te = 2 if family == "sdxl" else 1
    blocks = sdxl_names.block_map(unet_config(family)) if family == "sdxl" else None
    out = []
    for canonical, m in sorted(table.items()):
        if m.component != "unet":
            if te and TE.search(m.path):
                out.append(KohyaModule(kohya.module_key(prefix_of(m.component, n_te), m.path), canonical,
                                       m.component, m.path, m.shape))
            continue
        if not (TRANSFORMER.match(m.path) or (conv and (RESNET.search(m.path) or SAMPLERS.search(m.path)))):
            continue
        key = sdxl_names.sgm_key(m.path, blocks) if blocks else kohya.module_key(kohya.UNET_PREFIX, m.path)
        out.append(KohyaModule(key, canonical, m.component, m.path, m.shape))
    return out


def sd_scripts_lora(family: str, dim: int = 4, alpha: float = 1.0, conv_dim: int = 2, conv_alpha: float = 3.0,
                    te: bool = True, conv: bool = True, dtype=torch.float16, alpha_dtype=torch.float32,
                    seed: int = 0, std: float = 0.05) -> tuple[dict[str, torch.Tensor], list[KohyaModule]]:
    """(state dict as sd-scripts saves it, its modules)."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    mods = modules(family, te, conv)
    for m in mods:
        out_f, in_f, *kernel = m.shape
        is_3x3 = bool(kernel) and kernel != [1, 1]
        r, a = (conv_dim, conv_alpha) if is_3x3 else (dim, alpha)
        down = torch.randn(r, in_f, *kernel, generator=g) / (in_f * max(1, sum(kernel))) ** 0.5
        up = torch.randn(out_f, r, *([1, 1] if kernel else []), generator=g) * std
        sd[f"{m.key}.lora_down.weight"] = down.to(dtype)
        sd[f"{m.key}.lora_up.weight"] = up.to(dtype)
        sd[f"{m.key}.alpha"] = torch.tensor(float(a)).to(alpha_dtype)
    return sd, mods


def metadata(family: str, dim: int = 4, alpha: float = 1.0, conv_dim: int = 2, conv_alpha: float = 3.0) -> dict:
    version = {"tiny": "sd_v1", "sd1": "sd_v1", "sd2": "sd_v2", "sdxl": "sdxl_base_v1-0"}[family]
    return {"ss_network_module": "networks.lora", "ss_network_dim": str(dim), "ss_network_alpha": str(alpha),
            "ss_network_args": f'{{"conv_dim": "{conv_dim}", "conv_alpha": "{conv_alpha}"}}',
            "ss_base_model_version": version, "ss_output_name": "kohya_style", "ss_v2": str(family == "sd2")}


def delta(down: torch.Tensor, up: torch.Tensor, alpha: float) -> torch.Tensor:
    """The module's weight delta ``up @ down * alpha / rank`` (float64, 2-D: convs flattened)."""
    r = down.shape[0]
    return up.double().reshape(up.shape[0], r) @ down.double().reshape(r, -1) * (float(alpha) / r)


def probe(down: torch.Tensor, up: torch.Tensor, alpha: float, seed: int = 0) -> torch.Tensor:
    """``delta @ V`` for a fixed random V (Freivalds): equal deltas give equal probes, and the
    full-size SDXL deltas (billions of numbers) are never formed."""
    r = down.shape[0]
    d = down.double().reshape(r, -1)
    v = torch.randn(d.shape[1], 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return up.double().reshape(up.shape[0], r) @ (d @ v) * (float(alpha) / r)
