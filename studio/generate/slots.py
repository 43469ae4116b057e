"""Library adapters on one pipeline through diffusers' peft integration.

Adapters load by name on first use (``load_lora_weights(adapter_name=…)``) and stay loaded
up to an LRU cap (``delete_adapters`` evicts). A blend is applied with ``set_adapters``
(separate UNet and text-encoder weights) or removed with ``disable_lora``; ``fuse_lora``
merges it into the weights. Not thread-safe on its own: the engine holds its lock around
``apply`` + the draw.

diffusers/peft pitfalls handled here:
- peft's unmerge subtracts the delta computed with the *current* scale, so the weights are
  never re-scaled (``set_adapters``), loaded, deleted or disabled while fused: unfuse first;
- peft's unmerge (``weight -= delta``) is not bit-exact: with ``exact_unfuse`` the fused layers'
  base weights are copied to CPU memory before fusing and put back after unfusing, so the
  base (and every unfused blend) draws exactly as if it had never been fused;
- ``fuse_lora(lora_scale≠1)`` rescales layers for good: always fuse at 1.0 (the weights
  already carry the scale);
- peft adapter names must not clash with the trainer's own adapter ``default``: library
  adapters are named ``lib-<name>``, and a request without library adapters leaves a
  foreign (training) adapter exactly as it was.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass

import torch
from peft.tuners.tuners_utils import BaseTunerLayer

from ..adapters.library import AdapterRecord, Library
from ..errors import StudioError
from ..models.loading import LoadedModel
from .tags import LoraWeight

log = logging.getLogger(__name__)
PREFIX = "lib-"
FAMILY_NAMES = {"tiny": "the tiny model", "sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL"}


@dataclass(frozen=True)
class LoadedAdapter:
    name: str
    file_bytes: int  # size of the library file
    param_bytes: int  # memory its LoRA weights take on the pipeline
    components: tuple[str, ...]  # unet, text_encoder, text_encoder_2
    warning: str = ""


def family_check(record: AdapterRecord, model: LoadedModel) -> str:
    """Refuse another family; return a warning for another checkpoint of the same family."""
    if record.family and record.family != model.family:
        a, b = FAMILY_NAMES.get(record.family, record.family), FAMILY_NAMES.get(model.family, model.family)
        raise StudioError(f"Adapter {record.name!r} was made for {a}, but the loaded base model is {b}.",
                          f"Load a {a} base model to use it, or pick an adapter trained for {b}.")
    if record.base_hash and record.base_hash != model.base_hash:
        return (f"Adapter {record.name!r} was trained on a different {FAMILY_NAMES.get(model.family, model.family)} "
                f"checkpoint (base {record.base_hash}, loaded {model.base_hash}); results may differ.")
    return ""


class AdapterSlots:
    def __init__(self, model: LoadedModel, library: Library, max_loaded: int, exact_unfuse: bool = True):
        self.model, self.library, self.max_loaded, self.exact_unfuse = model, library, max_loaded, exact_unfuse
        self._saved: list = []  # (LoRA layer, its base weight before fusing, on the CPU)
        self.loaded: OrderedDict[str, LoadedAdapter] = OrderedDict()  # LRU order, newest last
        self.active: tuple[tuple[str, float, float], ...] | None = ()  # None = unknown
        self.fused = False

    @property
    def pipe(self):
        return self.model.pipe

    def _components(self) -> list[str]:
        return [c for c in self.pipe._lora_loadable_modules if getattr(self.pipe, c, None) is not None]

    def _param_bytes(self, pname: str) -> int:
        return sum(p.numel() * p.element_size() for c in self._components()
                   for n, p in getattr(self.pipe, c).named_parameters() if f".{pname}." in n)

    def unfuse(self) -> None:
        if self.fused:
            self.pipe.unfuse_lora(components=self._components())
            with torch.no_grad():  # peft's subtraction leaves rounding residue: put the exact weights back
                for layer, weight in self._saved:
                    layer.get_base_layer().weight.copy_(weight)
            self._saved, self.fused = [], False

    def fuse(self) -> None:
        if not self.fused and self.active:
            names = [PREFIX + n for n, _, _ in self.active]
            layers = [m for c in self._components() for m in getattr(self.pipe, c).modules()
                      if isinstance(m, BaseTunerLayer) and any(n in getattr(m, "lora_A", {}) for n in names)]
            if self.exact_unfuse:
                self._saved = [(m, m.get_base_layer().weight.detach().to("cpu", copy=True)) for m in layers]
            self.pipe.fuse_lora(components=self._components(), lora_scale=1.0, adapter_names=names)
            self.fused = True

    def _load(self, name: str) -> LoadedAdapter:
        record = self.library.get(name)
        warning = family_check(record, self.model)
        pname = PREFIX + name
        try:
            self.pipe.load_lora_weights(_loadable(record.file), adapter_name=pname)
        except Exception as e:  # diffusers raises ValueError/KeyError/RuntimeError for files that do not fit
            if pname in {a for names in self.pipe.get_list_adapters().values() for a in names}:
                self.pipe.delete_adapters(pname)
            raise StudioError(f"Adapter {name!r} could not be loaded into this base model "
                              f"({type(e).__name__}: {str(e)[:200]}).",
                              "Check that it was made for this base model family.") from None
        comps = tuple(c for c, names in self.pipe.get_list_adapters().items() if pname in names)
        info = LoadedAdapter(name, record.size_bytes, self._param_bytes(pname), comps, warning)
        log.info("loaded adapter %s (%d bytes on %s)", name, info.param_bytes, ", ".join(comps))
        return info

    def ensure(self, names: list[str]) -> list[str]:
        """Load what is missing (unfusing first), evict beyond the cap; return the warnings."""
        if len(names) > self.max_loaded:
            raise StudioError(f"The request blends {len(names)} adapters but at most {self.max_loaded} stay loaded.",
                              "Raise max_loaded_adapters or blend fewer adapters.")
        missing = [n for n in names if n not in self.loaded]
        if missing:
            self.model.base_hash  # noqa: B018 - hash the base weights while nothing is fused
            self.unfuse()
            self.active = None  # unknown: loading may change what is active, so apply() sets it again
        for n in missing:
            self.loaded[n] = self._load(n)
        for n in names:
            self.loaded.move_to_end(n)
        self._evict(keep=set(names))
        return [self.loaded[n].warning for n in names if self.loaded[n].warning]

    def _evict(self, keep: set[str]) -> None:
        for n in [n for n in self.loaded if n not in keep][: max(0, len(self.loaded) - self.max_loaded)]:
            self.evict(n)

    def evict(self, name: str) -> None:
        if name not in self.loaded:
            return
        self.unfuse()
        if self.active and any(n == name for n, _, _ in self.active):
            self.active = None
        self.pipe.delete_adapters(PREFIX + name)
        del self.loaded[name]
        log.info("unloaded adapter %s", name)

    def apply(self, loras: list[LoraWeight]) -> bool:
        """Make ``loras`` the active blend; return True if it changed (then it is unfused)."""
        want = tuple((lw.name, float(lw.unet), float(lw.text)) for lw in loras)
        if want == self.active:
            return False
        self.unfuse()
        if want:
            self.pipe.enable_lora()
            weights = [{c: (u if c == "unet" else t) for c in self.loaded[n].components} for n, u, t in want]
            self.pipe.set_adapters([PREFIX + n for n, _, _ in want], adapter_weights=weights)
        elif self.loaded:
            self._deactivate()
        self.active = want
        return True

    def _deactivate(self) -> None:
        """No library adapter: a foreign adapter (the trainer's) is re-activated alone, else LoRA is off."""
        all_names = {a for names in self.pipe.get_list_adapters().values() for a in names}
        foreign = sorted(a for a in all_names if not a.startswith(PREFIX))
        if foreign:
            self.pipe.set_adapters(foreign)
        else:
            self.pipe.disable_lora()


def _loadable(file):
    """The file's path, or its tensors with mixed per-module alphas folded in (diffusers would
    apply one alpha to all of them; see :func:`studio.adapters.kohya.fold_mixed_alphas`).
    Only the alphas and shapes are read unless the file needs folding."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from ..adapters import kohya

    with safe_open(str(file), framework="pt") as f:
        light = {k: f.get_tensor(k) if k.endswith(".alpha") else torch.empty(f.get_slice(k).get_shape(), device="meta")
                 for k in f.keys() if k.endswith((".alpha", ".lora_down.weight"))}
    if len(kohya.alphas(light)) <= 1:
        return str(file)
    return kohya.fold_mixed_alphas(load_file(str(file)))
