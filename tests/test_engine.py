"""The engine with library adapters: toggling, weights, blends, fuse, samplers, threads.

Adapters are random kohya files (tests/lora_library.py) so each one visibly changes the image.
Fuse tolerance: a fused blend draws within 2/255 per channel of the unfused one (peft adds
the LoRA delta into the fp32 weights: different rounding; we see 1/255 on a few pixels).
After unfusing, images are bit-exact again (the engine restores the saved base weights;
peft's own subtraction would leave the same 1/255 residue in the base image).
"""

import threading

import numpy as np
import pytest
import torch

from lora_library import tiny_library
from studio.adapters.library import Library
from studio.config import EngineSettings, GenerateSettings
from studio.errors import StudioError
from studio.generate import Engine, LoraWeight, samplers
from studio.models.loading import load_model

S = GenerateSettings(prompt="a red mug on a white background", seed=11, steps=2)
FUSE_TOL = 2


@pytest.fixture(scope="module")
def lib_model():
    return load_model("tiny", device="cpu")  # its own pipeline: adapters stay off the session model


@pytest.fixture(scope="module")
def eng(lib_model):
    return Engine(lib_model, EngineSettings(fuse_after=0), Library(tiny_library(lib_model)))


@pytest.fixture(scope="module")
def refs(eng):
    """Reference images, never fused: base, each adapter alone, a 0.5/0.5 blend."""
    draw = lambda loras=(): _arr(eng.generate(S, loras))  # noqa: E731
    return {"base": draw(), "neon": draw([LoraWeight("neon")]), "pastel": draw([LoraWeight("pastel")]),
            "blend": draw([LoraWeight("neon", 0.5), LoraWeight("pastel", 0.5)])}


def _arr(r, i=0) -> np.ndarray:
    return np.asarray(r.images[i], dtype=np.int16)


def _diff(a, b) -> float:
    return float(np.abs(a - b).mean())


def test_no_adapter_and_weight_zero_are_exactly_the_base(eng, refs):
    assert _diff(refs["neon"], refs["base"]) > 2.0  # the adapter does something
    assert (_arr(eng.generate(S, [LoraWeight("neon", 0.0)])) == refs["base"]).all()
    assert (_arr(eng.generate(S, [LoraWeight("neon", 0.0, 0.0), LoraWeight("pastel", 0.0)])) == refs["base"]).all()
    assert (_arr(eng.generate(S)) == refs["base"]).all()  # toggled off again: exactly the base


