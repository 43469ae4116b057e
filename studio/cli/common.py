"""What every ``studio`` command shares: the parser class, flags made from settings fields,
settings read back from them, and the one place an error becomes a line on the terminal.

Flags are generated from the settings dataclasses in :mod:`studio.config`, so the CLI, the UI
and presets share one default, one help text and one schema check per setting.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import StudioError
from ..paths import Workspace, atomic_write_bytes
from ..text import shown

CRASH_EXIT = 70  # EX_SOFTWARE: a bug, not a bad input (those exit 1 or 2)


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (its default prints the whole usage first)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {shown(message, limit=500)} (see `{self.prog} --help`)\n")


def add_settings(parser: argparse.ArgumentParser, cls: type, skip: Sequence[str] = ()) -> None:
    """One flag per field of ``cls`` (``--store-max-side``): its help and default from the field."""
    for f in dataclasses.fields(cls):
        if f.name in skip or dataclasses.is_dataclass(f.default_factory):
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = {"int": int, "float": float, "bool": None}.get(str(f.type), str)
        if kind is None:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                                default=f.default, help=f.metadata["help"])
        else:
            parser.add_argument(flag, dest=f.name, type=kind, default=f.default,
                                help=f"{f.metadata['help']} (default: {f.default!r})")


def settings_from(cls: type, args: argparse.Namespace) -> Any:
    """The settings object the flags describe; the dataclass's schema check refuses bad values."""
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)})


def add_set(parser: argparse.ArgumentParser, example: str = " e.g. --set steps=200 --set lora.rank=16") -> None:
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help=f"override a setting,{example} (repeatable)")


def say(text: str) -> None:
    """Print a report line built by the studio (text from files inside it is already escaped)."""
    print(text, flush=True)


def run(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command: a StudioError is one ``error:`` line (exit 2); anything unexpected is one
    line naming the failure plus a crash log with the traceback (exit 70), never a traceback."""
    try:
        return func(args)
    except StudioError as e:
        print(f"error: {shown(str(e), keep_newlines=True)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `studio adapters | head`
        return 0
    except Exception as e:  # noqa: BLE001 - the last line of defence
        where = crash_log(e, getattr(args, "command", "?"))
        print(f"error: unexpected failure in `studio {getattr(args, 'command', '')}`: {type(e).__name__}: "
              f"{shown(str(e), limit=300)} — this is a bug; {where}", file=sys.stderr)
        return CRASH_EXIT


def crash_log(e: BaseException, command: str) -> str:
    """Write the traceback to ``outputs/logs/crash-<time>-<pid>.log`` (atomically); say where."""
    path = Workspace().root / "logs" / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    text = f"studio {command} ({' '.join(map(shown, sys.argv))})\n\n" + "".join(
        traceback.format_exception(type(e), e, e.__traceback__))
    try:
        atomic_write_bytes(path, text.encode("utf-8", "backslashreplace"))
    except Exception as err:  # noqa: BLE001 - a full disk must not hide the first failure
        return f"the crash log could not be written ({type(err).__name__}); run with -v and report the message"
    return f"the traceback is in {Path(path)}"
