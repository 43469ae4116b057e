"""The generation engine: one loaded pipeline, library adapters toggled/weighted/blended on it.

Public API (what the UI, the CLI, the trainer's previews and the job runner call)::

    engine = Engine(model, EngineSettings(), library=Library(ws))
    r = engine.generate(GenerateSettings(prompt="a mug <lora:neon:0.8>", count=2),
                        loras=[LoraWeight("pastel", unet=0.5, te=0.3)], fuse=False)
    r.images, r.seeds, r.image (first), r.loras, r.warnings, r.seconds, r.fused
    g = engine.grid(["a mug", "a lamp"], [[], [LoraWeight("neon")], [LoraWeight("neon", .5),
                    LoraWeight("pastel", .5)]], GenerateSettings(seed=3))   # -> grid.GridResult
    engine.loaded()         # [LoadedAdapter(name, file_bytes, param_bytes, components, warning)]
    engine.to("cpu")        # move the pipeline (under the lock), e.g. while a training uses the GPU
    tags.parse(prompt, known_names) -> (clean prompt, [LoraWeight])

Every draw holds one lock around "set adapters (+ fuse state) + draw", so concurrent requests
never see each other's adapters. No adapter (or all weights 0) draws exactly the base model;
a request without library adapters leaves a training run's own adapter untouched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from typing import Iterator

import torch
from PIL import Image

from ..adapters.library import Library
from ..config import EngineSettings, GenerateSettings
from ..errors import StudioError
from ..models.loading import LoadedModel
from . import samplers, tags
from .slots import AdapterSlots, LoadedAdapter
from .tags import LoraWeight

MAX_SIZE_FACTOR = 4  # a side at most this many times the model's native size (A1111's slider: 2048 on SD 1.5)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationResult:
    images: tuple[Image.Image, ...]
    seeds: tuple[int, ...]
    settings: GenerateSettings  # as drawn: prompt without its <lora:…> tags
    seconds: float
    loras: tuple[LoraWeight, ...] = ()
    warnings: tuple[str, ...] = ()
    fused: bool = False

    @property
    def image(self) -> Image.Image:
        return self.images[0]


class Engine:
    """Wraps one base model. Everything that draws an image (the Generate tab, the CLI,
    training previews) goes through :meth:`generate`, so previews never lie."""

    def __init__(self, model: LoadedModel, settings: EngineSettings | None = None, library: Library | None = None):
        self.model = model
        self.settings = settings or EngineSettings()
        self.library = library or Library()
        self.lock = threading.RLock()
        self.slots = AdapterSlots(model, self.library, self.settings.max_loaded_adapters, self.settings.exact_unfuse)
        self._base_scheduler = model.pipe.scheduler
        self._schedulers: dict[str, object] = {}
        self._streak = 0  # identical requests in a row (auto-fuse)

    def resolve_size(self, s: GenerateSettings) -> tuple[int, int]:
        native = self.model.resolution
        w, h = s.width or native, s.height or native
        m = self.model.size_multiple
        if w % m or h % m:
            raise StudioError(f"Image size {w}x{h} does not fit this model.",
                              f"Width and height must be multiples of {m} (native size is {native}).")
        if max(w, h) > MAX_SIZE_FACTOR * native:  # 4096 px on the tiny model: 441 s on 2 cores, and stripes
            raise StudioError(f"Image size {w}x{h} is more than {MAX_SIZE_FACTOR}x this model's native "
                              f"{native} px on a side.",
                              f"Use at most {MAX_SIZE_FACTOR * native} px: far beyond the size it learned, a model "
                              "repeats its subject in tiles, and the drawing takes minutes and cannot be stopped.")
        return w, h

    def request(self, s: GenerateSettings, loras=()) -> tuple[GenerateSettings, list[LoraWeight]]:
        """Prompt tags + explicit adapters -> (settings with the clean prompt, checked adapter list)."""
        clean, loras = tags.request(s.prompt, loras, [r.name for r in self.library.list()])
        for lw in loras:
            self.library.get(lw.name)  # a damaged entry is refused here, with its reason, before any loading
        return (dataclasses.replace(s, prompt=clean) if clean != s.prompt else s), loras

    def prompt_warnings(self, s: GenerateSettings) -> list[str]:
        """An empty prompt draws the model's idea of "anything": say so. The text encoder reads
        model_max_length tokens; say so when a prompt is longer (it is cut)."""
        out = [] if s.prompt.strip(" ,") else [
            "the prompt is empty: the picture is whatever the model draws with no description; "
            "type what you want to see"]
        tok = getattr(self.model.pipe, "tokenizer", None)
        if tok is None:
            return out
        for name, text in (("prompt", s.prompt), ("negative prompt", s.negative)):
            n, limit = len(tok(text, truncation=False).input_ids), tok.model_max_length
            if text and n > limit:
                out.append(f"the {name} is {n - 2} tokens; the model reads the first {limit - 2}, the rest is ignored")
        return out

    def generate(self, s: GenerateSettings, loras=(), fuse: bool = False) -> GenerationResult:
        s, loras = self.request(s, loras)
        w, h = self.resolve_size(s)
        sched = self._scheduler(s.sampler)
        active = [lw for lw in loras if lw.unet or lw.text]  # weight 0 everywhere = not there: exactly the base
        notes = self.prompt_warnings(s)
        with self.lock:
            warnings = notes + self.slots.ensure([lw.name for lw in active])
            changed = self.slots.apply(active)
            self._streak = 1 if changed else self._streak + 1
            after = self.settings.fuse_after
            if active and (fuse or (after and self._streak >= after)):
                self.slots.fuse()
            t0 = time.perf_counter()
            seeds = tuple(s.seed + i for i in range(s.count))
            images = tuple(self._draw(s, seed, w, h, sched) for seed in seeds)
            seconds, fused = time.perf_counter() - t0, self.slots.fused
        return GenerationResult(images, seeds, s, seconds, tuple(loras), tuple(warnings), fused)

    def generate_batch(self, s: GenerateSettings, prompts: list[str], seeds: list[int], loras=(),
                       batch: int = 8) -> list[Image.Image]:
        """Prompt i at seed i, ``batch`` per pipeline call (the style meter's images): the same
        pipeline, sampler and adapters as :meth:`generate`, only batched."""
        s, loras = self.request(s, loras)
        w, h = self.resolve_size(s)
        sched = self._scheduler(s.sampler)
        active = [lw for lw in loras if lw.unet or lw.text]
        out: list[Image.Image] = []
        with self.lock:
            self.slots.ensure([lw.name for lw in active])
            if self.slots.apply(active):
                self._streak = 0
            for i in range(0, len(prompts), batch):
                out += self._draw_many(s, prompts[i:i + batch], seeds[i:i + batch], w, h, sched)
        return out

    @torch.inference_mode()
    def _draw_many(self, s: GenerateSettings, prompts: list[str], seeds: list[int], w: int, h: int, sched):
        gens = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
        pipe = self.model.pipe
        pipe.scheduler = sched
        try:
            out = pipe(prompt=list(prompts), negative_prompt=[s.negative] * len(prompts) if s.negative else None,
                       num_inference_steps=s.steps, guidance_scale=s.guidance, width=w, height=h,
                       generator=gens, output_type="pil")
        finally:
            pipe.scheduler = self._base_scheduler
        return list(out.images)

    @torch.inference_mode()
    def _draw(self, s: GenerateSettings, seed: int, w: int, h: int, sched) -> Image.Image:
        # A CPU generator gives the same initial noise on every device.
        gen = torch.Generator("cpu").manual_seed(seed)
        pipe = self.model.pipe
        pipe.scheduler = sched
        try:
            out = pipe(prompt=s.prompt, negative_prompt=s.negative or None, num_inference_steps=s.steps,
                       guidance_scale=s.guidance, width=w, height=h, generator=gen, output_type="pil")
        finally:
            pipe.scheduler = self._base_scheduler  # the pipeline keeps its own scheduler for others
        return out.images[0]

    def _scheduler(self, name: str):
        name = samplers.check(name)
        with self.lock:
            if name not in self._schedulers:
                self._schedulers[name] = samplers.build(name, self._base_scheduler.config)
            return self._schedulers[name]

    def grid(self, prompts, sets, settings: GenerateSettings | None = None, fuse: bool = False,
             col_labels: list[str] | None = None):
        """Prompts (rows) × adapter sets (columns) at one seed; see :mod:`studio.generate.grid`."""
        from .grid import draw_grid

        return draw_grid(self, list(prompts), [list(x) for x in sets], settings or GenerateSettings(), fuse,
                         col_labels)

    def loaded(self) -> list[LoadedAdapter]:
        with self.lock:
            return list(self.slots.loaded.values())

    def unload(self, name: str | None = None) -> None:
        """Unload one adapter (or all): frees its memory; it reloads from the library on next use."""
        with self.lock:
            self.slots.apply([])
            for n in [name] if name else list(self.slots.loaded):
                self.slots.evict(n)

    @contextlib.contextmanager
    def borrow(self, library: Library) -> Iterator["Engine"]:
        """Another engine on this very pipeline that draws adapters from ``library`` (a run's judged
        checkpoints, say) while this one waits: nothing is loaded twice, this engine's fused
        weights are restored first, and afterwards the borrowed adapters are unloaded and this
        engine sets its own again on its next draw."""
        with self.lock:
            self.slots.apply([])  # unfused, and none of this engine's adapters active
            for name in [n for n in self.slots.loaded if library.taken(n)]:  # the same pipeline name
                self.slots.evict(name)
            other = Engine(self.model, self.settings, library)
            try:
                yield other
            finally:
                other.unload()
                self.slots.active = None  # unknown: the next draw sets this engine's adapters again

    def to(self, device) -> None:
        """Move the pipeline (base, adapters, fused weights) to ``device``, waiting for a draw in progress."""
        with self.lock:
            self.model.pipe.to(device)
            self.model.device = torch.device(device)
