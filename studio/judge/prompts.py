"""Judge prompts: the set's own captions (held-out first), and the same without the trigger."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..text import mentions  # noqa: F401  (judge prompts and their callers share one rule)


@dataclass(frozen=True)
class JudgePrompts:
    styled: tuple[str, ...]  # captions with the trigger, held-out ones first
    free: tuple[str, ...]  # the first captions with the trigger removed (leak meter)
    seeds: tuple[int, ...]  # one per styled prompt; free prompt i uses seeds[i]


def without_trigger(caption: str, trigger: str) -> str:
    """``"a red mug, neon style"`` -> ``"a red mug"``; ``"a photo in sepia style"`` -> ``"a photo"``."""
    if not trigger:
        return caption
    pat = rf"[,;\s]*\b(?:in\s+)?(?:the\s+)?{re.escape(trigger)}\b(?:\s+style)?"
    text = re.sub(pat, "", caption, flags=re.IGNORECASE).strip(" ,;")
    return text or "a photo"


def judge_prompts(held_out: list[str], train: list[str], trigger: str, count: int, free: int,
                  seed: int) -> JudgePrompts:
    """``count`` distinct captions (held-out first, then training ones, cycling if the set is small)."""
    seen: list[str] = []
    for c in [*held_out, *train]:
        if c not in seen:
            seen.append(c)
    seen = seen or [trigger or "a photo"]
    styled = tuple(seen[i % len(seen)] for i in range(count))
    free_prompts = tuple(without_trigger(c, trigger) for c in styled[:free])
    return JudgePrompts(styled, free_prompts, tuple(seed + i for i in range(count)))
