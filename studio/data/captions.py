"""Captions: sidecar vs template at ingest; dropout and tag shuffling at train time;
an optional local captioning model behind a small interface."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Protocol

from PIL import Image

from ..errors import StudioError
from ..schema import check_template, fill
from ..text import mentions, shown


def initial_caption(sidecar: str | None, template: str, trigger: str, prepend_trigger: bool) -> tuple[str, str]:
    """Return ``(caption, source)``: a sidecar wins, else the template with the trigger."""
    if sidecar:
        if prepend_trigger and trigger and not sidecar.startswith(trigger):
            return f"{trigger}, {sidecar}", "sidecar"
        return sidecar, "sidecar"
    check_template("caption_template", template, ("trigger",))  # never str.format on user text
    return fill(template, trigger=trigger).strip(), "template"


def trigger_note(manifest) -> str:
    """A warning when captions lack the set's trigger word: their pictures teach the look without it,
    so the style comes even when a prompt does not ask for it (the leak meter's "restyles everything").
    Said where captions arrive (adding files with their own .txt captions, saving edits) and where a
    set is picked for training; "" when every caption has it."""
    trigger = manifest.trigger
    missing = [it for it in manifest.items if trigger and not mentions(it.caption, trigger)]
    if not missing:
        return ""
    n, t = len(missing), shown(trigger)
    return (f"{n} caption{'s' if n != 1 else ''} of {len(manifest.items)} "
            f"{'do' if n != 1 else 'does'} not contain the trigger word \u201c{t}\u201d: "
            f"{'those pictures teach' if n != 1 else 'that picture teaches'} "
            f"the look without it, so the style also comes when a prompt leaves the word out, and a prompt "
            f"with \u201c{t}\u201d brings less of it. To keep the style to the word, end "
            f"{'those captions' if n != 1 else 'that caption'} with \", {t} style\" (Images tab).")


def training_caption(caption: str, rng: random.Random, dropout: float = 0.0,
                     shuffle_tags: bool = False, keep_tokens: int = 1) -> str:
    """The caption one training step sees: maybe dropped (empty), maybe tag-shuffled
    with the first ``keep_tokens`` comma-separated tags kept in place (as kohya does)."""
    if dropout and rng.random() < dropout:
        return ""
    if not shuffle_tags:
        return caption
    tags = [t.strip() for t in caption.split(",") if t.strip()]
    head, tail = tags[:keep_tokens], tags[keep_tokens:]
    rng.shuffle(tail)
    return ", ".join(head + tail)


class Captioner(Protocol):
    def caption(self, image: Image.Image) -> str: ...


class TransformersCaptioner:
    """An image-to-text model from a local folder (e.g. BLIP). None ships with the studio:
    point ``path`` at one you have downloaded; nothing is fetched from the network."""

    def __init__(self, path: Path):
        path = Path(path)
        if not (path / "config.json").is_file():
            raise StudioError(f"No captioning model at {path} (no config.json).",
                              "No captioner ships with the studio: download one (e.g. a BLIP model) "
                              "into a folder and point at it, or write .txt sidecar captions.")
        from transformers import pipeline

        self._pipe = pipeline("image-to-text", model=str(path), local_files_only=True)

    def caption(self, image: Image.Image) -> str:
        return self._pipe(image)[0]["generated_text"].strip()
