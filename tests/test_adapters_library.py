"""Library changes (rename/delete/duplicate), SVD resize, blend-to-one and the CLI on the tiny model."""

import math

import pytest
import torch
from adapter_helpers import add_to_library, diff, image, lora_dict
from conftest import run_cli
from safetensors import safe_open

from studio.adapters import blend as blend_mod
from studio.adapters import kohya
from studio.adapters.library import Library
from studio.adapters.resize import resize
from studio.config import LoraSettings
from studio.errors import StudioError
from studio.models.loading import load_model
from studio.paths import Workspace

SMALL = LoraSettings(rank=4, alpha=2.0, conv_rank=2, conv_alpha=3.0)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    w = Workspace(tmp_path_factory.mktemp("lib") / "outputs")
    add_to_library(w, "a", lora_dict(load_model("tiny", device="cpu"), SMALL, seed=1), "tiny")
    add_to_library(w, "b", lora_dict(load_model("tiny", device="cpu"),
                                     LoraSettings(rank=2, alpha=4.0, ff_rank=2, te_rank=3), seed=2), "tiny")
    return w


def _meta(file):
    with safe_open(str(file), "pt") as f:
        return f.metadata()


def test_rename_duplicate_delete(ws):
    from studio.judge import scorecard

    lib = Library(ws)
    a = lib.get("a")
    card = scorecard.save(a.file.parent, [scorecard.Row(a.steps or 0, 61.0, 1.4, 3.0, 0.05, False)], None)
    try:
        dup = lib.duplicate("a", "a_copy")
    finally:
        card.unlink()
    assert dup.family == "tiny" and dup.layers == lib.get("a").layers
    assert scorecard.verdict_of(dup.file.parent, dup.steps).startswith("61 % at step")  # same weights, same meter
    r = lib.rename("a_copy", "renamed")
    assert "a_copy" not in lib.names() and "renamed" in lib.names()
    # a run of "a_copy" finds its checkpoints under the adapter's new name (the page's Use this checkpoint)
    assert lib.current_name("a_copy") == "renamed" and lib.current_name("a") == "a"
    lib.duplicate("renamed", "renamed_twin")  # a copy does not take the earlier names with it
    assert lib.current_name("a_copy") == "renamed"
    lib.delete("renamed_twin")
    record = r.file.parent / "adapter.json"
    kept = record.read_text()
    record.write_text(kept.replace('"renamed_from": [', '"renamed_from": "xx a_copy xx", "was": ['))
    with pytest.raises(StudioError, match="no longer in the library"):  # a string is no list of names
        lib.current_name("a_copy")
    record.write_text(kept)
    assert _meta(r.file)["ss_output_name"] == "renamed" and _meta(r.file)["modelspec.title"] == "renamed"
    assert [p.name for p in r.file.parent.glob("*.safetensors")] == ["renamed.safetensors"]
    with pytest.raises(StudioError, match="already exists"):
        lib.rename("renamed", "a")
    with pytest.raises(StudioError, match="not allowed"):
        lib.rename("renamed", "../evil")
    lib.delete("renamed")
    with pytest.raises(StudioError, match="'a_copy', is no longer in the library: deleted"):
        lib.current_name("a_copy")
    assert lib.names() == ["a", "b"] and not any(p.name.startswith(".") for p in lib.root.iterdir())
    with pytest.raises(StudioError, match="No adapter named"):
        lib.delete("renamed")


def _delta(p):
    return p["up"].flatten(1).double() @ p["down"].flatten(1).double() * (float(p["alpha"]) / p["down"].shape[0])


def test_resize_errors_are_the_svd_tail():
    g = torch.Generator().manual_seed(0)
    key = "lora_unet_x"
    sd = {f"{key}.lora_down.weight": torch.randn(8, 40, generator=g), f"{key}.lora_up.weight": torch.randn(30, 8, generator=g),
          f"{key}.alpha": torch.tensor(4.0)}
    full = _delta(kohya.modules(sd)[key])
    same, rep = resize(sd, rank=8)
    assert rep.overall < 1e-6 and torch.allclose(_delta(kohya.modules(same)[key]), full, atol=1e-5)
    small, rep = resize(sd, rank=3)
    got = _delta(kohya.modules(small)[key])
    s = torch.linalg.svdvals(full)
    assert small[f"{key}.lora_down.weight"].shape == (3, 40) and float(small[f"{key}.alpha"]) == 1.5  # alpha/rank kept
    assert math.isclose(rep.overall, float(s[3:].norm() / s.norm()), rel_tol=1e-6)
    assert math.isclose(float((got - full).norm() / full.norm()), rep.overall, rel_tol=1e-4)
    auto, rep = resize(sd, keep=0.95)
    assert 1 <= rep.modules[0].rank_after <= 8 and rep.overall <= math.sqrt(1 - 0.95 ** 2) + 1e-6


