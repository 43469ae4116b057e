"""Quiet by default: third-party notices and loading bars only with ``-v``.

Applied once by the CLI (every command, including ``serve``) before the libraries are
imported. Only known, harmless notices are filtered, each where it is raised: library
loggers keep ERROR, so real errors still show; our own ``studio.*`` warnings are untouched.

Filtered (shown again with ``-v``):
- bitsandbytes: "Failed to load CPU gemm_4bit_forward from kernels-community" (a logging warning);
- diffusers: the ``torch_dtype`` deprecation (FutureWarning), "Loading pipeline components" bars,
  "No LoRA keys associated to CLIPTextModel" (a text-encoder-less adapter);
- transformers: "requires torchvision … falling back" notices, "Loading weights" bars, the LOAD
  REPORT listing the *other* adapters' keys as missing when a second adapter loads;
- peft: "Already found a `peft_config` attribute" (several adapters on one model is our design).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

_ENV = {"TRANSFORMERS_VERBOSITY": "error", "DIFFUSERS_VERBOSITY": "error",
        "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
_WARNINGS = [
    (FutureWarning, r"`torch_dtype` is deprecated"),
    (UserWarning, r"Already found a `peft_config` attribute"),
    (DeprecationWarning, r"`torch\.jit\.script_method` is deprecated"),
]


def apply(verbose: bool = False) -> None:
    """Silence third-party noise unless ``verbose``; safe to call more than once."""
    if verbose:
        return
    for key, value in _ENV.items():  # read by the libraries when they are first imported
        os.environ.setdefault(key, value)
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    for category, message in _WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    if "transformers" in sys.modules or "diffusers" in sys.modules:
        libraries(verbose)


def libraries(verbose: bool = False) -> None:
    """Set the libraries' own verbosity and loading bars (imports them: call before loading a model)."""
    if verbose:
        return
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    for lib in (tlog, dlog):
        lib.set_verbosity_error()
        lib.disable_progress_bar()
