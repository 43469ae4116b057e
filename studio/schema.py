"""The one schema: every settings value checked against its field's declaration.

A field of a settings dataclass (:mod:`studio.config`) declares its type by annotation and its
limits in metadata (``min``/``max``, ``choices``, ``template``, ``line``, ``max_chars``,
``pattern``, ``path``, ``colour``). CLI flags, ``--set``, presets and page forms all end in
:func:`check_fields` (the dataclasses call it on construction). User templates (captions) are
checked and filled here too, never through ``str.format``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import fields
from typing import Any

from .errors import StudioError

INT_LIMIT = 2**63 - 1  # bounds an int setting that declares no max (it must still fit a C long)
MAX_TEXT_CHARS = 20_000
MAX_PROMPT_CHARS = 20_000  # the text encoder reads ~75 tokens; the rest only costs tokenizer time


def check_text(name: str, text: str, max_chars: int = MAX_PROMPT_CHARS, allow: str = "\t\n\r") -> None:
    """Text: a string of at most ``max_chars`` without control characters (``allow``: tab/newline)."""
    from .text import BIDI, shown

    if not isinstance(text, str):
        raise StudioError(f"{name} must be text, not {type(text).__name__}.")
    if len(text) > max_chars:
        raise StudioError(f"The {name} is {len(text):,} characters long; at most {max_chars:,} are accepted.",
                          "The model reads only about 75 tokens (~300 characters) of it anyway; shorten it."
                          if max_chars == MAX_PROMPT_CHARS else "Shorten it.")
    bad = next((i for i, c in enumerate(text) if (ord(c) < 32 or 127 <= ord(c) < 160 or c in BIDI)
                and c not in allow), None)
    if bad is not None:
        raise StudioError(f"The {name} holds the control character {shown(text[bad])} (U+{ord(text[bad]):04X}) "
                          f"at position {bad}.", "Remove it (it is invisible, and often pasted by accident).")


def check_fields(obj: Any) -> None:
    """The one schema check: every field of a settings object against its declaration
    (type from the annotation; ``min``/``max``, ``choices``, ``template``, ``line``,
    ``max_chars`` from the metadata). Raises a StudioError naming the field."""
    for f in fields(obj):
        check_value(f, getattr(obj, f.name))


def check_value(f: dataclasses.Field, v: Any) -> None:
    kind, meta, name = str(f.type), f.metadata, f.name
    if f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory):
        if not isinstance(v, f.default_factory):
            raise StudioError(f"Setting {name!r} must be a table of settings, not {kind_name(v)}.")
        return  # checked on its own construction
    if kind == "bool":
        if not isinstance(v, bool):
            raise StudioError(f"{name}={short_repr(v)} must be true or false, not {kind_name(v)}.")
    elif kind in ("int", "float"):
        _number(name, v, kind, meta)
    elif kind == "str":
        _text(name, v, meta)
    elif kind == "tuple":
        if not isinstance(v, tuple):
            raise StudioError(f"{name}={short_repr(v)} must be a list of texts, not {kind_name(v)}.")
        if len(v) > 64:
            raise StudioError(f"{name} holds {len(v)} entries; at most 64 are accepted.")
        for item in v:
            _text(name, item, meta)
    allowed = meta.get("choices")  # the allowed values live on the field (the UI's dropdowns read them too)
    if allowed and v not in allowed:
        raise StudioError(f"{name}={short_repr(v)} is not one of: {', '.join(allowed)}.")


def kind_name(v: Any) -> str:
    return {bool: "true/false", int: "a whole number", float: "a number", str: "text", dict: "a table",
            list: "a list", tuple: "a list"}.get(type(v), type(v).__name__)


def short_repr(v: Any) -> str:
    from .text import shown

    return shown(repr(v), limit=80)


def _number(name: str, v: Any, kind: str, meta: Any) -> None:
    lo, hi = meta.get("min"), meta.get("max")
    ok = isinstance(v, int) and not isinstance(v, bool) or kind == "float" and isinstance(v, float)
    if not ok:
        raise StudioError(f"{name}={short_repr(v)} must be {'a whole number' if kind == 'int' else 'a number'}, "
                          f"not {kind_name(v)}.", f"Use a value from {lo} to {hi}." if hi is not None else None)
    if isinstance(v, float) and not math.isfinite(v):  # NaN passes every < and > test
        raise StudioError(f"{name}={v!r} is not a number.", f"Use a finite value from {lo} to {hi}.")
    if kind == "int" and hi is None:
        hi = INT_LIMIT
    if lo is not None and v < lo or hi is not None and v > hi:
        raise StudioError(f"{name}={short_repr(v)} is out of range.", f"Use a value from {lo} to {hi}.")


def _text(name: str, v: Any, meta: Any) -> None:
    if not isinstance(v, str):
        raise StudioError(f"{name}={short_repr(v)} must be text, not {kind_name(v)}.",
                          "Quote it in a preset (e.g. name = \"value\").")
    check_text(name, v, meta.get("max_chars", MAX_TEXT_CHARS), allow="" if meta.get("line") else "\t\n\r")
    if meta.get("template"):
        check_template(name, v, meta["template"])
    if meta.get("pattern") and not re.fullmatch(meta["pattern"], v):
        raise StudioError(f"{name}={short_repr(v)} is not allowed.", f"{f_help(meta)}")
    if meta.get("path") and (len(v) > 4096 or any(len(part.encode("utf-8", "surrogateescape")) > 255
                                                   for part in v.replace("\\", "/").split("/"))):
        raise StudioError(f"{name} is too long for a path ({len(v):,} characters; each part at most 255 bytes).",
                          "Check the value.")
    if meta.get("colour"):
        from PIL import ImageColor

        try:
            ImageColor.getrgb(v)
        except ValueError:
            raise StudioError(f"{name}={short_repr(v)} is not a colour.", "Use e.g. #ffffff, white or rgb(255,255,255).") from None


def f_help(meta: Any) -> str:
    return meta.get("help", "")


def check_template(name: str, text: str, allowed: tuple[str, ...]) -> None:
    """A user template may only use plain ``{field}`` placeholders from ``allowed``: no attribute or
    index access (``{trigger.__class__}``), conversions or format specs (``{trigger:>999999999}``)."""
    import string

    fix = f"Use plain text with {' or '.join('{' + a + '}' for a in allowed)}; write {{{{ and }}}} for braces."
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as e:
        raise StudioError(f"{name} {short_repr(text)} is not a valid template ({e}).", fix) from None
    for _, field_name, spec, conversion in parts:
        if field_name is None:
            continue
        if field_name not in allowed or spec or conversion:
            raise StudioError(f"{name} {short_repr(text)} uses {{{short_repr(field_name)[1:-1]}"
                              f"{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}: "
                              "only plain named fields are replaced.", fix)


def fill(template: str, **values: str) -> str:
    """Replace the plain ``{name}`` fields of a template checked by :func:`check_template`
    (never ``str.format``'s attribute access on user text)."""
    import string

    return "".join(literal + (values[f] if f is not None else "")
                   for literal, f, _, _ in string.Formatter().parse(template))
