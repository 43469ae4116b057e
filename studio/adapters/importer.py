"""`studio import PATH`: a LoRA file from elsewhere enters the library only after every check passed.

Order: caps and header (``validate``), refused kinds by name, values finite and ranks capped,
layout conversion through diffusers (``foreign``), family detection and shape checks against the
meta-device models (``canonical``). Then the canonical kohya file and ``adapter.json`` are written
into a hidden staging folder that is renamed into place, so the library never holds half an import.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..config import ImportSettings
from ..errors import StudioError
from ..paths import Workspace
from ..text import shown
from . import canonical, foreign, validate
from .canonical import FAMILY_LABEL
from .library import Library, check_name
from .structure import unet_config

log = logging.getLogger(__name__)
MAX_META_CHARS = 65_536  # per value; ss_tag_frequency of big datasets is long, megabytes are not kept


@dataclass(frozen=True)
class ImportReport:
    name: str
    family: str
    modules: int
    source_format: str  # kohya | kohya-sgm | diffusers/peft | processor
    path: Path
    warnings: list[str] = field(default_factory=list)

    def format(self) -> str:
        lines = [f"imported {self.name}: {FAMILY_LABEL.get(self.family, self.family)} LoRA, {self.modules} modules "
                 f"({self.source_format} layout) -> {self.path}"]
        return "\n".join(lines + [f"  warning: {shown(w)}" for w in self.warnings])  # tensor names from the file


def source_format(keys) -> str:
    keys = list(keys)
    if any(k.startswith("lora_unet_") and ("input_blocks" in k or "output_blocks" in k or "middle_block" in k)
           for k in keys):
        return "kohya-sgm"
    if any(k.startswith(("lora_unet_", "lora_te")) for k in keys):
        return "kohya"
    if any(".processor." in k or "_lora.down." in k for k in keys):
        return "processor"
    return "diffusers/peft"


def default_name(file: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", file.stem).strip("_-")[:64]
    return stem or "imported"


def import_file(path: Path | str, name: str | None = None, settings: ImportSettings = ImportSettings(),
                ws: Workspace | None = None) -> ImportReport:
    file, lib = Path(path), Library(ws)
    name = check_name(name if name is not None else default_name(file))
    if lib.taken(name):
        raise StudioError(f"An adapter named {name!r} already exists.", "Give it another name (the page's name field; --name on the command line).")
    if not file.is_file():
        raise StudioError(f"{file} is not a file.", "Give the path of a .safetensors LoRA file.")
    sd, metadata = validate.load_tensors(file, settings)
    validate.check_values(file, sd, settings)
    fmt = source_format(sd)
    parts, family = fitted(file, sd, metadata)
    sd = canonical.to_canonical(parts, 2 if family == "sdxl" else 1)
    meta, warnings = _metadata(metadata, name, family, file)
    for c in ("text_encoder", "text_encoder_2"):
        paths = [p for comp, p in parts if comp == c]
        if paths and not any(p.endswith("out_proj") for p in paths):
            warnings.append(f"{c} LoRA without out_proj: diffusers' load_lora_weights cannot read such kohya files "
                            "(it fails to infer their layout)")
    info = {"name": name, "family": family, "source": "imported", "imported_from": file.name[:200],
            "source_format": fmt, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "trigger": meta.get("modelspec.trigger_phrase", "")[:200]}
    out = lib.add(name, sd, meta, info)
    log.info("imported %s as %s (%s, %d modules)", file.name, name, family, len(parts))
    return ImportReport(name, family, len(parts), fmt, out, warnings)


def fitted(file: Path, sd: dict, metadata: dict[str, str]) -> tuple[list, str]:
    """(the LoRA modules of ``sd`` in diffusers' layout, the base family every one of them fits by
    its shapes); a refusal naming ``file`` when the keys are no LoRA layout or a module fits no base."""
    try:
        parts = foreign.parts(sd, unet_config("sdxl"), metadata)
    except foreign.MixedLayout as e:
        raise validate.refuse(file, str(e), "Convert it to one layout (one tool's export) and import that.") from None
    except (ValueError, KeyError, IndexError, AttributeError, RuntimeError) as e:
        raise validate.refuse(file, f"its keys are not a LoRA layout diffusers can read ({str(e)[:200]})") from None
    if not parts:
        raise validate.refuse(file, "it holds no LoRA modules")
    fit = canonical.detect(parts)
    if fit.problems:
        raise validate.refuse(file, f"{len(fit.problems)} of {len(parts)} modules do not fit any base model "
                              f"(closest: {FAMILY_LABEL[fit.family]}; e.g. {fit.problems[0]})",
                              "The file is for another architecture or is damaged.")
    return parts, fit.family


def _metadata(original: dict[str, str], name: str, family: str, file: Path) -> tuple[dict[str, str], list[str]]:
    """The file's own metadata, kept as inert strings; output name/title follow the library name."""
    from . import kohya

    warnings, meta = [], {}
    for k, v in original.items():
        if len(v) > MAX_META_CHARS:
            warnings.append(f"metadata {k[:60]!r} ({len(v)} chars) was dropped: too long")
            continue
        # Kept inert: diffusers would read lora_adapter_metadata next to the kohya alphas and refuse both.
        meta["studio_original_" + k[:200] if k == "lora_adapter_metadata" else k[:200]] = v
    declared = meta.get("ss_base_model_version", "")
    said = "sdxl" if "xl" in declared else "sd2" if "v2" in declared else "sd1" if "v1" in declared else ""
    if said and family != "tiny" and said != family:
        warnings.append(f"the file says base {declared!r}, its shapes fit {FAMILY_LABEL[family]}")
    meta.update({"studio_original_name": meta.get("ss_output_name", file.stem)[:200], "ss_output_name": name,
                 "modelspec.title": name, "ss_base_model_version": kohya.BASE_VERSION[family],
                 "studio_source": "imported"})
    return meta, warnings
