"""The generation engine: one loaded pipeline, deterministic seeds, size checks."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch
from PIL import Image

from ..config import GenerateSettings
from ..errors import StudioError
from ..models.loading import LoadedModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationResult:
    image: Image.Image
    settings: GenerateSettings
    seconds: float


class Engine:
    """Wraps one base model. Everything that draws an image (the Generate tab, the CLI,
    training previews) goes through :meth:`generate`, so previews never lie."""

    def __init__(self, model: LoadedModel):
        self.model = model

    def resolve_size(self, s: GenerateSettings) -> tuple[int, int]:
        native = self.model.resolution
        w, h = s.width or native, s.height or native
        m = self.model.size_multiple
        if w % m or h % m:
            raise StudioError(f"Image size {w}x{h} does not fit this model.",
                              f"Width and height must be multiples of {m} (native size is {native}).")
        return w, h

    @torch.inference_mode()
    def generate(self, s: GenerateSettings) -> GenerationResult:
        w, h = self.resolve_size(s)
        # A CPU generator gives the same initial noise on every device.
        gen = torch.Generator("cpu").manual_seed(s.seed)
        t0 = time.perf_counter()
        out = self.model.pipe(prompt=s.prompt, negative_prompt=s.negative or None,
                              num_inference_steps=s.steps, guidance_scale=s.guidance,
                              width=w, height=h, generator=gen, output_type="pil")
        return GenerationResult(out.images[0], s, time.perf_counter() - t0)
