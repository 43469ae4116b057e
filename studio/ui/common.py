"""Small helpers every tab uses: readable errors."""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable

import gradio as gr

from ..errors import StudioError

log = logging.getLogger(__name__)


def guard(fn: Callable) -> Callable:
    """Run a callback; a StudioError becomes a readable message in the page, anything else
    a short message (the traceback goes to the server log, never to the page)."""
    @functools.wraps(fn)
    def run(*args: Any) -> Any:
        try:
            return fn(*args)
        except StudioError as e:
            raise gr.Error(str(e), print_exception=False) from None
        except gr.Error:
            raise
        except Exception as e:  # noqa: BLE001 - the page must show something readable
            log.exception("callback %s failed", getattr(fn, "__name__", fn))
            raise gr.Error(f"Something went wrong: {type(e).__name__}: {e}. The server log has the details.",
                           print_exception=False) from None
    return run
