"""The LoRA being trained merged into its base layers for the length of a draw, the base weights
restored bit for bit after.

A preview or style-meter round draws 12 sampler steps through every LoRA-wrapped layer; unmerged,
each of them adds two small matmuls and peft's bookkeeping, which on the tiny model's many small
layers costs about a third of the draw (benchmarks/RESULTS.md, "Style meter: cost"). Merged, the
layers run as plain ones. peft's own ``merge``/``unmerge`` are used; ``unmerge`` subtracts the delta
again, which leaves float rounding in the base weights, so the weights saved before the merge are
copied back: training goes on from exactly the weights it had.
"""

from __future__ import annotations

import contextlib

import torch

from .inject import ADAPTER


def _layers(modules: list) -> list:
    from peft.tuners.lora import LoraLayer

    return [m for mod in modules for m in mod.modules()
            if isinstance(m, LoraLayer) and ADAPTER in m.lora_A and not m.disable_adapters and not m.merged]


@contextlib.contextmanager
def merged(modules: list):
    """Within: the trained adapter of ``modules`` (UNet, text encoders) merged into the base weights.
    Layers whose adapter is switched off (the base model's images) are left alone."""
    layers = _layers(modules)
    with torch.no_grad():
        saved = [(m, [p.detach().clone() for p in m.get_base_layer().parameters(recurse=False)]) for m in layers]
        done = []
        try:
            for m, _ in saved:
                m.merge(adapter_names=[ADAPTER])
                done.append(m)
            yield
        finally:
            for m in done:
                m.unmerge()
            for m, before in saved:
                for p, w in zip(m.get_base_layer().parameters(recurse=False), before):
                    p.copy_(w)
