"""Exports load in diffusers' own `load_lora_weights` and draw what the studio draws; round trips are lossless.

Tolerances: fp32 exports equal the library file's image to 1e-4 (pixel values in [0, 1]; the
differences are float summation order); fp16 within 2e-2 (measured in benchmarks/adapter_formats.py).
"""

import pytest
import torch
from adapter_helpers import add_to_library, diff, image, lora_dict, with_lora
from safetensors import safe_open
from safetensors.torch import load_file
from sdxl_dummy import dummy_sdxl

from studio.adapters import canonical, diffusers_format, foreign, kohya
from studio.adapters.export import convert, export, to_kohya_sgm
from studio.adapters.structure import table_of
from studio.config import ExportSettings
from studio.models.loading import load_model
from studio.paths import Workspace


def _table(model):
    p = model.pipe
    return table_of(p.unet, [t for t in (p.text_encoder, getattr(p, "text_encoder_2", None)) if t is not None])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(workspace, record, image drawn by the peft-injected model = the studio's own path)."""
    ws = Workspace(tmp_path_factory.mktemp("exp") / "outputs")
    m = load_model("tiny", device="cpu")
    sd = lora_dict(m)
    return ws, add_to_library(ws, "neon", sd, "tiny"), image(m.pipe)


@pytest.fixture(scope="module")
def clean_tiny(tiny):
    """The base model, with its base image and the library file's image (diffusers' loader) checked once."""
    m = load_model("tiny", device="cpu")
    _, rec, studio_image = tiny
    assert diff(studio_image, image(m.pipe)) > 0.01  # the adapter changes the picture
    assert diff(with_lora(m.pipe, rec.file), studio_image) < 1e-4  # the library file is the studio's adapter
    return m


@pytest.fixture(scope="module")
def xl(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("xl") / "outputs")
    m = dummy_sdxl()
    sd = lora_dict(m)
    return ws, add_to_library(ws, "xlstyle", sd, "sdxl"), image(m.pipe)


def test_roundtrip_canonical_kohya_diffusers_is_lossless(tiny):
    ws, rec, _ = tiny
    table = _table(load_model("tiny", device="cpu"))
    sd = load_file(str(rec.file))
    assert {float(v) for k, v in sd.items() if k.endswith(".alpha")} == {2.0, 8.0, 3.0, 1.0}  # alpha != rank
    peft_sd, meta = diffusers_format.to_peft(sd, table, fold_alpha=False)
    back = canonical.to_canonical(foreign.parts(peft_sd, {}, meta), 1)
    assert back.keys() == sd.keys() and all(torch.equal(back[k], sd[k]) for k in sd)
    folded, meta = diffusers_format.to_peft(sd, table, fold_alpha=True)
    again = kohya.modules(canonical.to_canonical(foreign.parts(folded, {}, meta), 1))
    for key, p in kohya.modules(sd).items():  # folded: alpha = rank, same delta
        q = again[key]
        want = p["up"].flatten(1) @ p["down"].flatten(1) * (float(p["alpha"]) / p["down"].shape[0])
        got = q["up"].flatten(1) @ q["down"].flatten(1) * (float(q["alpha"]) / q["down"].shape[0])
        assert torch.allclose(want, got, atol=1e-7, rtol=1e-5), key


def test_roundtrip_sdxl_sgm_names_is_lossless(xl):
    ws, rec, _ = xl
    m = dummy_sdxl()
    sd = load_file(str(rec.file))
    sgm = to_kohya_sgm(sd, _table(m), dict(m.pipe.unet.config))
    assert any(k.startswith("lora_unet_input_blocks_") for k in sgm)
    assert any(k.startswith("lora_unet_output_blocks_") for k in sgm)
    assert any(k.startswith("lora_unet_middle_block_1_") for k in sgm)
    assert not any(k.startswith(("lora_unet_down_blocks", "lora_unet_up_blocks", "lora_unet_mid_block")) for k in sgm)
    back = canonical.to_canonical(foreign.parts(sgm, dict(m.pipe.unet.config), {}), 2)
    assert back.keys() == sd.keys() and all(torch.equal(back[k], sd[k]) for k in sd)


@pytest.mark.parametrize("fmt,fold", [("kohya", True), ("diffusers", True), ("diffusers", False)])
def test_tiny_exports_draw_the_studio_image_in_diffusers(tiny, clean_tiny, fmt, fold):
    ws, rec, studio_image = tiny
    r = export("neon", ExportSettings(format=fmt, dtype="fp32", fold_alpha=fold), ws=ws)
    assert r.path.parent == ws.exports and r.path.is_file()
    assert diff(with_lora(clean_tiny.pipe, r.path), studio_image) < 1e-4, f"{fmt} export drew another image"


def test_fp16_export_is_half_the_size_and_close(tiny, clean_tiny):
    ws, rec, studio_image = tiny
    r32 = export("neon", ExportSettings(dtype="fp32"), ws=ws)
    r16 = export("neon", ExportSettings(dtype="fp16"), ws=ws)
    assert r16.size_bytes < 0.6 * r32.size_bytes
    with safe_open(str(r16.path), "pt") as f:
        assert f.get_slice(next(k for k in f.keys() if k.endswith("lora_up.weight"))).get_dtype() == "F16"
        assert f.metadata()["ss_output_name"] == "neon"
    assert diff(with_lora(clean_tiny.pipe, r16.path), studio_image) < 2e-2


def test_sdxl_exports_draw_the_studio_image_in_diffusers(xl):
    ws, rec, studio_image = xl
    m = dummy_sdxl()
    assert diff(image(m.pipe), studio_image) > 0.01
    assert diff(with_lora(m.pipe, rec.file), studio_image) < 1e-4
    for fmt in ("kohya", "diffusers"):
        r = export("xlstyle", ExportSettings(format=fmt, dtype="fp32"), ws=ws, model=m)
        keys = load_file(str(r.path)).keys()
        if fmt == "kohya":
            assert any(k.startswith("lora_unet_input_blocks_") for k in keys)
            assert any(k.startswith("lora_te2_text_model_encoder_layers_") for k in keys)
        else:
            assert any(k.startswith("text_encoder_2.text_model.") for k in keys)
        assert diff(with_lora(m.pipe, r.path), studio_image) < 1e-4, fmt


def test_export_to_an_explicit_path_and_pure_convert(tiny, tmp_path):
    ws, rec, _ = tiny
    out = tmp_path / "elsewhere" / "mine.safetensors"
    r = export("neon", ExportSettings(format="diffusers"), out=out, ws=ws)
    assert r.path == out and out.is_file()
    sd = load_file(str(rec.file))
    got, meta, _ = convert(sd, {}, "tiny", ExportSettings(format="diffusers"), _table(load_model("tiny", device="cpu")), {})
    assert diffusers_format.METADATA_KEY in meta and all(".lora_A." in k or ".lora_B." in k for k in got)


def test_an_export_says_which_models_it_fits(tiny, xl):
    """A1111 and ComfyUI load a LoRA onto any checkpoint and skip what does not fit: a file made on the
    tiny demo model "works" there and changes nothing. The CLI's export report says so; the page says it
    under Export as soon as the adapter is picked (e2e: test_flow), and not a second time in its report."""
    ws, _, _ = tiny
    r = export("neon", ExportSettings(), ws=ws)
    assert "tiny demo model" in r.fits and "--model" in r.fits and r.fits in r.format_report()
    from studio.ui.library import _export_report

    assert "tiny demo model" not in _export_report(r)
    assert export("xlstyle", ExportSettings(), ws=xl[0]).fits.startswith("For SDXL checkpoints")
