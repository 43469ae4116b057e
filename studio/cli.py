"""The ``studio`` command: serve, generate, grid, train, dataset, sample-data.

Flags are generated from the settings dataclasses in :mod:`studio.config`, so the CLI,
the UI and presets share one default and one help text per setting.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from .config import IngestSettings, ModelSettings, ServeSettings
from .errors import StudioError
from .paths import Workspace


def add_settings(parser: argparse.ArgumentParser, cls: type, skip: Sequence[str] = ()) -> None:
    for f in dataclasses.fields(cls):
        if f.name in skip:
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
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)})


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    from . import quiet
    from .ui.server import exposure_warning, launch, parse_auth

    quiet.libraries(args.verbose)
    serve = settings_from(ServeSettings, args)
    warning = exposure_warning(serve.host, parse_auth(serve.auth or os.environ.get("STUDIO_AUTH", "")))
    if warning:
        print(warning, file=sys.stderr, flush=True)
    launch(settings_from(ModelSettings, args), serve)
    return 0


def cmd_sample_data(args: argparse.Namespace) -> int:
    from .models.tiny.sample_data import write_style_set
    from .models.tiny.scenes import STYLES

    styles = STYLES if args.style == "all" else (args.style,)
    for style in styles:
        target = Path(args.out_dir) / style if len(styles) > 1 else Path(args.out_dir)
        n = write_style_set(target, style, args.count, args.seed)
        print(f"wrote {n} {style} images + captions to {target}")
    return 0


def cmd_dataset_add(args: argparse.Namespace) -> int:
    from .data.ingest import ingest

    settings = settings_from(IngestSettings, args)
    report = ingest(args.name, [Path(p) for p in args.paths], settings, family=args.family)
    print(report.format())
    return 0 if report.accepted or report.total else 1


def cmd_dataset_show(args: argparse.Namespace) -> int:
    from .data import manifest as mf

    m = mf.load(args.name)
    print(f"dataset {m.name}: {len(m.items)} images ({len(m.train)} train, {len(m.val)} validation), "
          f"trigger \"{m.trigger}\", folder {mf.dataset_dir(m.name)}")
    for it in m.items:
        print(f"  [{it.split:5}] {it.file} {it.width}x{it.height} ({it.caption_source}) \"{it.caption}\"  <- {it.source}")
    if m.refused:
        print(f"refused so far: {len(m.refused)}")
        for r in m.refused:
            print(f"  - {r['source']}: {r['reason']}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train; with ``--events PATH`` every event (and any error, as a ``failed`` event) is
    also written as JSON lines for the job runner."""
    from .jobs.events_file import JsonlSink

    events = JsonlSink(Path(args.events)) if args.events else None
    try:
        return _train(args, events)
    except StudioError as e:  # setup errors; NonFiniteLoss was already reported by the trainer
        if events:
            events.fail(str(e))
        raise
    except KeyboardInterrupt:  # a second Ctrl-C: no final save, no final event (the run is interrupted)
        raise
    except Exception as e:
        oom = type(e).__name__ == "OutOfMemoryError"  # torch.cuda.OutOfMemoryError
        message = OOM_MESSAGE if oom else f"Training crashed: {type(e).__name__}: {e}"
        if events:
            events.fail(message)
        if oom:
            raise StudioError(message) from e
        raise
    finally:
        if events:
            events.close()


OOM_MESSAGE = ("The GPU ran out of memory while training. Use an 8 GB preset, or lower batch_size or "
               "resolution, turn on gradient_checkpointing, or set quantize=nf4; then start again "
               "(Resume continues from the last checkpoint).")


def _train(args: argparse.Namespace, events: Any) -> int:
    import signal

    from .events import StopToken

    stop = StopToken()  # first Ctrl-C/SIGINT (even while loading): stop at the next step, save
    signal.signal(signal.SIGINT, lambda *_: (stop.stop(), signal.signal(signal.SIGINT, signal.default_int_handler)))
    # settings, names, dataset and resume fail here, before torch and the model load
    settings, model_ref, device, family = _train_preflight(args)

    from . import quiet

    quiet.libraries(args.verbose)
    from .jobs.events_file import Tee
    from .train.cli_sink import TqdmSink
    from .train.loop import Trainer

    dataset = args.dataset or args.name
    model = None
    if args.images:
        if family is None:  # a hub id: its family is known once it is loaded
            model = _load(args)
            family = model.family
        _ingest(args, dataset, family, device)
        _check_train(args, settings, family, device, model_ref)  # now against the ingested dataset
    model = model or _load(args)
    sink = Tee(events)
    trainer = Trainer(args.name, dataset, model, settings, sink, stop)
    bar = TqdmSink(settings.steps)  # drawn once the dataset is known to be trainable
    sink.sinks.insert(0, bar)
    try:
        trainer.run(resume=args.resume)
    except BaseException:
        bar.bar.close()  # the error message then starts on its own line
        raise
    return 0


def _load(args: argparse.Namespace):
    from .models.loading import load_model

    m = settings_from(ModelSettings, args)
    return load_model(m.model, m.device, m.dtype)


def _ingest(args: argparse.Namespace, dataset: str, family: str, device) -> None:
    from accelerate import PartialState

    from .data.ingest import ingest

    state = PartialState(cpu=device.type == "cpu")
    if state.is_main_process:  # under accelerate launch: one process ingests, the others wait
        print(ingest(dataset, [Path(args.images)], IngestSettings(), family=family).format())
    state.wait_for_everyone()


