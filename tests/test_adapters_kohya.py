"""`studio import` of LoRAs as kohya sd-scripts writes them (issue 15, class 6).

Fixtures follow ``networks/lora.py`` exactly (tests/kohya_files.py): text-encoder attention *and*
MLP (fc1/fc2), UNet transformer modules (attention, ff, proj_in/out), LoCon 3x3 convs plus the
resnets' time_emb_proj / 1x1 conv_shortcut, fp16 weights with fp32 or fp16 alphas, SD 1.x names
for the tiny model and SD 1.5, SGM names for SDXL (full-size module tables, small random tensors).
Every module's delta after import equals the file's (compared as ``delta @ V`` for a random V, so
full-size deltas are never formed); on the tiny model the loaded pipeline's
LoRA layers carry exactly those deltas. Mixed-layout files are refused, never half-read.
"""

import pytest
import torch
from kohya_files import delta, metadata, probe, sd_scripts_lora
from safetensors import safe_open
from safetensors.torch import save_file

from studio.adapters import kohya
from studio.adapters.importer import import_file
from studio.adapters.library import Library
from studio.errors import StudioError
from studio.paths import Workspace


@pytest.fixture
def ws(tmp_path):
    return Workspace(tmp_path / "outputs")


def _write(tmp_path, sd, meta, name="kohya_style"):
    path = tmp_path / f"{name}.safetensors"
    save_file(sd, str(path), meta)
    return path


def _canonical(file):
    with safe_open(str(file), "pt") as f:
        return kohya.modules({k: f.get_tensor(k) for k in f.keys()})


@pytest.mark.parametrize("family,alpha_dtype,dim", [("tiny", torch.float32, 4), ("sd1", torch.float16, 4),
                                                    ("sdxl", torch.float32, 2)])
def test_sd_scripts_files_import_with_every_delta_equal(ws, tmp_path, family, alpha_dtype, dim):
    sd, mods = sd_scripts_lora(family, dim=dim, alpha=1.0, conv_dim=2, conv_alpha=3.0, alpha_dtype=alpha_dtype)
    keys = [m.key for m in mods]
    te = "lora_te1_" if family == "sdxl" else "lora_te_"
    assert any(k.startswith(te) and k.endswith("_mlp_fc1") for k in keys)  # what diffusers renames lora_linear_layer
    assert any(k.endswith("_mlp_fc2") for k in keys) and any(k.endswith("_self_attn_out_proj") for k in keys)
    assert any(k.endswith("_ff_net_0_proj") for k in keys) and any(k.endswith("_proj_in") for k in keys)
    if family == "sdxl":
        assert any(k.startswith("lora_te2_") and k.endswith("_mlp_fc2") for k in keys)
        assert {"lora_unet_input_blocks_1_0_in_layers_2", "lora_unet_input_blocks_3_0_op",
                "lora_unet_output_blocks_2_2_conv", "lora_unet_middle_block_1_proj_in"} <= set(keys)
    else:
        assert {"lora_unet_down_blocks_0_resnets_0_conv1", "lora_unet_down_blocks_0_downsamplers_0_conv",
                "lora_unet_mid_block_attentions_0_proj_out"} <= set(keys)
    assert sd[f"{keys[0]}.lora_down.weight"].dtype == torch.float16 and sd[f"{keys[0]}.alpha"].dtype == alpha_dtype

    r = import_file(_write(tmp_path, sd, metadata(family, dim)), ws=ws)
    assert r.family == family and r.modules == len(mods) and r.source_format.startswith("kohya")
    stored = _canonical(Library(ws).get(r.name).file)
    assert set(stored) == {m.canonical for m in mods}, "modules gained or lost on import"
    unequal = [m.key for m in mods if not torch.equal(
        probe(stored[m.canonical]["down"], stored[m.canonical]["up"], stored[m.canonical]["alpha"]),
        probe(sd[f"{m.key}.lora_down.weight"], sd[f"{m.key}.lora_up.weight"], sd[f"{m.key}.alpha"]))]
    assert not unequal, f"{len(unequal)} module deltas changed, e.g. {unequal[:3]}"
    layers = Library(ws).get(r.name).layers
    assert layers["unet_conv"].rank == 2 and layers["unet_conv"].alpha == 3.0
    assert (layers["te1"] if family == "sdxl" else layers["te"]).modules == sum(
        k.startswith(te) for k in keys)


