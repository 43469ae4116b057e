"""The ``studio`` command. One module per command group, each with ``register(sub)``:

    generate  generate, grid          serve     serve
    train     train, preflight        data      dataset add/show, sample-data
    adapters  adapters, export, import, blend
    judge     judge (the style meter's scorecard, use a checkpoint)

Shared parsing and error handling live in :mod:`studio.cli.common`. A new group is a module
here with ``register(sub)`` added to :data:`GROUPS`.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Sequence

from .common import Parser, add_settings, run, settings_from  # noqa: F401 - the public helpers

GROUPS = ("generate", "serve", "train", "data", "adapters", "judge")  # help lists them in this order


def build_parser() -> Parser:
    p = Parser(prog="studio", description="LoRA Style Studio")
    p.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    sub = p.add_subparsers(dest="command", required=True)
    for name in GROUPS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from .. import quiet

    args = build_parser().parse_args(argv)
    quiet.apply(args.verbose)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return run(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
