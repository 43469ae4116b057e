"""Which styles a Generate page has ticked, by name, and their trigger words in the prompt: pure
functions (no components; a skip where nothing changed), the list itself drawn by :mod:`studio.ui.generate`."""

from __future__ import annotations

import gradio as gr

from ..errors import StudioError


def adapter_rows(names, triggers: dict[str, str]) -> list[list[str]]:
    """What the adapter toggles are drawn from: [[name, trigger word or ""], ...]."""
    return [[n, triggers.get(n, "")] for n in names]


def row_values(row: list) -> tuple[str, str, bool, float, float]:
    """(name, trigger, ticked, weight, text-encoder weight) of an adapter row: [name, trigger] or, for an
    adapter renamed since the list was drawn, [name, trigger, [ticked, weight, te weight]]."""
    carried = row[2] if len(row) > 2 and row[2] else [False, 1.0, 1.0]
    return row[0], row[1], bool(carried[0]), float(carried[1]), float(carried[2])


def adapter_follow(library, rows: list[list[str]], current: list, picked: dict | None):
    """The adapter list when the library changed: ``rows`` as it is now. What this page had ticked
    under a name that is gone follows a rename (ticked, with its weights, under the new name) or is
    said to be gone: a style renamed or deleted in another window used to vanish from the list and
    be drawn without, and the page said nothing (newcomer review, 2026-12-08). A list drawn again
    carries every name's values as the user left them (a key new to the page, like a renamed one, is
    drawn with its constructor values). Returns (rows or a skip when the list is as drawn, the
    ticked state or a skip when no name moved or went, a status line or a skip)."""
    picked, names, notes = dict(picked or {}), {r[0] for r in rows}, []
    gone = [n for n in picked if n not in names]
    for old in gone:
        values = picked.pop(old)
        try:
            new = library.current_name(old)
        except StudioError:
            new = None
        if new in names and new not in picked:
            picked[new] = values
            if values[0]:
                notes.append(f"**{old}** was renamed **{new}** (in another window or here): still ticked, as {new}.")
        elif values[0]:
            notes.append(f"⚠ **{old}** was ticked here and is no longer in the Library (deleted): pictures are "
                         "drawn without it.")
    same = [list(r[:2]) for r in rows] == [list(r[:2]) for r in current or []]
    drawn = gr.skip() if same and not gone else [[*r[:2], picked[r[0]]] if r[0] in picked else list(r[:2])
                                                 for r in rows]
    return drawn, picked if gone else gr.skip(), "\n\n".join(notes) if notes else gr.skip()


def with_trigger(prompt: str, trigger: str, on: bool) -> str:
    """``prompt`` with ``trigger`` appended (``on``) or taken out, as a whole word."""
    import re

    prompt = prompt or ""
    pattern = re.compile(rf"(^|,)\s*{re.escape(trigger)}\s*(?=,|$)", re.IGNORECASE)
    if on:
        return prompt if pattern.search(prompt) else (f"{prompt.rstrip(' ,')}, {trigger}" if prompt.strip()
                                                      else trigger)
    return pattern.sub("", prompt).strip(" ,")


def trigger_warnings(prompt: str, picks: list, triggers: dict[str, str]) -> list[str]:
    """A line for every ticked style whose trigger word is missing from the prompt."""
    from ..judge.prompts import mentions

    out = []
    for n, *_ in picks:
        t = triggers.get(n, "")
        if t and not mentions(prompt, t):
            out.append(f"The prompt lacks {n}'s trigger word “{t}”: the style may not show. Tick {n} again "
                       "or type the word.")
    return out
