"""``studio judge``: is the style learned? The scorecard of an adapter's checkpoints (style %,
copy, leak, validation loss, the recommended one), any adapter judged against an image set, and
"use this checkpoint" (``--use STEP [--as NEW]``)."""

from __future__ import annotations

import argparse

from ..config import GenerateSettings, ModelSettings, TrainSettings, help_of


def cmd_judge(args: argparse.Namespace) -> int:
    from ..adapters.library import Library
    from ..errors import StudioError
    from ..judge import scorecard

    if args.as_name is not None and args.use is None:
        raise StudioError("--as NEW goes with --use STEP.", f"Write: studio judge {args.name} --use STEP --as NEW.")
    if args.dataset is not None and args.use is not None:
        raise StudioError("--dataset and --use do different things.", "Give one of them.")
    lib = Library()
    lib.get(args.name)  # exists, or a StudioError listing the known names
    if args.use is not None:
        from ..judge.use import use_checkpoint

        done = use_checkpoint(args.name, args.use, args.as_name)
        where = "as the adapter" if done == args.name else f"as the new adapter {done!r}"
        print(f"wrote checkpoint step {args.use} of {args.name!r} {where}")
        return 0
    if args.dataset is not None:
        return _judge_against(args)
    rows, pick = scorecard.load(lib.folder(args.name))
    if not rows:
        raise StudioError(f"Adapter {args.name!r} has no scorecard (it was not trained here, or before the "
                          "style meter existed).", "Judge it against an image set: add --dataset SET.")
    print(scorecard.table(rows, pick))
    return 0


def _judge_against(args: argparse.Namespace) -> int:
    from .. import quiet
    from .common import settings_from
    from ..generate import Engine
    from ..judge import scorecard
    from ..judge.adapter import judge_adapter
    from ..models.loading import load_model

    # the flags pass the same schema as every setting (seed range, counts, threshold), before the model loads
    gs = GenerateSettings(seed=args.seed, steps=args.steps)
    ts = TrainSettings(judge_prompts=args.prompts, judge_free=args.free, copy_threshold=args.copy_threshold)
    quiet.libraries(args.verbose)
    m = settings_from(ModelSettings, args)
    engine = Engine(load_model(m.model, m.device, m.dtype))
    row = judge_adapter(engine, args.name, args.dataset, gs, ts.judge_prompts, ts.judge_free, ts.copy_threshold)
    print(f"{args.name} against image set {args.dataset!r} ({args.prompts} captions, seed {args.seed}):")
    print(scorecard.table([row], None))
    return 0


def cmd_checkpoint_grid(args: argparse.Namespace, settings: GenerateSettings) -> int:
    """``studio grid --checkpoints NAME``: prompts x (base, checkpoints...) at one seed."""
    import time
    from pathlib import Path

    from .. import quiet
    from ..adapters.library import Library
    from ..generate import Engine, grid
    from ..judge.grid import checkpoint_grid
    from ..models.loading import load_model
    from ..paths import Workspace, check_output
    from .common import settings_from
    from .generate import PNG

    Library().get(args.checkpoints)  # before the model loads
    if args.out is not None:  # the one output rule, as for every grid
        check_output(args.out, **PNG)
    quiet.libraries(args.verbose)
    m = settings_from(ModelSettings, args)
    r = checkpoint_grid(Engine(load_model(m.model, m.device, m.dtype)), args.checkpoints, args.prompt_list, settings)
    out = Path(args.out) if args.out else Workspace().images / f"checkpoints-{time.strftime('%Y%m%d-%H%M%S')}.png"
    grid.save(r, out)
    print(f"wrote {out} ({len(r.row_labels)} prompts x {len(r.col_labels)} columns: {', '.join(r.col_labels)}; "
          f"{r.seconds:.2f}s)")
    return 0


def register(sub) -> None:
    from .common import add_settings

    j = sub.add_parser("judge", help="is the style learned? an adapter's scorecard (style %%, copy, leak), "
                                     "or any adapter judged against an image set")
    j.add_argument("name", help="library adapter")
    j.add_argument("--dataset", help="judge against this image set now (draws base and adapter images)")
    j.add_argument("--prompts", type=int, default=TrainSettings.judge_prompts,
                   help=help_of(TrainSettings, "judge_prompts"))
    j.add_argument("--free", type=int, default=TrainSettings.judge_free, help=help_of(TrainSettings, "judge_free"))
    j.add_argument("--copy-threshold", type=float, default=TrainSettings.copy_threshold,
                   help=help_of(TrainSettings, "copy_threshold"))
    j.add_argument("--steps", type=int, default=20, help="sampler steps of the judged images (default: 20)")
    j.add_argument("--seed", type=int, default=0, help="first seed of the judged images (default: 0)")
    j.add_argument("--use", type=int, metavar="STEP", help="write the judged checkpoint STEP as the adapter")
    j.add_argument("--as", dest="as_name", metavar="NEW", help="with --use: as a new library adapter NEW instead")
    add_settings(j, ModelSettings)
    j.set_defaults(func=cmd_judge)
