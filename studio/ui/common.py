"""Small helpers every tab uses: readable errors, and events that leave the fields readable."""

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


def act(listener: Callable, fn: Callable, inputs: Any, outputs: Any, on: Any = None, **kw: Any) -> Any:
    """Wire ``fn`` (through :func:`guard`) to ``listener`` (``button.click``, ``picker.change`` ...).

    Gradio draws an event's progress over its outputs, and a refusal turns each of them into a red
    "Error" badge that hides its content until the next event: a refused "Add to set" used to blank
    the set picker, the name the user typed and the upload box. So progress (and that badge) shows
    only on ``on``, a result or status line, or nowhere when ``on`` is None; the message itself is
    the toast. Every event with a field the user types into or picks from among its outputs is wired
    so (tests/test_ui_events.py checks them all)."""
    progress = {"show_progress_on": on} if on is not None else {"show_progress": "hidden"}
    return listener(guard(fn), inputs, outputs, **progress, **kw)