def test_a_tiny_sd_scripts_lora_loads_into_the_engine_with_every_delta(ws, tmp_path):
    """Real loading: after import, the pipeline's LoRA layers (text-encoder MLP, LoCon convs
    and all) hold exactly the deltas of the sd-scripts file; generation changes the image."""
    from peft.tuners.lora import LoraLayer

    from studio.config import GenerateSettings
    from studio.generate import Engine
    from studio.generate.slots import PREFIX
    from studio.models.loading import load_model

    sd, mods = sd_scripts_lora("tiny", dim=4, alpha=1.0, conv_dim=2, conv_alpha=3.0, std=0.2)
    import_file(_write(tmp_path, sd, metadata("tiny")), name="kohya", ws=ws)
    engine = Engine(load_model("tiny", device="cpu"), library=Library(ws))
    base = engine.generate(GenerateSettings(prompt="a red mug", steps=2, seed=1)).image
    styled = engine.generate(GenerateSettings(prompt="a red mug <lora:kohya:1>", steps=2, seed=1)).image
    by_path = {(m.component, m.path.removeprefix("text_model.")): m for m in mods}
    pipe, seen = engine.model.pipe, 0
    for component in ("unet", "text_encoder"):
        for path, layer in getattr(pipe, component).named_modules():
            if not isinstance(layer, LoraLayer) or PREFIX + "kohya" not in layer.lora_A:
                continue
            m = by_path[(component, path.removeprefix("text_model."))]
            want = delta(sd[f"{m.key}.lora_down.weight"], sd[f"{m.key}.lora_up.weight"], sd[f"{m.key}.alpha"])
            got = layer.get_delta_weight(PREFIX + "kohya").double().reshape(want.shape)
            assert torch.allclose(got, want, rtol=1e-5, atol=1e-8), f"{component}.{path}"
            seen += 1
    assert seen == len(mods), f"{seen} LoRA layers loaded, the file has {len(mods)} modules"
    import numpy as np

    assert np.abs(np.asarray(base, float) - np.asarray(styled, float)).max() > 1


def _peft_twin(key: str) -> str:
    """The PEFT name of a kohya SD 1.x UNet module key (for mixed-layout files)."""
    return "unet." + key.removeprefix("lora_unet_").replace("_", ".").replace("down.blocks", "down_blocks") \
        .replace("transformer.blocks", "transformer_blocks").replace("to.q", "to_q")


def test_mixed_layout_files_are_refused_never_half_read(ws, tmp_path):
    sd, mods = sd_scripts_lora("tiny", te=False, conv=False)
    attn = next(m for m in mods if m.key.endswith("attn1_to_q"))
    kohya_and_peft = {k: v for k, v in sd.items() if not k.startswith(attn.key)}
    kohya_and_peft[_peft_twin(attn.key) + ".lora_A.weight"] = sd[f"{attn.key}.lora_down.weight"]
    kohya_and_peft[_peft_twin(attn.key) + ".lora_B.weight"] = sd[f"{attn.key}.lora_up.weight"]
    sgm = {k.replace("down_blocks_1_attentions_0", "input_blocks_4_1"): v for k, v in sd.items()}
    assert sgm.keys() != sd.keys() and any("down_blocks" in k for k in sgm)
    peft = {f"unet.{m.path}.lora_{ab}.weight": sd[f"{m.key}.lora_{ud}.weight"]
            for m in mods for ab, ud in (("A", "down"), ("B", "up"))}
    peft["vae.decoder.conv_in.lora_A.weight"] = torch.zeros(2, 4, 3, 3)
    peft["vae.decoder.conv_in.lora_B.weight"] = torch.zeros(4, 2, 1, 1)
    cases = {"kohya+peft": (kohya_and_peft, "mixes two layouts: kohya keys"),
             "sgm+diffusers": (sgm, "mixes SGM block names"),
             "unknown component": (peft, "1 of its")}
    for name, (bad, why) in cases.items():
        with pytest.raises(StudioError, match=why):
            import_file(_write(tmp_path, {k: v.contiguous() for k, v in bad.items()}, {}, name.replace("+", "_")
                               .replace(" ", "_")), ws=ws)
        assert Library(ws).list() == [], name


def test_a_100000_deep_json_header_is_refused(ws, tmp_path):
    import struct

    raw = b"[" * 100_000 + b"]" * 100_000
    (tmp_path / "deep.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw)
    with pytest.raises(StudioError, match="nested too deeply"):
        import_file(tmp_path / "deep.safetensors", ws=ws)
