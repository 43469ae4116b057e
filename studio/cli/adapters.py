"""CLI of the adapter library: `studio adapters [rename|delete|duplicate|show]`, `export`, `import`, `blend`."""

from __future__ import annotations

import argparse
import json

from ..config import ExportSettings, ImportSettings
from ..errors import StudioError
from ..text import shown
from .common import add_settings, settings_from


def _lib():
    from ..adapters.library import Library

    return Library()


def _ranks(rec) -> str:
    return " ".join(f"{t}:{g.rank}/{g.alpha:g}" for t, g in rec.layers.items()) or "-"


def cmd_list(args: argparse.Namespace) -> int:
    records = _lib().list()
    if not records:
        print("no adapters yet (train one, or `studio import FILE`)")
        return 0
    good, damaged = [r for r in records if r.ok], [r for r in records if not r.ok]
    rows = [("name", "family", "source", "steps", "rank/alpha per layer type", "size", "trigger", "created")]
    rows += [(r.name, shown(r.family or "?"), shown(r.source or "?"), shown(r.steps or "-"), shown(_ranks(r)),
              f"{r.size_bytes / 1e6:.2f} MB", shown(r.trigger or "-", limit=60), shown(r.created[:19] or "-"))
             for r in good]
    rows += [(r.shown_name, "DAMAGED", "-", "-", "-", f"{r.size_bytes / 1e6:.2f} MB", "-", "-") for r in damaged]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    if damaged:
        print(f"\n{len(damaged)} damaged (listed, never loaded; `studio adapters delete NAME` removes one):")
        for r in damaged:
            print(f"  {r.shown_name}: {r.damaged}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    r = _lib().record(args.name)
    if not r.ok:
        print(f"{r.shown_name}: DAMAGED, {r.size_bytes / 1e6:.2f} MB\n  reason: {r.damaged}\n  folder: "
              f"{shown(r.file.parent)}\n  `studio adapters delete {r.shown_name}` removes it.")
        return 1
    print(f"{r.name}: {shown(r.family or 'unknown family')}, {shown(r.source or 'unknown source')}, "
          f"{r.size_bytes / 1e6:.2f} MB")
    for k in ("file", "base", "base_hash", "steps", "created", "trigger", "best_val", "preview"):
        print(f"  {k}: {shown(getattr(r, k))}")
    for t, g in r.layers.items():
        print(f"  {shown(t)}: {g.modules} modules, rank {g.rank}, alpha {g.alpha:g}")
    if args.metadata:
        print(json.dumps(r.metadata, indent=1))
    return 0


def cmd_rename(args: argparse.Namespace) -> int:
    r = _lib().rename(args.old, args.new)
    print(f"renamed {args.old} -> {r.name} ({r.file})")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    _lib().delete(args.name)
    print(f"deleted {args.name}")
    return 0


def cmd_duplicate(args: argparse.Namespace) -> int:
    r = _lib().duplicate(args.name, args.new)
    print(f"duplicated {args.name} -> {r.name} ({r.file})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..adapters.export import export

    if args.rank != "auto" and not str(args.rank or "0").isdigit():
        raise StudioError(f"--rank {shown(repr(args.rank), limit=40)} is not a whole number or 'auto'.",
                          "Use e.g. --rank 8, --rank auto --keep 0.95, or 0 to keep the trained ranks.")
    rank, keep = (0, args.keep or 0.95) if args.rank == "auto" else (int(args.rank or 0), 0.0)
    s = ExportSettings(format=args.format, dtype=args.dtype, rank=rank, keep=keep, fold_alpha=args.fold_alpha)
    result = export(args.name, s, out=args.out, overwrite=args.overwrite)
    print(shown(result.format_report(), keep_newlines=True))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from ..adapters.importer import import_file

    print(import_file(args.path, args.name, settings_from(ImportSettings, args)).format())
    return 0


def cmd_blend(args: argparse.Namespace) -> int:
    from ..adapters.blend import blend, parse_part

    print(blend(_lib(), args.new, [parse_part(p) for p in args.parts], rank=args.rank).format())
    return 0


def register(sub) -> None:
    """Add the library commands to the `studio` sub-command parser."""

    a = sub.add_parser("adapters", help="the adapter library: list (default), show, rename, delete, duplicate")
    a.set_defaults(func=cmd_list)
    asub = a.add_subparsers(dest="adapters_command")
    for name, fn, arg_names, help_ in (("show", cmd_show, ("name",), "print one adapter's record"),
                                       ("rename", cmd_rename, ("old", "new"), "rename (file metadata follows)"),
                                       ("delete", cmd_delete, ("name",), "delete an adapter and its folder"),
                                       ("duplicate", cmd_duplicate, ("name", "new"), "copy an adapter under a new name")):
        p = asub.add_parser(name, help=help_)
        for n in arg_names:
            p.add_argument(n)
        p.set_defaults(func=fn)
        if name == "show":
            p.add_argument("--metadata", action="store_true", help="also print the file's header metadata")

    e = sub.add_parser("export", help="write a library adapter for A1111/ComfyUI/Forge/kohya or diffusers")
    e.add_argument("name")
    add_settings(e, ExportSettings, skip=("rank", "keep"))
    e.add_argument("--rank", default="0", help="resize by SVD to rank R, or 'auto' (with --keep); 0 = keep")
    e.add_argument("--keep", type=float, default=0.0,
                   help="with --rank auto: share of singular-value energy kept per module (default 0.95)")
    e.add_argument("--out", help="file to write (default: outputs/exports/NAME-FORMAT-DTYPE.safetensors)")
    e.add_argument("--overwrite", action="store_true", help="replace the --out file if it exists")
    e.set_defaults(func=cmd_export)

    i = sub.add_parser("import", help="check a LoRA file from elsewhere and add it to the library")
    i.add_argument("path")
    i.add_argument("--name", help="library name (default: the file name, cleaned)")
    add_settings(i, ImportSettings)
    i.set_defaults(func=cmd_import)

    b = sub.add_parser("blend", help="blend library adapters into a new one: studio blend NEW a:0.7 b:0.3")
    b.add_argument("new")
    b.add_argument("parts", nargs="+", metavar="NAME:WEIGHT")
    b.add_argument("--rank", type=int, default=0, help="compress to this rank by SVD; 0 = exact (sum of ranks)")
    b.set_defaults(func=cmd_blend)
