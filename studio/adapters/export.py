"""`studio export NAME`: a library adapter as a file another tool loads (see README's compatibility table).

kohya: SD 1.x/2.x keys as in the library; SDXL UNet keys renamed to the SGM block names sd-scripts
writes (``lora_unet_input_blocks_4_1_…``). diffusers: PEFT keys (``diffusers_format``). Optional SVD
resize first, then the dtype cast; alphas stay explicit fp32 scalars.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import ExportSettings
from ..errors import StudioError
from ..paths import Workspace, atomic_write_bytes, check_output
from . import diffusers_format, kohya, sdxl_names
from .library import Library
from .resize import ResizeReport, resize
from .structure import Module, family_table, table_of, unet_config

log = logging.getLogger(__name__)
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    dtype: str
    size_bytes: int
    modules: int
    resize: ResizeReport | None = None
    family: str = ""

    @property
    def fits(self) -> str:
        """Which base models the file is for, in words (A1111 and ComfyUI load a LoRA onto any checkpoint
        and quietly skip the layers it lacks: nothing tells the user the file did nothing)."""
        return fits_note(self.family)

    def format_report(self) -> str:
        line = f"wrote {self.path} ({self.format}, {self.dtype}, {self.modules} modules, {self.size_bytes / 1e6:.2f} MB)"
        return (self.resize.format() + "\n" if self.resize else "") + line + (f"\n{self.fits}" if self.fits else "")


def fits_note(family: str) -> str:
    """Which checkpoints an exported file of ``family`` changes ("" when unknown)."""
    from .canonical import FAMILY_LABEL

    if family == "tiny":
        return ("Made on the built-in tiny demo model: it only fits that model. AUTOMATIC1111, ComfyUI and "
                "diffusers open the file, but on an SD 1.5, SD 2.x or SDXL checkpoint it changes nothing - to "
                "use your style there, start the studio on that model (`studio serve --model PATH`) and train it there.")
    label = FAMILY_LABEL.get(family)
    return (f"For {label} checkpoints (and models fine-tuned from them); it does not fit other model families."
            if label else "")


def cast(sd: dict, dtype: str) -> dict:
    return {k: v if k.endswith(".alpha") else v.to(DTYPES[dtype]).contiguous() for k, v in sd.items()}


def to_kohya_sgm(sd: dict, table: dict[str, Module], config: dict) -> dict:
    """SDXL: UNet keys in sd-scripts' SGM block names; text-encoder keys unchanged (lora_te1_/lora_te2_)."""
    blocks = sdxl_names.block_map(config)
    out = {}
    for name, t in sd.items():
        key, _, rest = name.partition(".")
        m = table[key]
        out[f"{sdxl_names.sgm_key(m.path, blocks)}.{rest}" if m.component == "unet" else name] = t
    return out


def convert(sd: dict, metadata: dict[str, str], family: str, s: ExportSettings,
            table: dict[str, Module], config: dict) -> tuple[dict, dict[str, str], ResizeReport | None]:
    """Pure: canonical dict + metadata -> the exported dict + metadata."""
    report = None
    if s.rank or s.keep:
        resized, report = resize(sd, rank=s.rank, keep=s.keep)
        if report.reduced:  # (nothing reduced: the adapter's own tensors and metadata, not an SVD re-factoring)
            sd = resized
            ranks = sorted({int(v.shape[0]) for k, v in sd.items() if k.endswith("lora_down.weight")})
            metadata = {**metadata, "ss_network_dim": str(ranks[-1]),
                        "studio_resized": report.format(per_module=False)}
    sd = cast(sd, s.dtype)
    from .validate import check_finite

    check_finite(sd, f"The {s.dtype} export was not written")  # resize or the cast (fp16 tops out at 65504)
    missing = [k for k in kohya.modules(sd) if k not in table]
    if missing:
        raise StudioError(f"{len(missing)} modules of this adapter do not exist in its base family {family} "
                          f"(e.g. {missing[0]}).", "Re-import the original file.")
    if s.format == "diffusers":
        return (*diffusers_format.to_peft(sd, table, s.fold_alpha), report)
    if family == "sdxl":
        sd = to_kohya_sgm(sd, table, config)
    return sd, metadata, report


def check_target(out: Path | str, ws: Workspace, overwrite: bool = False) -> Path:
    """An explicit ``--out``: a ``.safetensors`` file, by the studio's one output rule
    (:func:`studio.paths.check_output`: never in the library or datasets, never over a link,
    folder or device, an existing file only with ``overwrite``). Returns it as given."""
    return check_output(out, ws, suffixes=(".safetensors",), overwrite=overwrite, what="Export path")


def export(name: str, settings: ExportSettings = ExportSettings(), out: Path | str | None = None,
           ws: Workspace | None = None, model=None, overwrite: bool = False) -> ExportResult:
    """Write the export; default outputs/exports/ (replaced freely: the studio's own folder). An explicit
    ``out`` is checked by :func:`check_target` before any work. ``model`` (a LoadedModel) supplies the
    module table instead of the family's shipped config."""
    from safetensors.torch import save

    lib = Library(ws)
    if out is not None:
        out = check_target(out, lib.ws, overwrite)
    record = lib.get(name)
    if not record.family:
        raise StudioError(f"Adapter {name!r} has no known base family.", "Re-import it so its family is detected.")
    sd, metadata = lib.read(name)
    if model is not None:
        pipe = model.pipe
        tes = [t for t in (pipe.text_encoder, getattr(pipe, "text_encoder_2", None)) if t is not None]
        table, config = table_of(pipe.unet, tes), dict(pipe.unet.config)
    else:
        table, config = family_table(record.family), unet_config(record.family)
    sd, meta, report = convert(sd, metadata, record.family, settings, table, config)
    if out is None:
        suffix = "" if report is None or not report.reduced else (  # (a rank above the adapter's: the same file)
            f"-r{settings.rank}" if settings.rank else f"-keep{settings.keep:g}" if settings.keep else "")
        out = lib.ws.exports / f"{name}-{settings.format}-{settings.dtype}{suffix}.safetensors"
    out = Path(out)
    try:
        atomic_write_bytes(out, save(sd, metadata=meta))
    except StudioError:
        raise
    except OSError as e:
        raise StudioError(f"Could not write {out}: {e.strerror or e}.", "Check the folder's permissions and free "
                          "space, or choose another --out; nothing was written.") from None
    log.info("exported %s to %s", name, out)
    return ExportResult(out, settings.format, settings.dtype, out.stat().st_size, len(kohya.modules(sd))
                        if settings.format == "kohya" else len(sd) // 2, report, record.family)