def test_weight_one_equals_diffusers_with_the_file_alone(eng, refs):
    from diffusers import StableDiffusionPipeline

    from studio.models.loading import TINY_DIR

    pipe = StableDiffusionPipeline.from_pretrained(TINY_DIR, safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = samplers.build(S.sampler, pipe.scheduler.config)
    pipe.load_lora_weights(str(eng.library.get("neon").file), adapter_name="neon")
    out = pipe(S.prompt, num_inference_steps=S.steps, guidance_scale=S.guidance, width=64, height=64,
               generator=torch.Generator("cpu").manual_seed(S.seed)).images[0]
    assert (np.asarray(out, dtype=np.int16) == refs["neon"]).all()


def test_blend_differs_from_its_parts_and_loading_more_keeps_the_first(eng, refs):
    for part in ("base", "neon", "pastel"):
        assert _diff(refs["blend"], refs[part]) > 1.0, part
    te_off = _arr(eng.generate(S, [LoraWeight("neon", 1.0, 0.0)]))  # text-encoder weight is separate
    assert _diff(te_off, refs["neon"]) > 1.0
    eng.generate(S, [LoraWeight("ink", 0.7)])  # loads a third adapter (UNet only)
    assert (_arr(eng.generate(S, [LoraWeight("neon")])) == refs["neon"]).all()
    assert {a.name for a in eng.loaded()} >= {"neon", "pastel", "ink"}


def test_fuse_then_unfuse_equals_never_fused(eng, refs):
    three = [LoraWeight("neon", 0.5, 0.3), LoraWeight("pastel", 0.4), LoraWeight("ink", 0.6)]
    ref3 = _arr(eng.generate(S, three))
    for loras, ref in (([LoraWeight("neon")], refs["neon"]), (three, ref3)):
        fused = eng.generate(S, loras, fuse=True)
        assert fused.fused and np.abs(_arr(fused) - ref).max() <= FUSE_TOL
        assert eng.generate(GenerateSettings(prompt=S.prompt, steps=1), loras).fused  # same blend: stays fused
        base = eng.generate(S)  # any change unfuses first
        assert not base.fused and (_arr(base) == refs["base"]).all()
        unfused = eng.generate(S, loras)
        assert not unfused.fused and (_arr(unfused) == ref).all()


def test_a_borrowed_pipeline_draws_other_adapters_and_comes_back_unchanged(eng, refs, lib_model, tmp_path):
    """The page's Train tab draws a run's checkpoints on the Generate tab's pipeline
    (Engine.borrow): the lender's fused weights and a same-named adapter must not leak either way."""
    from studio.adapters.random_lora import random_kohya, write_adapter
    from studio.generate.slots import PREFIX
    from studio.paths import Workspace

    other = Workspace(tmp_path)
    write_adapter(other, "neon", random_kohya(lib_model.pipe, rank=4, alpha=4.0, seed=77, std=0.3), "tiny",
                  lib_model.base_hash)  # the same name as one of the lender's, other weights
    eng.generate(S, [LoraWeight("neon")])
    eng.generate(S, [LoraWeight("pastel")], fuse=True)  # lent while fused
    with eng.borrow(Library(other)) as borrowed:
        assert (_arr(borrowed.generate(S)) == refs["base"]).all()  # the lender's fusing undone
        theirs = _arr(borrowed.generate(S, [LoraWeight("neon")]))
    assert _diff(theirs, refs["neon"]) > 2.0 and _diff(theirs, refs["base"]) > 2.0  # their own file
    names = {a for ns in lib_model.pipe.get_list_adapters().values() for a in ns}
    assert names == {PREFIX + n for n in eng.slots.loaded}  # the borrowed adapters are gone
    assert (_arr(eng.generate(S, [LoraWeight("neon")])) == refs["neon"]).all()
    assert (_arr(eng.generate(S, [LoraWeight("pastel")])) == refs["pastel"]).all()
    assert (_arr(eng.generate(S)) == refs["base"]).all()


def test_auto_fuse_after_identical_requests(lib_model, eng):
    auto = Engine(lib_model, EngineSettings(fuse_after=2), eng.library)
    auto.slots = eng.slots  # one pipeline, one adapter state
    quick = GenerateSettings(prompt=S.prompt, steps=1)
    blend = [LoraWeight("neon", 0.5), LoraWeight("pastel", 0.5)]
    assert [auto.generate(quick, blend).fused for _ in range(3)] == [False, True, True]
    assert not auto.generate(quick, [LoraWeight("neon", 0.5)]).fused
    auto.generate(quick)


def test_count_uses_consecutive_seeds(eng, refs):
    r = eng.generate(GenerateSettings(prompt=S.prompt, seed=S.seed - 1, steps=S.steps, count=2))
    assert r.seeds == (S.seed - 1, S.seed) and len(r.images) == 2
    assert (_arr(r, 1) == refs["base"]).all() and _diff(_arr(r, 0), refs["base"]) > 1.0


@pytest.mark.parametrize("name", samplers.NAMES)
def test_every_sampler_draws_and_repeats(eng, name):
    s = GenerateSettings(prompt=S.prompt, seed=3, steps=2, sampler=name)
    a, b = _arr(eng.generate(s)), _arr(eng.generate(s))
    assert (a == b).all() and a.std() > 1.0


@pytest.mark.parametrize("name", samplers.NAMES)
def test_every_sampler_lands_on_the_image_not_on_noise(eng, name):
    """At 30 steps a deterministic sampler draws (nearly) the image DPM++ 2M Karras draws at 40; an
    ancestral one (Euler a) draws another image of the prompt, but no noisier. (DDIM with diffusers'
    default clip_sample drew pure noise on the tiny model: a 2-step "it draws" test did not see it.)"""
    import numpy as np

    def fine_detail(a):
        return float(np.abs(np.diff(a, axis=0)).mean())

    ref = _arr(eng.generate(GenerateSettings(prompt=S.prompt, seed=3, steps=40, sampler="DPM++ 2M Karras")))
    got = _arr(eng.generate(GenerateSettings(prompt=S.prompt, seed=3, steps=30, sampler=name)))
    if name == "Euler a":
        assert fine_detail(got) < 1.3 * fine_detail(ref), (fine_detail(got), fine_detail(ref))
    else:
        assert _diff(got, ref) < 6.0, _diff(got, ref)


def test_samplers_keep_the_models_prediction_type(eng):
    from diffusers import DDIMScheduler

    v = DDIMScheduler.from_config(eng.model.pipe.scheduler.config, prediction_type="v_prediction").config
    for name in samplers.NAMES:
        sched = samplers.build(name, v)
        assert sched.config.prediction_type == "v_prediction", name
    assert samplers.build("DPM++ 2M Karras", v).config.use_karras_sigmas
    assert not samplers.build("DPM++ 2M", samplers.build("DPM++ 2M Karras", v).config).config.use_karras_sigmas
    assert samplers.check("euler A") == "Euler a"
    with pytest.raises(StudioError, match="Unknown sampler 'k_lms'.*Euler a"):
        eng.generate(GenerateSettings(steps=1, sampler="k_lms"))


def test_wrong_family_refused_other_checkpoint_warned(eng):
    with pytest.raises(StudioError, match="'xlstyle' was made for SDXL, but the loaded base model is the tiny model"):
        eng.generate(S, [LoraWeight("xlstyle")])
    r = eng.generate(GenerateSettings(prompt=S.prompt, steps=1), [LoraWeight("otherbase")])
    assert r.warnings and "different" in r.warnings[0] and "0123456789ab" in r.warnings[0]
    with pytest.raises(StudioError, match="No adapter named 'nope'"):
        eng.generate(S, [LoraWeight("nope")])


def test_prompt_tags_reach_the_request(eng, refs):
    r = eng.generate(GenerateSettings(prompt=f"<lora:neon:1> {S.prompt}", seed=S.seed, steps=S.steps))
    assert r.settings.prompt == S.prompt and r.loras == (LoraWeight("neon", 1.0),)
    assert (_arr(r) == refs["neon"]).all()


def test_two_threads_each_get_their_own_adapters(eng, refs):
    got: dict[str, list] = {"neon": [], "pastel": []}

    def worker(name):
        for _ in range(3):
            got[name].append(_arr(eng.generate(S, [LoraWeight(name)])))

    threads = [threading.Thread(target=worker, args=(n,)) for n in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name, images in got.items():
        assert len(images) == 3 and all((im == refs[name]).all() for im in images), name


def test_lru_cap_evicts_and_memory_matches_the_file(eng, refs):
    eng.slots.max_loaded = 2
    try:
        for name in ("neon", "pastel", "ink"):
            eng.generate(GenerateSettings(prompt=S.prompt, steps=1), [LoraWeight(name)])
        assert [a.name for a in eng.loaded()] == ["pastel", "ink"]
        assert (_arr(eng.generate(S, [LoraWeight("neon")])) == refs["neon"]).all()  # reloaded on use
        with pytest.raises(StudioError, match="at most 2 stay loaded"):
            eng.generate(S, [LoraWeight("neon"), LoraWeight("pastel"), LoraWeight("ink")])
    finally:
        eng.slots.max_loaded = 8
    for a in eng.loaded():  # fp32 LoRA weights = the file's tensors (less its header and alphas)
        assert 0.8 * a.file_bytes < a.param_bytes < a.file_bytes


def test_engine_moves_its_pipeline(eng, refs):
    eng.to("cpu")
    assert eng.model.pipe.unet.device.type == "cpu" and eng.model.device == torch.device("cpu")


def test_request_without_library_adapters_leaves_the_trainers_adapter_alone(eng):
    from studio.config import LoraSettings
    from studio.lora.inject import inject

    model = load_model("tiny", device="cpu")
    inject(model.pipe.unet, [model.pipe.text_encoder], LoraSettings(rank=4))
    with torch.no_grad():
        for n, p in model.pipe.unet.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.3)
    preview = Engine(model, library=eng.library)
    trained = _arr(preview.generate(S))
    model.pipe.disable_lora()
    plain = _arr(preview.generate(S))
    model.pipe.enable_lora()
    assert _diff(trained, plain) > 1.0  # the preview shows the adapter being trained
    preview.generate(GenerateSettings(prompt=S.prompt, steps=1), [LoraWeight("neon")])
    assert (_arr(preview.generate(S)) == trained).all()  # library adapter off: training adapter back alone


def test_mixed_rank_adapter_gets_each_modules_own_strength(tmp_path):
    """A resized (--rank auto) adapter has a different rank and alpha per module; diffusers alone
    gives every module the most common alpha. In the engine every module's delta is the file's."""
    from studio.adapters import kohya
    from studio.adapters.random_lora import random_kohya, write_adapter
    from studio.adapters.resize import resize
    from studio.generate.slots import PREFIX
    from studio.paths import Workspace

    model = load_model("tiny", device="cpu")
    sd = random_kohya(model.pipe, rank=8, alpha=4.0, seed=1)
    g = torch.Generator().manual_seed(3)
    for k in [k for k in sd if k.endswith("lora_down.weight")]:  # spectra that need different ranks
        sd[k] = sd[k] * torch.logspace(0, -2 * torch.rand(1, generator=g).item(), 8)[:, None]
    mixed, report = resize(sd, keep=0.95)
    assert len({m.rank_after for m in report.modules}) > 1 and kohya.fold_mixed_alphas(mixed) is not None
    ws = Workspace(tmp_path)
    write_adapter(ws, "mixed", mixed, "tiny", model.base_hash)
    engine = Engine(model, EngineSettings(fuse_after=0), Library(ws))
    engine.generate(GenerateSettings(prompt="a mug", steps=1), [LoraWeight("mixed")])
    want = {key: p["up"].flatten(1) @ p["down"].flatten(1) * kohya.scales(mixed)[key]
            for key, p in kohya.modules(mixed).items()}
    checked = 0
    for prefix, part in (("lora_unet_", model.pipe.unet), ("lora_te_", model.pipe.text_encoder)):
        for path, m in part.named_modules():
            if PREFIX + "mixed" in getattr(m, "lora_A", {}):
                a, b = m.lora_A[PREFIX + "mixed"].weight, m.lora_B[PREFIX + "mixed"].weight
                got = b.flatten(1) @ a.flatten(1) * m.scaling[PREFIX + "mixed"]
                torch.testing.assert_close(got, want[kohya.module_key(prefix, path)], rtol=1e-5, atol=1e-7)
                checked += 1
    assert checked == len(want)
