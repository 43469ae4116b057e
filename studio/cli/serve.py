"""``studio serve``: the browser studio."""

from __future__ import annotations

import argparse
import faulthandler
import signal
import sys

from ..config import ModelSettings, ServeSettings
from .common import add_settings, settings_from


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    from .. import quiet
    from ..ui.server import exposure_warning, launch, parse_auth

    quiet.libraries(args.verbose)
    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 <pid>`: every thread's stack to stderr (what a stuck server does)
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    serve = settings_from(ServeSettings, args)
    warning = exposure_warning(serve.host, parse_auth(serve.auth or os.environ.get("STUDIO_AUTH", "")))
    if warning:
        print(warning, file=sys.stderr, flush=True)
    launch(settings_from(ModelSettings, args), serve)
    return 0


def register(sub) -> None:
    s = sub.add_parser("serve", help="start the browser studio",
                       epilog="Everything it makes goes under ./outputs; set STUDIO_OUTPUTS=/some/folder to use "
                              "another folder.")
    add_settings(s, ModelSettings)
    add_settings(s, ServeSettings)
    s.set_defaults(func=cmd_serve)
