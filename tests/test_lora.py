"""LoRA injection through peft: what trains, zero-init, alpha scaling, the kohya file."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from studio.config import LoraSettings
from studio.lora import state as lora_state
from studio.lora.inject import inject
from studio.models.loading import load_model


@pytest.fixture
def fresh():
    return load_model("tiny", device="cpu")


def _unet_out(pipe, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, 16, 16, generator=g)
    ids = pipe.tokenizer(["a red mug on a white background"] * 2, padding="max_length",
                         max_length=pipe.tokenizer.model_max_length, return_tensors="pt").input_ids
    with torch.no_grad():
        h = pipe.text_encoder(ids).last_hidden_state
        return pipe.unet(x, torch.tensor([500, 100]), h).sample


def test_only_lora_parameters_train(fresh):
    pipe = fresh.pipe
    params = inject(pipe.unet, [pipe.text_encoder], LoraSettings(ff_rank=4, conv_rank=2))
    trainable = [n for m in (pipe.unet, pipe.text_encoder) for n, p in m.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert len(trainable) == len(params)
    assert any("conv1.lora_A" in n for n in trainable) and any("ff.net.2.lora_B" in n for n in trainable)
    assert any("q_proj.lora_A" in n for n in trainable)  # text encoder attention too


def test_unet_only_mode(fresh):
    inject(fresh.pipe.unet, [fresh.pipe.text_encoder], LoraSettings(text_encoder=False))
    assert not any(p.requires_grad for p in fresh.pipe.text_encoder.parameters())


def test_zero_initialised_lora_equals_the_base(fresh):
    before = _unet_out(fresh.pipe)
    inject(fresh.pipe.unet, [fresh.pipe.text_encoder], LoraSettings(rank=8, alpha=16, conv_rank=4))
    assert torch.equal(before, _unet_out(fresh.pipe))


def test_alpha_not_equal_rank_scales_the_update(fresh):
    inject(fresh.pipe.unet, [fresh.pipe.text_encoder], LoraSettings(rank=4, alpha=1.0))
    layer = fresh.pipe.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q
    torch.nn.init.normal_(layer.lora_B["default"].weight)
    x = torch.randn(3, layer.in_features)
    with torch.no_grad():
        delta = layer(x) - layer.base_layer(x)
        expected = (1.0 / 4) * x @ layer.lora_A["default"].weight.T @ layer.lora_B["default"].weight.T
    assert layer.scaling["default"] == 0.25
    assert torch.allclose(delta, expected, atol=1e-5)


def test_kohya_file_has_explicit_alphas_and_round_trips(fresh):
    s = LoraSettings(rank=4, alpha=2.0, conv_rank=2, conv_alpha=3.0)
    inject(fresh.pipe.unet, [fresh.pipe.text_encoder], s)
    sd = lora_state.extract(fresh.pipe.unet, [fresh.pipe.text_encoder])
    alphas = {k: v.item() for k, v in sd.items() if k.endswith(".alpha")}
    assert alphas["lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.alpha"] == 2.0
    assert alphas["lora_unet_down_blocks_0_resnets_0_conv1.alpha"] == 3.0
    assert "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight" in sd
    for v in sd.values():
        v.normal_() if v.ndim else None
    lora_state.load(fresh.pipe.unet, [fresh.pipe.text_encoder], sd)
    again = lora_state.extract(fresh.pipe.unet, [fresh.pipe.text_encoder])
    assert all(torch.equal(sd[k], again[k]) for k in sd)


def _image(pipe):
    g = torch.Generator().manual_seed(0)
    return pipe("a red mug, neon style", num_inference_steps=5, generator=g, output_type="np").images[0]


def test_kohya_file_loads_in_diffusers_and_gives_the_same_image(fresh, tmp_path):
    """The file we write is read by diffusers' own loader (kohya detection + conversion)."""
    inject(fresh.pipe.unet, [fresh.pipe.text_encoder], LoraSettings(rank=4, alpha=2.0, ff_rank=4, conv_rank=2))
    with torch.no_grad():
        for m in (fresh.pipe.unet, fresh.pipe.text_encoder):
            for n, p in m.named_parameters():
                if "lora_B" in n:
                    p.normal_(0, 0.05)
    ours = _image(fresh.pipe)
    save_file(lora_state.extract(fresh.pipe.unet, [fresh.pipe.text_encoder]), str(tmp_path / "x.safetensors"))
    from diffusers import StableDiffusionPipeline

    from studio.models.loading import TINY_DIR

    pipe = StableDiffusionPipeline.from_pretrained(TINY_DIR)
    pipe.set_progress_bar_config(disable=True)
    base = _image(pipe)
    pipe.load_lora_weights(str(tmp_path / "x.safetensors"), adapter_name="style")
    theirs = _image(pipe)
    assert np.abs(ours - base).max() > 0.01  # the adapter does something
    assert np.abs(ours - theirs).max() < 1e-5  # and diffusers reproduces it exactly


def _randomised(fresh) -> list:
    pipe = fresh.pipe
    params = inject(pipe.unet, [pipe.text_encoder], LoraSettings(rank=4, alpha=4.0, ff_rank=4, conv_rank=2))
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in params:
            p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return params


def _base_weights(pipe) -> dict:
    return {n: p.detach().clone() for m in (pipe.unet, pipe.text_encoder) for n, p in m.named_parameters()
            if "lora_" not in n}


def test_merged_for_a_draw_gives_the_unmerged_image_and_restores_the_base_bit_for_bit(fresh):
    from studio.lora.merged import merged

    pipe = fresh.pipe
    _randomised(fresh)
    before = _base_weights(pipe)
    unmerged = _image(pipe)
    with merged([pipe.unet, pipe.text_encoder]):
        inside = _image(pipe)
        assert any(not torch.equal(p, before[n]) for n, p in pipe.unet.named_parameters() if n in before)
    after = _base_weights(pipe)
    assert all(torch.equal(after[n], before[n]) for n in before), "the base weights drifted"
    assert np.abs(inside - unmerged).max() <= 2 / 255  # float reassociation only
    assert np.abs(unmerged - _image(pipe)).max() == 0  # unmerged again, the same image
    pipe.unet.disable_adapters()
    assert np.abs(unmerged - _image(pipe)).mean() > 0.02, "the random adapter does not change the image"


def test_merged_leaves_switched_off_adapters_alone_and_restores_on_error(fresh):
    from studio.lora.merged import merged

    pipe = fresh.pipe
    _randomised(fresh)
    before = _base_weights(pipe)
    pipe.unet.disable_adapters()
    base_image = _image(pipe)
    with merged([pipe.unet]):
        assert np.abs(_image(pipe) - base_image).max() == 0
    pipe.unet.enable_adapters()
    with pytest.raises(RuntimeError), merged([pipe.unet, pipe.text_encoder]):
        raise RuntimeError("a draw failed")
    assert all(torch.equal(p, before[n]) for n, p in _base_weights(pipe).items())
