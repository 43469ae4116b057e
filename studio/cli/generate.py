"""``studio generate`` and ``studio grid``: draw with the engine, with library adapters.

``--lora NAME[:W[:TE_W]]`` (repeatable) and ``<lora:NAME:W>`` prompt tags pick adapters;
``--lora-set "neon:0.5,pastel:0.5"`` (repeatable, "none" = the base) makes grid columns.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..config import EngineSettings, GenerateSettings, ModelSettings
from ..paths import Workspace, check_output, png_bytes, write_output
from ..text import shown
from .common import add_settings, settings_from


def _engine(args: argparse.Namespace):
    from .. import quiet
    from ..generate import Engine
    from ..models.loading import load_model

    quiet.libraries(args.verbose)
    m = settings_from(ModelSettings, args)
    return Engine(load_model(m.model, m.device, m.dtype), settings_from(EngineSettings, args))


def lora_set(text: str) -> list:
    """``"neon:0.5,pastel:0.5"`` -> [LoraWeight, …]; ``"none"`` or ``""`` -> []."""
    from ..generate.tags import parse_spec

    text = text.strip()
    if text.lower() in ("", "none", "base"):
        return []
    return [parse_spec(part.strip(), f"--lora-set {text!r}") for part in text.split(",")]


def _check_request(prompts: list[str], sets: list[list]) -> None:
    """Prompts, tags, adapter names and weights, checked against the library before any model loads."""
    from ..adapters.library import Library
    from ..generate.tags import request
    from ..schema import check_text

    known = Library().names()
    for prompt in prompts:
        check_text("prompt", prompt)
        for loras in sets:
            request(prompt, loras, known)


PNG = {"suffixes": (".png",), "what": "Image path"}


def _targets(args: argparse.Namespace, seeds: list[int]) -> list[Path]:
    """Where the images go; an explicit --out passes the output rule before the model loads."""
    if args.out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return [Workspace().images / f"{stamp}-{s}.png" for s in seeds]
    out = check_output(args.out, **PNG)
    outs = [out] if len(seeds) == 1 else [out.with_name(f"{out.stem}-{s}{out.suffix}") for s in seeds]
    for path in outs[1:]:
        check_output(path, **PNG)
    return outs


def cmd_generate(args: argparse.Namespace) -> int:
    from ..generate.tags import parse_spec

    settings = settings_from(GenerateSettings, args)
    loras = [parse_spec(x, f"--lora {x!r}") for x in args.lora or []]
    _check_request([settings.prompt], [loras])  # before the model loads
    outs = _targets(args, [settings.seed + i for i in range(settings.count)])
    engine = _engine(args)
    r = engine.generate(settings, loras=loras, fuse=args.fuse)
    for path, image in zip(outs, r.images):
        write_output(path, png_bytes(image), **PNG)
    for w in r.warnings:
        print(f"warning: {shown(w)}")
    used = f", {' + '.join(lw.label for lw in r.loras)}" if r.loras else ""
    where = shown(outs[0]) if len(outs) == 1 else f"{len(outs)} images {shown(outs[0])} … {shown(outs[-1].name)}"
    print(f"wrote {where} ({r.image.width}x{r.image.height}, {settings.sampler}{used}, {r.seconds:.2f}s)")
    return 0


def cmd_grid(args: argparse.Namespace) -> int:
    from ..generate import grid

    settings = settings_from(GenerateSettings, args)
    if args.checkpoints is not None:  # ("" reaches Library.get: a clear refusal) the judged checkpoints of one adapter: studio/judge/grid.py
        return __import__("studio.cli.judge", fromlist=["x"]).cmd_checkpoint_grid(args, settings)
    sets = [lora_set(x) for x in args.lora_set or ["none"]]
    prompts = args.prompt_list or [settings.prompt]
    _check_request(prompts, sets)
    out = Path(args.out) if args.out is not None else Workspace().images / f"grid-{time.strftime('%Y%m%d-%H%M%S')}.png"
    if args.out is not None:  # the grid and every cell beside it, before the model loads
        check_output(args.out, **PNG)
        for row in range(len(prompts)):
            for col in range(len(sets)):
                check_output(out.with_name(f"{out.stem}-r{row}-c{col}.png"), **PNG)
    engine = _engine(args)
    r = engine.grid(prompts, sets, settings, fuse=args.fuse)
    paths = grid.save(r, out)
    for w in r.warnings:
        print(f"warning: {shown(w)}")
    print(f"wrote {shown(out)} ({len(r.row_labels)} prompts x {len(r.col_labels)} adapter sets, "
          f"{r.image.width}x{r.image.height}; {len(paths) - 1} cells beside it, {r.seconds:.2f}s)")
    return 0


def register(sub) -> None:
    g = sub.add_parser("generate", help="draw images to PNG, optionally with library adapters")
    add_settings(g, GenerateSettings)
    add_settings(g, ModelSettings)
    add_settings(g, EngineSettings)
    g.add_argument("--lora", action="append", metavar="NAME[:W[:TE_W]]",
                   help="use a library adapter at UNet weight W and text-encoder weight TE_W (repeatable); "
                        "<lora:NAME:W> tags in the prompt work too")
    g.add_argument("--fuse", action="store_true", help="fuse the adapters into the weights (faster repeated draws)")
    g.add_argument("--out", help="PNG path (default: outputs/images/<time>-<seed>.png); with --count N, "
                                 "-<seed> is added to the name; never inside outputs/adapters or datasets, never over a "
                                 "link or device")
    g.set_defaults(func=cmd_generate)

    gr = sub.add_parser("grid", help="compare adapter sets: prompts x adapter sets at one seed, one labelled PNG")
    gr.add_argument("--prompt", action="append", dest="prompt_list", metavar="TEXT",
                    help="a row of the grid (repeatable)")
    gr.add_argument("--lora-set", action="append", metavar="NAME:W,NAME:W",
                    help='a column: adapters with weights, e.g. "neon:1" or "neon:0.5,pastel:0.5"; '
                         '"none" = no adapter (repeatable)')
    gr.add_argument("--checkpoints", metavar="NAME", help="columns: the base, then the judged checkpoints of "
                                                          "adapter NAME (rows default to its judged captions)")
    add_settings(gr, GenerateSettings, skip=("prompt", "count"))
    add_settings(gr, ModelSettings)
    add_settings(gr, EngineSettings)
    gr.add_argument("--fuse", action="store_true", help="fuse each column's blend while drawing it")
    gr.add_argument("--out", help="grid PNG path (default: outputs/images/grid-<time>.png); cells are written "
                                  "beside it as <name>-r<row>-c<col>.png")
    gr.set_defaults(func=cmd_grid)
