"""Image sets: ``studio dataset add|show`` and ``studio sample-data``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import IngestSettings, SEED
from ..errors import StudioError
from ..text import shown
from .common import add_settings, settings_from

FAMILIES = ["tiny", "sd1", "sd2", "sdxl"]


def cmd_sample_data(args: argparse.Namespace) -> int:
    from ..models.tiny.sample_data import write_plain_photos, write_style_set
    from ..models.tiny.scenes import STYLES
    from ..paths import check_output_folder

    if not SEED["min"] <= args.seed <= SEED["max"]:
        raise StudioError(f"--seed {args.seed} is out of range.", f"Use a value from {SEED['min']} to {SEED['max']}.")
    styles = STYLES if args.style == "all" else (args.style,)
    targets = [Path(args.out_dir) / style if len(styles) > 1 else Path(args.out_dir) for style in styles]
    for target in targets:  # all checked before the first image is drawn
        check_output_folder(target)
    for style, target in zip(styles, targets):
        n = write_style_set(target, style, args.count, args.seed)
        print(f"wrote {n} {style} images + captions to {shown(target)}")
        if args.plain:
            n = write_plain_photos(target, args.count, args.seed)
            print(f"wrote {n} plain photos of the same products, captioned without '{style}', to {shown(target)}; "
                  f"add the folder with `studio dataset add NAME {shown(target)} --trigger {style}`")
    return 0


def cmd_dataset_add(args: argparse.Namespace) -> int:
    from ..data.ingest import ingest

    settings = settings_from(IngestSettings, args)
    report = ingest(args.name, [Path(p) for p in args.paths], settings, family=args.family)
    print(report.format())
    if report.accepted:
        from ..data import manifest as mf
        from ..data.captions import trigger_note

        note = trigger_note(mf.load(report.dataset))
        if note:
            print(f"note: {note}")
    return 0 if report.accepted or report.total else 1


def cmd_dataset_show(args: argparse.Namespace) -> int:
    from ..data import manifest as mf

    m = mf.load(args.name)
    print(f"dataset {m.name}: {len(m.items)} images ({len(m.train)} train, {len(m.val)} validation), "
          f"trigger \"{shown(m.trigger)}\", folder {shown(mf.dataset_dir(m.name))}")
    for it in m.items:
        print(f"  [{it.split:5}] {shown(it.file)} {it.width}x{it.height} ({shown(it.caption_source)}) "
              f"\"{shown(it.caption)}\"  <- {shown(it.source)}")
    if m.refused:
        print(f"refused so far: {len(m.refused)}")
        for r in m.refused:
            print(f"  - {shown(r.get('source', '?'))}: {shown(r.get('reason', '?'))}")
    return 0


def register(sub) -> None:
    from ..models.tiny.scenes import STYLES

    ds = sub.add_parser("dataset", help="image sets: add images, show a dataset")
    dsub = ds.add_subparsers(dest="dataset_command", required=True)
    da = dsub.add_parser("add", help="add images from folders, zips or files to a dataset (created if new)")
    da.add_argument("name", help="dataset name (letters, digits, - and _)")
    da.add_argument("paths", nargs="+", help="folders, .zip files or image files")
    da.add_argument("--family", choices=FAMILIES, default="tiny",
                    help="base model family the set is for (sets the minimum image size)")
    add_settings(da, IngestSettings)
    da.set_defaults(func=cmd_dataset_add)
    dsh = dsub.add_parser("show", help="print a dataset's manifest")
    dsh.add_argument("name")
    dsh.set_defaults(func=cmd_dataset_show)

    d = sub.add_parser("sample-data", help="write a procedural style set (PNG + caption .txt pairs)")
    d.add_argument("out_dir", help="folder to write into (created if missing; not inside outputs/adapters or datasets)")
    d.add_argument("--style", choices=[*STYLES, "all"], default="all", help="which style set (default: all)")
    d.add_argument("--count", type=int, default=16, help="images per style (default: 16)")
    d.add_argument("--seed", type=int, default=0, help="random seed, 0 to 2**32-1 (default: 0)")
    d.add_argument("--plain", action="store_true",
                   help="also write a plain photo of each product, captioned without the style (prior "
                        "preservation: the adapter learns that only the trigger word asks for the style)")
    d.set_defaults(func=cmd_sample_data)
