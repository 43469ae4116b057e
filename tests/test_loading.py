"""Model references, family detection, pickle refusal and the offline hub error."""

import pickle

import pytest
import torch
from safetensors.torch import save_file

from studio.errors import StudioError
from studio.models import loading
from studio.models.family import family_from_folder, family_from_keys


def test_parse_ref_kinds(tmp_path):
    assert loading.parse_ref("tiny").kind == "tiny"
    assert loading.parse_ref("").kind == "tiny"
    assert loading.parse_ref("org/model").kind == "hub"
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model_index.json").write_text("{}")
    assert loading.parse_ref(str(tmp_path / "m")).kind == "folder"
    f = tmp_path / "x.safetensors"
    save_file({"a": torch.zeros(1)}, f)
    assert loading.parse_ref(str(f)).kind == "single_file"


def test_parse_ref_explains_bad_input(tmp_path):
    with pytest.raises(StudioError, match="no model_index.json"):
        loading.parse_ref(str(tmp_path))
    with pytest.raises(StudioError, match="does not exist"):
        loading.parse_ref(str(tmp_path / "nope.safetensors"))
    with pytest.raises(StudioError, match="Cannot use"):
        loading.parse_ref("not a model")


@pytest.mark.parametrize("key,family", [
    ("conditioner.embedders.1.model.positional_embedding", "sdxl"),
    ("cond_stage_model.model.token_embedding.weight", "sd2"),
    ("cond_stage_model.transformer.text_model.embeddings.position_embedding.weight", "sd1"),
])
def test_family_from_single_file_keys(key, family):
    assert family_from_keys(["model.diffusion_model.input_blocks.0.0.weight", key]) == family


def test_lora_file_is_not_a_base_model():
    with pytest.raises(StudioError, match="import it as an adapter"):
        family_from_keys(["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight"])


def test_family_from_shipped_config_folders():
    for fam in ("sd1", "sd2", "sdxl"):
        assert family_from_folder(loading.CONFIG_DIR / fam) == fam
    assert family_from_folder(loading.TINY_DIR) == "tiny"


class _Evil:
    def __reduce__(self):
        return (print, ("this would run arbitrary code",))


def test_pickle_with_code_is_refused_and_says_why(tmp_path):
    bad = tmp_path / "evil.ckpt"
    with open(bad, "wb") as f:
        pickle.dump({"state_dict": {"x": _Evil()}}, f)
    with pytest.raises(StudioError, match="arbitrary code"):
        loading.checkpoint_keys(bad)


def test_tensor_only_pickle_reads_keys_with_weights_only(tmp_path):
    ok = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {"cond_stage_model.transformer.x": torch.zeros(2)}}, ok)
    assert loading.checkpoint_keys(ok) == ["cond_stage_model.transformer.x"]


def test_corrupt_safetensors_is_reported(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(StudioError, match="not a valid .safetensors"):
        loading.load_model(str(bad), device="cpu")


def test_hub_id_offline_fails_fast_naming_local_alternatives(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(StudioError) as e:
        loading.load_model("someone/some-sd-model", device="cpu")
    msg = str(e.value)
    assert "'tiny'" in msg and "diffusers folder" in msg and ".safetensors" in msg


def test_device_and_dtype_policy():
    dev, dt = loading.pick_device_dtype("cpu", "auto")
    assert dev.type == "cpu" and dt == torch.float32
    with pytest.raises(StudioError, match="Unknown dtype"):
        loading.pick_device_dtype("cpu", "fp8")
    if not torch.cuda.is_available():
        with pytest.raises(StudioError, match="no CUDA GPU"):
            loading.pick_device_dtype("cuda", "auto")


def test_plain_diffusers_loads_the_tiny_folder():
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(loading.TINY_DIR)
    assert pipe.unet.config.in_channels == 4 and pipe.vae_scale_factor == 4
    assert pipe.tokenizer.model_max_length == 20  # tiny captions are short