def _train_preflight(args: argparse.Namespace):
    """Everything `studio train` can check before loading a model: settings, names, family,
    device, dataset, resume. Returns (settings, model ref, device, family or None for hub ids)."""
    from .adapters.library import check_name
    from .config import apply_sets
    from .models.loading import family_of, parse_ref, pick_device_dtype
    from .train.presets import DEFAULT_FOR_FAMILY, load_preset

    check_name(args.name)
    m = settings_from(ModelSettings, args)
    ref = parse_ref(m.model)
    device, _ = pick_device_dtype(m.device, m.dtype)
    family = family_of(ref)
    if family is None and not args.preset:
        raise StudioError(f"The family of {m.model!r} is only known after downloading it, so no default "
                          "preset can be picked.", "Pass --preset (sd15-8gb or sdxl-8gb).")
    settings = apply_sets(load_preset(args.preset or DEFAULT_FOR_FAMILY[family]), args.set or [])
    if args.dataset:
        _check_train(args, settings, family, device, ref)
    elif family:
        from .train.validate import check_settings

        check_settings(settings, family, None, device, _multiple(ref, family))
    return settings, ref, device, family


def _multiple(ref, family: str) -> int:
    from .models.loading import size_multiple_of

    return size_multiple_of(ref, family)


def _check_train(args, settings, family, device, ref) -> None:
    from .data import manifest as mf
    from .train import checkpoint as ckpt
    from .train.validate import check_device_memory, check_settings

    manifest = mf.load(args.dataset or args.name)
    if family:
        check_settings(settings, family, manifest, device, _multiple(ref, family))
        check_device_memory(settings, family, device)
    folder = Workspace().adapters / args.name / "checkpoints"
    if args.resume and not ckpt.list_checkpoints(folder):
        raise StudioError(f"Nothing to resume: {folder} has no checkpoint.",
                          "Run the same command without --resume to start over.")


def cmd_preflight(args: argparse.Namespace) -> int:
    from .config import apply_sets
    from .train import preflight
    from .train.presets import DEFAULT_FOR_FAMILY, load_preset

    s = apply_sets(load_preset(args.preset or DEFAULT_FOR_FAMILY[args.family]), args.set or [])
    est = preflight.for_family(args.family, s)
    print(f"{args.family}, {s.resolution or 'native'} px, batch {s.batch_size}: {est.format()}")
    if args.budget_gb:
        preflight.check(est, int(args.budget_gb * preflight.GiB), args.family)
        print(f"fits in {args.budget_gb} GiB")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .models.tiny.scenes import STYLES

    p = argparse.ArgumentParser(prog="studio", description="LoRA Style Studio")
    p.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    sub = p.add_subparsers(dest="command", required=True)

    from .cli_generate import register as register_generate

    register_generate(sub)  # generate, grid

    s = sub.add_parser("serve", help="start the browser studio")
    add_settings(s, ModelSettings)
    add_settings(s, ServeSettings)
    s.set_defaults(func=cmd_serve)

    t = sub.add_parser("train", help="train a style LoRA (Ctrl-C stops and still writes a usable adapter)")
    src = t.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", help="name of a dataset made with `studio dataset add`")
    src.add_argument("--images", help="a folder/zip of images: ingested as dataset NAME, then trained")
    t.add_argument("--name", required=True, help="adapter name (outputs/adapters/NAME/)")
    t.add_argument("--preset", help="presets/*.toml name or a .toml path (default: by model family)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a setting, e.g. --set steps=200 --set lora.rank=16 (repeatable)")
    t.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    t.add_argument("--events", metavar="PATH",
                   help="also append every event (and any error) to PATH as JSON lines (the job runner reads it)")
    add_settings(t, ModelSettings)
    t.set_defaults(func=cmd_train)

    pf = sub.add_parser("preflight", help="estimate the training VRAM of a preset without loading a model")
    pf.add_argument("--family", choices=["tiny", "sd1", "sd2", "sdxl"], default="sd1")
    pf.add_argument("--preset", help="preset name or .toml path (default: by family)")
    pf.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting (repeatable)")
    pf.add_argument("--budget-gb", type=float, default=0.0, help="fail (exit 2) if the estimate exceeds this")
    pf.set_defaults(func=cmd_preflight)

    ds = sub.add_parser("dataset", help="image sets: add images, show a dataset")
    dsub = ds.add_subparsers(dest="dataset_command", required=True)
    da = dsub.add_parser("add", help="add images from folders, zips or files to a dataset (created if new)")
    da.add_argument("name", help="dataset name (letters, digits, - and _)")
    da.add_argument("paths", nargs="+", help="folders, .zip files or image files")
    da.add_argument("--family", choices=["tiny", "sd1", "sd2", "sdxl"], default="tiny",
                    help="base model family the set is for (sets the minimum image size)")
    add_settings(da, IngestSettings)
    da.set_defaults(func=cmd_dataset_add)
    dsh = dsub.add_parser("show", help="print a dataset's manifest")
    dsh.add_argument("name")
    dsh.set_defaults(func=cmd_dataset_show)

    d = sub.add_parser("sample-data", help="write a procedural style set (PNG + caption .txt pairs)")
    d.add_argument("out_dir", help="folder to write into (created if missing)")
    d.add_argument("--style", choices=[*STYLES, "all"], default="all", help="which style set (default: all)")
    d.add_argument("--count", type=int, default=16, help="images per style (default: 16)")
    d.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    d.set_defaults(func=cmd_sample_data)
    __import__("studio.cli_adapters", fromlist=["register"]).register(sub)  # adapters, export, import, blend
    __import__("studio.cli_judge", fromlist=["register"]).register(sub)  # judge
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from . import quiet

    args = build_parser().parse_args(argv)
    quiet.apply(args.verbose)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except StudioError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
