"""VRAM preflight from parameter counts + the measured activation model (meta device: free)."""

import pytest

from studio.errors import StudioError
from studio.overlay import apply_sets
from studio.train import preflight
from studio.train.presets import load_preset

GiB = preflight.GiB


def test_8gb_presets_are_estimated_to_fit_8gb():
    sd15 = preflight.for_family("sd1", load_preset("sd15-8gb"))
    sdxl = preflight.for_family("sdxl", load_preset("sdxl-8gb"))
    assert sd15.total < 5 * GiB and sdxl.total < 7.5 * GiB
    # frozen fp16 weights dominate: UNet 859.5 M + text 123 M params at 2 bytes
    assert abs(sd15.weights - (859_520_964 + 123_060_480) * 2) < 1e6


def test_estimate_grows_with_batch_and_without_the_recipe():
    base = load_preset("sd15-8gb")
    small = preflight.for_family("sd1", base)
    big = preflight.for_family("sd1", apply_sets(base, ["batch_size=4"]))
    raw = preflight.for_family("sd1", apply_sets(base, ["gradient_checkpointing=false", "cache_latents=false",
                                                        "optimizer=adamw"]))
    assert small.total < big.total and small.total < raw.total
    assert raw.weights > small.weights  # the VAE stays on the GPU without cached latents


def test_qlora_shrinks_the_frozen_weights():
    s = load_preset("sdxl-8gb")
    assert preflight.for_family("sdxl", apply_sets(s, ["quantize=nf4"])).weights < \
        0.3 * preflight.for_family("sdxl", s).weights


def test_a_run_that_cannot_fit_is_refused_with_the_8gb_preset_suggested():
    est = preflight.for_family("sdxl", apply_sets(load_preset("sdxl-8gb"), ["gradient_checkpointing=false",
                                                                           "batch_size=4"]))
    with pytest.raises(StudioError, match="sdxl-8gb"):
        preflight.check(est, 8 * GiB, "sdxl")
    preflight.check(preflight.for_family("sdxl", load_preset("sdxl-8gb")), 8 * GiB, "sdxl")
