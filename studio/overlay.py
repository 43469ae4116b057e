"""Changing settings: presets (TOML files), ``--set key=value`` strings and page forms laid
over a settings object (:mod:`studio.config`); unknown keys are errors naming where they came
from, and the result passes the one schema (:mod:`studio.schema`)."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from .errors import StudioError
from .schema import kind_name, short_repr

T = TypeVar("T")


def coerce(cls: type, name: str, raw: str) -> Any:
    """Parse a ``--set key=value`` string into the field's type."""
    ftype = {f.name: f.type for f in fields(cls)}[name]
    ftype = ftype if isinstance(ftype, str) else ftype.__name__
    try:
        if ftype == "bool":
            if raw.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(raw)
            return raw.lower() in ("1", "true", "yes", "on")
        return {"int": int, "float": float}.get(ftype, str)(raw)
    except ValueError:  # int("9" * 5000) too: Python refuses over 4,300 digits
        raise StudioError(f"{name}={short_repr(raw)} is not a valid {ftype}.") from None


def overlay(obj: T, values: dict[str, Any], source: str) -> T:
    """Return ``obj`` with ``values`` applied; unknown keys are errors naming ``source``.
    The result passes :func:`check_fields` (the constructor runs it)."""
    known = {f.name: f for f in fields(obj)}
    changes: dict[str, Any] = {}
    if not isinstance(values, dict):
        raise StudioError(f"{source} must be a table of settings, not {kind_name(values)}.")
    for key, val in values.items():
        if key not in known:
            raise StudioError(f"Unknown setting {short_repr(key)} in {source}.",
                              f"Known settings: {', '.join(sorted(known))}.")
        cur = getattr(obj, key)
        if dataclasses.is_dataclass(cur):
            if not isinstance(val, dict):
                raise StudioError(f"Setting {key!r} in {source} must be a table.")
            changes[key] = overlay(cur, val, f"{source} [{key}]")
        elif isinstance(val, dict):
            raise StudioError(f"Setting {key!r} in {source} is a single value, not a group: "
                              f"{key}.{next(iter(val), '')} does not exist.", f"Write {key}=VALUE.")
        elif isinstance(cur, tuple):
            changes[key] = tuple(val) if isinstance(val, (list, tuple)) else tuple(str(val).split("|")) \
                if isinstance(val, str) else val  # a number stays a number: the schema refuses it
        else:
            changes[key] = coerce(type(obj), key, val) if isinstance(val, str) and \
                not isinstance(cur, str) else _typed(key, val, cur, source)
    try:
        return dataclasses.replace(obj, **changes)
    except StudioError as e:  # the schema's refusal, with where the value came from
        if source in e.what:
            raise
        raise StudioError(f"{e.what.rstrip('.')} (in {source}).", e.fix) from None


def _typed(key: str, val: Any, cur: Any, source: str) -> Any:
    """A preset or form value as it is: the schema (:func:`check_fields`) judges its type, so TOML
    ``steps = 10.5`` is refused like ``--set steps=10.5``. Only a whole number for a float field is
    converted."""
    if isinstance(cur, float) and isinstance(val, int) and not isinstance(val, bool):
        try:
            return float(val)
        except OverflowError:  # an int beyond 1e308
            raise StudioError(f"{key}={short_repr(val)} is out of range (in {source}).") from None
    return val


def apply_sets(obj: T, pairs: list[str], source: str = "--set") -> T:
    """Apply ``key=value`` strings; ``lora.rank=16`` reaches into a nested group."""
    nested: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise StudioError(f"{source} {short_repr(pair)} is not key=value.")
        node = nested
        *parents, leaf = key.strip().split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise StudioError(f"{source} {short_repr(pair)}: {p} is a single value, not a group.")
        if isinstance(node.get(leaf), dict):
            raise StudioError(f"{source} {short_repr(pair)}: {leaf} is a group; set one of its keys ({leaf}.KEY=VALUE).")
        node[leaf] = value.strip()
    return overlay(obj, nested, source)


def load_toml(path: Path) -> dict[str, Any]:
    """A preset file: refused readably when missing, a folder, not a regular file, too big,
    not UTF-8 text or not TOML."""
    import stat

    from .text import shown

    path = Path(path)
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            raise StudioError(f"Preset {_where(path)} is a folder.", "Give a .toml file.")
        if not stat.S_ISREG(st.st_mode):
            raise StudioError(f"Preset {_where(path)} is not a regular file.", "Give a .toml file.")
        if st.st_size > 1_000_000:
            raise StudioError(f"Preset {_where(path)} is {st.st_size:,} bytes; a preset is a few hundred.", "Give a .toml file.")
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise StudioError(f"Preset file {_where(path)} does not exist.") from None
    except UnicodeDecodeError:
        raise StudioError(f"Preset {_where(path)} is not text (not UTF-8).", "Give a .toml file.") from None
    except tomllib.TOMLDecodeError as e:
        raise StudioError(f"{_where(path)} is not valid TOML: {shown(str(e))}.") from None
    except (OSError, ValueError, RecursionError) as e:
        raise StudioError(f"Preset {_where(path)} could not be read: {shown(getattr(e, 'strerror', None) or e)}.") from None


def _where(path: Path) -> str:
    from .text import shown

    return shown(str(path), limit=200)
