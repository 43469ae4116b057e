"""A1111 prompt tags: ``<lora:name:w>`` and ``<lora:name:unet_w:te_w>``; pure functions, no torch.

``parse(prompt, known)`` returns the prompt without its tags and the adapters the tags ask
for. ``parse_spec("neon:0.8")`` reads the same ``name[:w[:te_w]]`` form the CLI uses.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable

from ..errors import StudioError

MAX_WEIGHT = 4.0
_TAG = re.compile(r"<lora:([^<>]*)>", re.IGNORECASE)


@dataclass(frozen=True)
class LoraWeight:
    """One adapter in a request: its UNet weight and its text-encoder weight (None = same as ``unet``)."""
    name: str
    unet: float = 1.0
    te: float | None = None

    @property
    def text(self) -> float:
        return self.unet if self.te is None else self.te

    @property
    def label(self) -> str:
        w = f"{self.unet:g}" if self.te is None or self.te == self.unet else f"{self.unet:g}/{self.te:g}"
        return f"{self.name} {w}"


def _short(text: str, n: int = 80) -> str:
    """repr of ``text``, cut to ``n`` characters: error messages stay one readable line."""
    return repr(text) if len(text) <= n else repr(text[:n]) + "…"


def _weight(raw: str, where: str) -> float:
    try:
        w = float(raw)
    except ValueError:
        raise StudioError(f"{where}: weight {_short(raw, 20)} is not a number.",
                          "Write it like <lora:name:0.8> or <lora:name:0.8:0.5>.") from None
    if not math.isfinite(w) or abs(w) > MAX_WEIGHT:
        raise StudioError(f"{where}: weight {_short(raw, 20)} is outside -{MAX_WEIGHT:g}…{MAX_WEIGHT:g}.",
                          "Use a weight between -4 and 4 (1 = full strength, 0 = off).")
    return w


def parse_spec(spec: str, where: str | None = None) -> LoraWeight:
    """``name``, ``name:w`` or ``name:unet_w:te_w`` -> LoraWeight (names are not checked here)."""
    where = where or f"Adapter {_short(spec)}"
    parts = [p.strip() for p in spec.split(":")]
    if not parts[0]:
        raise StudioError(f"{where} names no adapter.", "Write <lora:name:weight>, e.g. <lora:neon:0.8>.")
    if len(parts) > 3:
        raise StudioError(f"{where} has too many ':' parts.", "Use name, name:weight or name:unet_w:te_w.")
    unet = _weight(parts[1], where) if len(parts) > 1 else 1.0
    te = _weight(parts[2], where) if len(parts) > 2 else None
    return LoraWeight(parts[0], unet, te)


def check_known(loras: Iterable[LoraWeight], known: Iterable[str]) -> None:
    known = sorted(known)
    seen: set[str] = set()
    for lw in loras:
        shown = repr(lw.name) if len(lw.name) <= 80 else repr(lw.name[:80]) + "…"
        if lw.name not in known:
            raise StudioError(f"No adapter named {shown}.", f"Known adapters: {', '.join(known) or 'none yet'}.")
        if lw.name in seen:
            raise StudioError(f"Adapter {shown} is named twice.", "Name each adapter once with its weight.")
        seen.add(lw.name)


def parse(prompt: str, known: Iterable[str]) -> tuple[str, list[LoraWeight]]:
    """Remove every ``<lora:…>`` tag from ``prompt``; return (clean prompt, adapters in tag order)."""
    loras = [parse_spec(m.group(1), f"Prompt tag {_short(m.group(0))}") for m in _TAG.finditer(prompt)]
    rest = _TAG.sub(" ", prompt)
    if re.search(r"<lora:", rest, re.IGNORECASE):
        raise StudioError("A <lora:…> tag in the prompt is not closed.", "End each tag with '>'.")
    check_known(loras, known)
    clean = re.sub(r"\s+", " ", rest)
    clean = re.sub(r"\s+([,.;])", r"\1", clean)
    clean = re.sub(r"([,;])(\s*[,;])+", r"\1", clean).strip(" ,;")
    return clean, loras


def request(prompt: str, loras: Iterable[LoraWeight], known: Iterable[str]) -> tuple[str, list[LoraWeight]]:
    """A whole request, checked without a model: prompt tags + explicit adapters -> (clean prompt,
    adapters), every name known, none twice, every weight within ±MAX_WEIGHT."""
    known, loras = list(known), list(loras)
    if "<lora:" in prompt.lower():
        prompt, tagged = parse(prompt, known)
        loras += tagged
    check_known(loras, known)
    for lw in loras:
        if not all(math.isfinite(w) and abs(w) <= MAX_WEIGHT for w in (lw.unet, lw.text)):
            raise StudioError(f"Weight of adapter {_short(lw.name)} is outside -4…4.", "Use a weight from -4 to 4.")
    return prompt, loras
