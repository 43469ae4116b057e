"""Text from files and users, made safe to show on a terminal or in a report line.

A file name, zip member, trigger word or tensor name can hold ANSI escapes (which recolour or
rewrite the terminal), newlines (which forge report lines) or bidi overrides (which reverse
what is read). :func:`shown` escapes them as Python-style ``\\x1b`` / ``\\u202e`` sequences.
"""

from __future__ import annotations

import re
import unicodedata

# bidi embeddings/overrides/isolates, zero-width marks and the line/paragraph separators
_INVISIBLE = set("\u061c\u200b\u200c\u200d\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e"
                 "\u2060\u2066\u2067\u2068\u2069\ufeff")


BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")  # embeddings, overrides, isolates


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(c: str) -> str:
    if c in _NAMED:
        return _NAMED[c]
    o = ord(c)
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"


def is_control(c: str) -> bool:
    """C0/C1 controls (ESC included), DEL, bidi overrides and other invisible format marks."""
    o = ord(c)
    return o < 32 or 127 <= o < 160 or c in _INVISIBLE or unicodedata.category(c) in ("Cs", "Co", "Cn")


def shown(s: object, keep_newlines: bool = False, limit: int | None = None) -> str:
    """``s`` as text with every control character escaped (``\\x1b[31m`` stays visible as such).
    ``keep_newlines`` keeps ``\\n`` and tab (for our own multi-line messages); ``limit`` cuts
    very long text with an ellipsis."""
    text = s if isinstance(s, str) else str(s)
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    if not any(is_control(c) for c in text):
        return text
    keep = "\n\t" if keep_newlines else ""
    return "".join(c if c in keep or not is_control(c) else _escape(c) for c in text)


def has_control(s: str, allow: str = "") -> bool:
    return any(is_control(c) and c not in allow for c in s)


def mentions(text: str, trigger: str) -> bool:
    """Whether ``text`` has ``trigger`` as a word of its own, in any case (the text encoder lowercases)."""
    return bool(trigger) and re.search(rf"(?<!\w){re.escape(trigger)}(?!\w)", text or "", re.IGNORECASE) is not None