def test_blend_exact_equals_diffusers_set_adapters(ws):
    lib = Library(ws)
    blend_mod.blend(lib, "ab", [("a", 0.7), ("b", 0.3)])
    rec = lib.get("ab")
    assert rec.source == "blended" and "a" in _meta(rec.file)["studio_blend"]
    assert rec.trigger == "neon"  # both parts' trigger word, once (it read "neon, neon")
    with pytest.raises(StudioError, match="An empty adapter name is not allowed"):
        blend_mod.blend(lib, " ", [("a", 0.7), ("b", 0.3)])
    assert rec.layers["unet_attention"].rank == 6 and rec.layers["unet_ff"].rank == 2  # ranks concatenated
    pipe = load_model("tiny", device="cpu").pipe
    pipe.load_lora_weights(str(lib.get("a").file), adapter_name="a")
    pipe.load_lora_weights(str(lib.get("b").file), adapter_name="b")
    pipe.set_adapters(["a", "b"], [0.7, 0.3])
    theirs = image(pipe)
    pipe.unload_lora_weights()
    pipe.load_lora_weights(str(rec.file), adapter_name="ab")
    ours = image(pipe)
    assert diff(theirs, image(load_model("tiny", device="cpu").pipe)) > 0.01
    assert diff(ours, theirs) < 1e-4
    small = blend_mod.blend(lib, "ab_r2", [("a", 0.7), ("b", 0.3)], rank=2)
    assert small.resize.overall > 0 and lib.get("ab_r2").layers["unet_attention"].rank == 2
    with pytest.raises(StudioError, match="No adapter named"):
        blend_mod.blend(lib, "x", [("a", 1.0), ("nope", 1.0)])
    assert "x" not in lib.names()


def test_cli_list_export_import_blend(ws, tmp_path):
    env = {"STUDIO_OUTPUTS": str(ws.root)}
    out = run_cli("adapters", env=env)
    assert out.returncode == 0 and "unet_attention:4/2" in out.stdout and "tiny" in out.stdout
    out = run_cli("export", "a", "--format", "kohya", "--dtype", "fp16", "--rank", "2", env=env)
    assert out.returncode == 0, out.stderr
    assert "relative Frobenius error" in out.stdout and (ws.exports / "a-kohya-fp16-r2.safetensors").is_file()
    def tensors_and_metadata(path):
        from safetensors.torch import load_file

        return {k: v.tolist() for k, v in load_file(str(path)).items()}, _meta(path)

    assert run_cli("export", "a", env=env).returncode == 0
    plain = tensors_and_metadata(ws.exports / "a-kohya-fp16.safetensors")
    out = run_cli("export", "a", "--rank", "64", env=env)  # above every module's rank: nothing to reduce
    assert out.returncode == 0, out.stderr
    assert tensors_and_metadata(ws.exports / "a-kohya-fp16.safetensors") == plain  # as it is, not re-factored
    assert "no module was above the asked rank" in out.stdout and "a-kohya-fp16.safetensors" in out.stdout
    assert not list(ws.exports.glob("*-r64.safetensors"))  # not named for a rank it does not have
    out = run_cli("import", str(ws.exports / "a-kohya-fp16-r2.safetensors"), "--name", "back", env=env)
    assert out.returncode == 0, out.stderr
    assert "imported back: the tiny model LoRA" in out.stdout
    out = run_cli("import", str(tmp_path / "missing.safetensors"), env=env)
    assert out.returncode == 2 and "error:" in out.stderr


def test_blend_and_export_outputs_pass_the_import_finiteness_check(ws):
    """`blend` with weight nan wrote an adapter full of NaN that `import` would refuse; now blends
    and exports (resized or cast) pass the same finiteness rule as imports, and nothing is written."""
    from studio.adapters.export import export
    from studio.config import ExportSettings

    lib = Library(ws)
    for w in ("nan", "inf", "-inf"):
        with pytest.raises(StudioError, match="is not a finite number"):
            blend_mod.blend(lib, "bad", [("a", float(w)), ("b", 0.5)])
        with pytest.raises(StudioError, match="is not a finite number"):
            blend_mod.parse_part(f"a:{w}")
    with pytest.raises(StudioError, match="NaN or Inf"):  # finite, but overflows float32
        blend_mod.blend(lib, "bad", [("a", 1e39), ("b", 0.5)])
    assert "bad" not in lib.names() and not (ws.adapters / "bad").exists()
    assert not [p for p in ws.adapters.iterdir() if p.name.startswith(".")], "a staging folder was left"
    out = run_cli("blend", "bad", "a:nan", "b:0.5", env={"STUDIO_OUTPUTS": str(ws.root)})
    assert out.returncode == 2 and "not a finite number" in out.stderr and "Traceback" not in out.stderr

    sd, _ = lib.read("a")
    loud = {k: v * 1e6 if k.endswith("lora_up.weight") else v for k, v in sd.items()}  # fine in fp32, inf in fp16
    add_to_library(ws, "loud", loud, "tiny")
    with pytest.raises(StudioError, match="fp16 export was not written.*NaN or Inf"):
        export("loud", ExportSettings(format="kohya", dtype="fp16"), ws=ws)
    assert not list(ws.exports.glob("loud-*")) if ws.exports.exists() else True
    assert export("loud", ExportSettings(format="kohya", dtype="fp32"), ws=ws).path.is_file()
    lib.delete("loud")
