"""``studio train`` and ``studio preflight``: settings, names, dataset and resume are checked
before torch and the model load; events go to a tqdm bar and optionally a JSON-lines file."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Any

from ..config import IngestSettings, ModelSettings
from ..errors import StudioError
from ..paths import Workspace
from .common import add_set, add_settings, settings_from


def cmd_train(args: argparse.Namespace) -> int:
    """Train; with ``--events PATH`` every event (and any error, as a ``failed`` event) is
    also written as JSON lines for the job runner."""
    from ..jobs.events_file import JsonlSink

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

    from ..events import StopToken

    stop = StopToken()  # first Ctrl-C/SIGINT (even while loading): stop at the next step, save
    signal.signal(signal.SIGINT, lambda *_: (stop.stop(), signal.signal(signal.SIGINT, signal.default_int_handler)))
    # settings, names, dataset and resume fail here, before torch and the model load
    settings, model_ref, device, family = _train_preflight(args)

    from .. import quiet

    quiet.libraries(args.verbose)
    from accelerate import PartialState

    from ..adapters import busy

    # the adapter folder's lock before the model loads (minutes on SD): a training of the same name
    # elsewhere, a rename or a Use of it is refused now, not after the load. Main process only.
    main = PartialState(cpu=device.type == "cpu").is_main_process  # (cpu= as the trainer's Accelerator)
    held = Workspace().adapters / args.name if main else None
    with busy.training(held) if held else contextlib.nullcontext():
        return _load_and_train(args, events, stop, settings, model_ref, device, family, held)


def _load_and_train(args, events, stop, settings, model_ref, device, family, held: Path | None) -> int:
    """``held``: the adapter folder whose lock this process holds (None on other processes)."""
    from ..jobs.events_file import Tee
    from ..jobs.launch import clear_folder
    from ..train.cli_sink import TqdmSink
    from ..train.loop import Trainer

    dataset = args.dataset or args.name
    model = None
    if args.images:
        if family is None:  # a hub id: its family is known once it is loaded
            model = _load(args)
            family = model.family
        _ingest(args, dataset, family, device)
        _check_train(args, settings, family, device, model_ref)  # now against the ingested dataset
    model = model or _load(args)
    if held and not args.resume:  # a fresh start: the last run's checkpoints would be resumed from later
        clear_folder(held)
    sink = Tee(events)
    trainer = Trainer(args.name, dataset, model, settings, sink, stop)
    bar = TqdmSink(settings.steps)  # drawn once the dataset is known to be trainable
    sink.sinks.insert(0, bar)
    try:
        trainer.run(resume=args.resume, locked=True)
    except BaseException:
        bar.bar.close()  # the error message then starts on its own line
        raise
    return 0


def _load(args: argparse.Namespace):
    from ..models.loading import load_model

    m = settings_from(ModelSettings, args)
    return load_model(m.model, m.device, m.dtype)


def _ingest(args: argparse.Namespace, dataset: str, family: str, device) -> None:
    from accelerate import PartialState

    from ..data.ingest import ingest

    state = PartialState(cpu=device.type == "cpu")
    if state.is_main_process:  # under accelerate launch: one process ingests, the others wait
        print(ingest(dataset, [Path(args.images)], IngestSettings(), family=family).format(), flush=True)
    state.wait_for_everyone()


def _train_preflight(args: argparse.Namespace):
    """Everything `studio train` can check before loading a model: settings, names, family,
    device, dataset, resume. Returns (settings, model ref, device, family or None for hub ids)."""
    from ..adapters.library import check_name
    from ..models.loading import family_of, parse_ref, pick_device_dtype
    from ..overlay import apply_sets
    from ..train.presets import DEFAULT_FOR_FAMILY, load_preset

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
        from ..train.validate import check_settings

        check_settings(settings, family, None, device, _multiple(ref, family))
    return settings, ref, device, family


def _multiple(ref, family: str) -> int:
    from ..models.loading import size_multiple_of

    return size_multiple_of(ref, family)


def _check_train(args, settings, family, device, ref) -> None:
    from ..data import manifest as mf
    from ..train import checkpoint as ckpt
    from ..train.validate import check_device_memory, check_settings

    manifest = mf.load(args.dataset or args.name)
    if family:
        check_settings(settings, family, manifest, device, _multiple(ref, family))
        check_device_memory(settings, family, device)
    folder = Workspace().adapters / args.name / "checkpoints"
    if args.resume and not ckpt.list_checkpoints(folder):
        raise StudioError(f"Nothing to resume: {folder} has no checkpoint.",
                          "Run the same command without --resume to start over.")


def cmd_preflight(args: argparse.Namespace) -> int:
    from ..overlay import apply_sets
    from ..train import preflight
    from ..train.presets import DEFAULT_FOR_FAMILY, load_preset

    s = apply_sets(load_preset(args.preset or DEFAULT_FOR_FAMILY[args.family]), args.set or [])
    est = preflight.for_family(args.family, s)
    print(f"{args.family}, {s.resolution or 'native'} px, batch {s.batch_size}: {est.format()}")
    if args.budget_gb:
        preflight.check(est, int(args.budget_gb * preflight.GiB), args.family)
        print(f"fits in {args.budget_gb} GiB")
    return 0


def register(sub) -> None:
    t = sub.add_parser("train", help="train a style LoRA (Ctrl-C stops and still writes a usable adapter)")
    src = t.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", help="name of a dataset made with `studio dataset add`")
    src.add_argument("--images", help="a folder/zip of images: ingested as dataset NAME, then trained")
    t.add_argument("--name", required=True, help="adapter name (outputs/adapters/NAME/)")
    t.add_argument("--preset", help="presets/*.toml name or a .toml path (default: by model family)")
    add_set(t)
    t.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    t.add_argument("--events", metavar="PATH",
                   help="also append every event (and any error) to PATH as JSON lines (the job runner reads it)")
    add_settings(t, ModelSettings)
    t.set_defaults(func=cmd_train)

    pf = sub.add_parser("preflight", help="estimate the training VRAM of a preset without loading a model")
    pf.add_argument("--family", choices=["tiny", "sd1", "sd2", "sdxl"], default="sd1")
    pf.add_argument("--preset", help="preset name or .toml path (default: by family)")
    add_set(pf, "")
    pf.add_argument("--budget-gb", type=float, default=0.0, help="fail (exit 2) if the estimate exceeds this")
    pf.set_defaults(func=cmd_preflight)
