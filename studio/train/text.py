"""Caption -> UNet conditioning, through the pipeline's own ``encode_prompt`` (the path
generation uses). Cached per caption when the text encoder is frozen."""

from __future__ import annotations

import random

import torch

from ..data.captions import training_caption


class TextConditioner:
    def __init__(self, pipe, family: str, train_text: bool, cache: bool, dropout: float,
                 shuffle: bool, keep_tokens: int, seed: int, resolution: int):
        self.pipe, self.family, self.train_text = pipe, family, train_text
        self.cache_on = cache and not train_text and not shuffle
        self.dropout, self.shuffle, self.keep, self.seed = dropout, shuffle, keep_tokens, seed
        self.resolution = resolution
        self.cache: dict[str, tuple] = {}

    def captions_for_step(self, captions: list[str], n: int) -> list[str]:
        rng = random.Random(f"{self.seed}:caption:{n}")
        return [training_caption(c, rng, self.dropout, self.shuffle, self.keep) for c in captions]

    def _encode(self, prompts: list[str], device) -> tuple:
        if self.family == "sdxl":
            emb, _, pooled, _ = self.pipe.encode_prompt(prompts, device=device, num_images_per_prompt=1,
                                                        do_classifier_free_guidance=False)
            return emb, pooled
        emb, _ = self.pipe.encode_prompt(prompts, device=device, num_images_per_prompt=1,
                                         do_classifier_free_guidance=False)
        return (emb,)

    def warm(self, captions: list[str], device) -> None:
        """Encode every caption up front (then the text encoders may leave the GPU)."""
        self._cached(list(dict.fromkeys(captions)), device)

    def _cached(self, prompts: list[str], device) -> tuple:
        missing = [p for p in dict.fromkeys(prompts) if p not in self.cache]
        if missing:
            with torch.no_grad():
                out = self._encode(missing, device)
            for i, p in enumerate(missing):
                self.cache[p] = tuple(t[i:i + 1].detach().cpu() for t in out)
        parts = [self.cache[p] for p in prompts]
        return tuple(torch.cat([x[k] for x in parts]).to(device) for k in range(len(parts[0])))

    def __call__(self, prompts: list[str], device, height: int, width: int) -> dict:
        """UNet keyword arguments for a batch of (already augmented) prompts."""
        if self.cache_on:
            out = self._cached(prompts, device)
        elif self.train_text:
            out = self._encode(prompts, device)
        else:
            with torch.no_grad():
                out = self._encode(prompts, device)
        kwargs = {"encoder_hidden_states": out[0]}
        if self.family == "sdxl":
            ids = torch.tensor([[height, width, 0, 0, height, width]], device=device, dtype=out[0].dtype)
            kwargs["added_cond_kwargs"] = {"text_embeds": out[1], "time_ids": ids.repeat(len(prompts), 1)}
        return kwargs
