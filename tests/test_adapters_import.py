"""`studio import`: foreign layouts become library adapters that draw what diffusers draws with the
original file; every bad file is refused with its reason and nothing enters the library."""

import json
import pickle
import struct

import pytest
import torch
from adapter_helpers import diff, image, lora_dict, randomize, with_lora
from safetensors.torch import save, save_file

from studio.adapters.importer import import_file
from studio.adapters.library import Library
from studio.config import ImportSettings, LoraSettings
from studio.errors import StudioError
from studio.models.loading import load_model
from studio.paths import Workspace


@pytest.fixture(scope="module")
def base():
    return load_model("tiny", device="cpu")


@pytest.fixture
def ws(tmp_path):
    return Workspace(tmp_path / "outputs")


def _peft_file(tmp_path):
    """A file written by diffusers' own save_lora_weights (peft LoRA, alpha != rank, metadata)."""
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    m = load_model("tiny", device="cpu")
    u, te = m.pipe.unet, m.pipe.text_encoder
    u.add_adapter(LoraConfig(r=4, lora_alpha=2, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    te.add_adapter(LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "k_proj", "v_proj", "out_proj"]))
    randomize([u, te], seed=3)
    StableDiffusionPipeline.save_lora_weights(
        tmp_path, unet_lora_layers=get_peft_model_state_dict(u), text_encoder_lora_layers=get_peft_model_state_dict(te),
        unet_lora_adapter_metadata=u.peft_config["default"].to_dict(),
        text_encoder_lora_adapter_metadata=te.peft_config["default"].to_dict(), weight_name="peft_style.safetensors")
    return tmp_path / "peft_style.safetensors"


def test_import_of_a_diffusers_saved_file_draws_the_same(base, ws, tmp_path):
    src = _peft_file(tmp_path)
    r = import_file(src, settings=ImportSettings(), ws=ws)
    assert r.name == "peft_style" and r.family == "tiny" and r.source_format == "diffusers/peft"
    rec = Library(ws).get("peft_style")
    assert rec.source == "imported" and rec.layers["unet_attention"].alpha == 2.0 and rec.layers["te"].rank == 2
    theirs = with_lora(base.pipe, src)
    assert diff(theirs, image(base.pipe)) > 0.01
    assert diff(with_lora(base.pipe, rec.file), theirs) < 1e-4


def test_import_of_the_old_processor_format_draws_the_same(base, ws, tmp_path):
    from diffusers import StableDiffusionPipeline

    sd = lora_dict(load_model("tiny", device="cpu"), LoraSettings(rank=4, alpha=4.0), seed=5)  # alpha = rank
    old, _ = StableDiffusionPipeline.lora_state_dict(sd)  # diffusers' conversion to the processor names
    assert any(".processor.to_q_lora.down.weight" in k for k in old)
    save_file({k: v.contiguous() for k, v in old.items()}, str(tmp_path / "old.safetensors"))
    r = import_file(tmp_path / "old.safetensors", name="old_style", ws=ws)
    assert r.source_format == "processor" and r.family == "tiny"
    theirs = with_lora(base.pipe, tmp_path / "old.safetensors")
    assert diff(with_lora(base.pipe, Library(ws).get("old_style").file), theirs) < 1e-4


def test_import_of_a_weights_only_pickle(ws, tmp_path):
    sd = lora_dict(load_model("tiny", device="cpu"), LoraSettings(rank=2, alpha=1.0))
    torch.save(sd, tmp_path / "plain.pt")
    r = import_file(tmp_path / "plain.pt", ws=ws)
    assert r.family == "tiny" and r.modules == len(sd) // 3


# ---------------------------------------------------------------- bad files
def _good(tmp_path) -> bytes:
    sd = lora_dict(load_model("tiny", device="cpu"), LoraSettings(rank=2, alpha=1.0, text_encoder=False))
    return save(sd)


def _with_header(data: bytes, edit) -> bytes:
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    edit(header)
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data[8 + n:]


class Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/issue8-pwned",))


def _bad_files(tmp_path):
    good = _good(tmp_path)
    first = lambda h: next(k for k in h if k != "__metadata__")  # noqa: E731
    key = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    some = {f"{key}.lora_down.weight": torch.randn(2, 32), f"{key}.lora_up.weight": torch.randn(32, 2),
            f"{key}.alpha": torch.tensor(1.0)}
    nan = dict(some)
    nan[f"{key}.lora_up.weight"] = torch.full((32, 2), float("nan"))
    inf = dict(some)
    inf[f"{key}.lora_down.weight"] = torch.full((2, 32), float("inf"))
    wrong_key = {k.replace("attn1_to_q", "attn9_to_z"): v for k, v in some.items()}
    wrong_shape = dict(some, **{f"{key}.lora_down.weight": torch.randn(2, 33)})
    huge = {f"{key}.lora_down.weight": torch.randn(4096, 32), f"{key}.lora_up.weight": torch.randn(32, 4096)}
    lokr = {f"{key}.lokr_w1": torch.randn(4, 4), f"{key}.lokr_w2": torch.randn(8, 8), f"{key}.alpha": torch.tensor(1.0)}
    return {
        "header_too_long.safetensors": (struct.pack("<Q", 10 ** 6) + good[8:], "not a safetensors file, or only the"),
        "text.safetensors": (b"just some words\n", "not a safetensors file"),  # a text file renamed
        "overlap.safetensors": (_with_header(good, lambda h: h[first(h)].__setitem__(
            "data_offsets", [0, h[first(h)]["data_offsets"][1] - h[first(h)]["data_offsets"][0]]) or
            [h[k].__setitem__("data_offsets", [0, h[k]["data_offsets"][1] - h[k]["data_offsets"][0]])
             for k in list(h)[:3] if k != "__metadata__"]), "overlaps"),
        "out_of_range.safetensors": (_with_header(good, lambda h: h[first(h)].__setitem__(
            "data_offsets", [10 ** 9, 10 ** 9 + h[first(h)]["data_offsets"][1] - h[first(h)]["data_offsets"][0]])),
            "overlaps another or leaves a gap"),
        "nan.safetensors": (save(nan), "NaN or Inf"),
        "inf.safetensors": (save(inf), "NaN or Inf"),
        "wrong_family.safetensors": (save(wrong_key), "do not fit any base model"),
        "wrong_shape.safetensors": (save(wrong_shape), "do not fit any base model"),
        "rank4096.safetensors": (save(huge), "rank 4096"),
        "pickle.safetensors": (pickle.dumps({"a": 1}, protocol=2), "is a pickle"),
        "lokr.safetensors": (save(lokr), "LoKr"),
        "empty.safetensors": (b"", "empty or truncated"),
        "evil.pt": (pickle.dumps(Evil()), "weights_only"),
    }


def test_bad_files_are_refused_and_nothing_enters_the_library(ws, tmp_path):
    import os

    Library(ws).root.mkdir(parents=True, exist_ok=True)
    for fname, (data, why) in _bad_files(tmp_path).items():
        (tmp_path / fname).write_bytes(data)
        with pytest.raises(StudioError, match=why):
            import_file(tmp_path / fname, ws=ws)
        assert Library(ws).names() == [] and os.listdir(Library(ws).root) == [], fname
    assert not os.path.exists("/tmp/issue8-pwned")  # the pickle's code never ran


@pytest.mark.parametrize("name", ["../x", "a/b", "a\0b", "CON", ".hidden", "", "a" * 65])
def test_bad_names_are_refused(ws, tmp_path, name):
    (tmp_path / "ok.safetensors").write_bytes(b"")
    with pytest.raises(StudioError, match="not allowed"):
        import_file(tmp_path / "ok.safetensors", name=name, ws=ws)
    assert not ws.root.exists() or not any(ws.root.rglob("*"))
