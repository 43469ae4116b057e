"""The embedded tiny model draws what it is asked for, and its VAE represents any style.

Quality measurement (see ``studio.models.tiny.quality``): 48 prompts, every palette colour
with every object, backgrounds cycling, fixed seeds, the default sampler at 25 steps.
For each image the object's dominant hue must be nearer the prompted colour than any other
palette colour, the border must match the prompted background, and the object's silhouette
must be nearer the prompted object's silhouette than any other (a mug needs its handle).
"""

import random

import pytest

from studio.config import GenerateSettings
from studio.models.tiny import quality, scenes


@pytest.fixture(scope="module")
def report(engine):
    def gen(prompt, seed):
        return engine.generate(GenerateSettings(prompt=prompt, seed=seed, steps=25)).image

    return quality.measure(gen)


def test_prompted_colour_is_drawn(report):
    assert report.n >= 40
    assert report.colour_rate >= 0.8, report.misses


def test_prompted_background_is_drawn(report):
    assert report.background_rate >= 0.8, report.misses


def test_prompted_object_shape_is_recognisable(report):
    assert report.shape_rate >= 0.8, report.misses


@pytest.mark.parametrize("source", ["scenes", *scenes.STYLES])
def test_vae_reconstructs_held_out_images_at_24db(tiny_model, source):
    if source == "scenes":  # seeds the pretraining never used
        rng = random.Random("held-out")
        images = [scenes.render_scene(s, rng) for s in rng.sample(scenes.all_scenes(), 32)]
    else:
        images = [im for im, _ in scenes.style_set(source, 16, seed=99)]
    assert quality.reconstruction_psnr(tiny_model.pipe.vae, images) >= 24.0
