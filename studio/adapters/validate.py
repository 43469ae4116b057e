"""Reading an untrusted LoRA file: header checked by hand before safetensors sees it, caps, dtypes,
refused adapter kinds by name, finite values. Pickles only through ``torch.load(weights_only=True)``.

Every refusal is a :class:`StudioError` naming the file and the reason; nothing is written.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import torch

from ..config import ImportSettings
from ..errors import StudioError

MB = 1 << 20
DTYPES = {"F16": 2, "BF16": 2, "F32": 4}
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
# Adapter kinds recognised by their key names; never half-loaded as plain LoRA.
UNSUPPORTED = (
    ("hada_", "LoHa (LyCORIS Hadamard product)"), ("lokr_", "LoKr (LyCORIS Kronecker product)"),
    ("dora_scale", "DoRA"), ("lora_magnitude_vector", "DoRA"), ("ia3_", "IA3"), (".on_input", "IA3"),
    ("lora_mid.", "LoCon with Tucker (lora_mid) convs"), ("oft_", "OFT"), (".a1.weight", "GLoRA"),
    ("b_up.weight", "GLoRA"),
)
# Matched at the end of a key only: ".diff" inside a name is common ("diffusion_model.…").
UNSUPPORTED_SUFFIXES = ((".diff", "full-weight difference (LyCORIS 'full')"),
                        (".diff_b", "full-weight difference (LyCORIS 'full')"))
PAIRS = ((".lora_down.weight", ".lora_up.weight"), (".lora_A.weight", ".lora_B.weight"),
         (".down.weight", ".up.weight"))  # the last: diffusers' processor names (to_q_lora.down.weight, …)


def refuse(file: Path, why: str, fix: str = "Use a plain LoRA/LoCon .safetensors file.") -> StudioError:
    err = StudioError(f"{file.name} was not imported: {why}.", fix)
    err.why = why  # the reason alone: the library lists a damaged entry with it
    return err


def unsupported_kind(keys) -> str | None:
    for k in keys:
        for marker, kind in UNSUPPORTED:
            if marker in k:
                return kind
        for suffix, kind in UNSUPPORTED_SUFFIXES:
            if k.endswith(suffix):
                return kind
    return None


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    """json object hook: a name given twice is refused (parsers disagree on which one wins)."""
    seen: dict = {}
    for k, v in pairs:
        if k in seen:
            raise _Duplicate(k)
        seen[k] = v
    return seen


class _Duplicate(ValueError):
    pass


def _looks_like_pickle(head: bytes) -> bool:
    """A zip (torch.save since 1.6) or a protocol-2+ pickle ('\\x80' + protocol byte)."""
    return head[:4] == b"PK\x03\x04" or (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"))


def read_header(file: Path, s: ImportSettings) -> tuple[dict, dict[str, str], int]:
    """(tensor entries, metadata, data start) of a safetensors file, every field checked."""
    size = file.stat().st_size
    if size > s.max_file_mb * MB:
        raise refuse(file, f"it is {size / MB:.0f} MB, over the {s.max_file_mb} MB limit",
                     "Raise --max-file-mb if you trust the file.")
    with open(file, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise refuse(file, "the file is empty or truncated")
        (n,) = struct.unpack("<Q", head)
        # A pickle's first bytes read as an absurd header length; a real header length may
        # start with 0x80 too (128, 640, …), so the length is tried first.
        if (n > s.max_header_mb * MB or 8 + n > size) and _looks_like_pickle(head):
            raise refuse(file, "it is a pickle (PyTorch .pt/.ckpt), not safetensors, despite its name",
                         "Rename it to .pt to have it read with torch.load(weights_only=True).")
        if n > s.max_header_mb * MB or 8 + n > size:
            raise refuse(file, f"it is not a safetensors file, or only the start of one (read as one, its header "
                         f"would be {n} bytes long; the file has {size})" if 8 + n > size
                         else f"its header is over the {s.max_header_mb} MB limit")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except _Duplicate as e:
        raise refuse(file, f"its header names tensor {str(e)[:80]!r} twice (readers disagree on which one counts)",
                     "The file is damaged or crafted; get it again from its source.") from None
    except (UnicodeDecodeError, ValueError):
        raise refuse(file, "its header is not valid JSON (not a safetensors file)") from None
    except RecursionError:  # e.g. 100,000 nested brackets: Python's parser gives up
        raise refuse(file, "its header is nested too deeply to be a safetensors header") from None
    if not isinstance(header, dict):
        raise refuse(file, "its header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise refuse(file, "its metadata is not a string table")
    _check_entries(file, header, size - 8 - n, s)
    return header, {str(k): v for k, v in metadata.items()}, 8 + n


def _check_entries(file: Path, header: dict, data_size: int, s: ImportSettings) -> None:
    if len(header) > s.max_tensors:
        raise refuse(file, f"it holds {len(header)} tensors, over the {s.max_tensors} limit")
    if not header:
        raise refuse(file, "it holds no tensors")
    spans = []
    for name, e in header.items():
        dtype = e.get("dtype") if isinstance(e, dict) else "?"
        if not isinstance(dtype, str) or dtype not in DTYPES:  # a list here is unhashable: check the type first
            raise refuse(file, f"tensor {name[:80]} has dtype {str(dtype)[:10]} (only F16, BF16 and F32 are accepted)")
        shape, off = e.get("shape"), e.get("data_offsets")
        ok = isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape) and \
            isinstance(off, list) and len(off) == 2 and all(type(o) is int for o in off)  # not bool, not float
        if not ok or off[1] - off[0] != math.prod(shape) * DTYPES[e["dtype"]]:
            raise refuse(file, f"tensor {name[:80]} has a malformed shape or offsets")
        spans.append((off[0], off[1], name))
    end = 0
    for begin, stop, name in sorted(spans):
        if begin != end:
            raise refuse(file, f"tensor {name[:80]} overlaps another or leaves a gap (offset {begin}, expected {end})")
        end = stop
    if end != data_size:
        raise refuse(file, f"its tensors need {end} bytes but the file holds {data_size}")


def load_tensors(file: Path, s: ImportSettings) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors and the metadata of a checked file (safetensors, or a weights-only pickle)."""
    if file.suffix.lower() in PICKLE_SUFFIXES:
        return _load_pickle(file, s), {}
    header, metadata, _ = read_header(file, s)
    kind = unsupported_kind(header)
    if kind:
        raise refuse(file, f"{kind} files are not supported yet", "Export it as a plain LoRA, or use LoRA/LoCon.")
    from safetensors.torch import load_file

    try:
        return load_file(str(file)), metadata
    except Exception as e:  # safetensors' own checks, after ours
        raise refuse(file, f"safetensors cannot read it ({str(e)[:200]})") from None


def _load_pickle(file: Path, s: ImportSettings) -> dict[str, torch.Tensor]:
    if not s.allow_pickle:
        raise refuse(file, "pickle files are switched off (allow_pickle)")
    size = file.stat().st_size
    if size == 0 or size > s.max_file_mb * MB:
        raise refuse(file, "the file is empty" if not size else f"it is over the {s.max_file_mb} MB limit")
    import warnings

    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols are not for the user
            warnings.simplefilter("ignore")
            obj = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError for code-carrying pickles, anything for junk
        raise refuse(file, f"torch.load(weights_only=True) refused it ({str(e).splitlines()[0][:160]}); "
                     "it may carry code", "Ask for a .safetensors version of the file.") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise refuse(file, "it does not hold a flat table of named tensors")
    if len(obj) > s.max_tensors:
        raise refuse(file, f"it holds {len(obj)} tensors, over the {s.max_tensors} limit")
    bad = [k for k, v in obj.items() if v.dtype not in (torch.float16, torch.bfloat16, torch.float32)]
    if bad:
        raise refuse(file, f"tensor {bad[0][:80]} has dtype {obj[bad[0]].dtype} (only F16, BF16 and F32)")
    kind = unsupported_kind(obj)
    if kind:
        raise refuse(file, f"{kind} files are not supported yet", "Export it as a plain LoRA, or use LoRA/LoCon.")
    return obj


def first_nonfinite(sd: dict[str, torch.Tensor]) -> str | None:
    """The first tensor holding NaN or Inf, or None: the one finiteness rule for every adapter
    that enters the library (imports, blends) or leaves it (exports, resized or cast)."""
    return next((name for name, t in sd.items() if not torch.isfinite(t).all()), None)


def check_finite(sd: dict[str, torch.Tensor], what: str) -> None:
    bad = first_nonfinite(sd)
    if bad is not None:
        raise StudioError(f"{what}: tensor {bad[:80]} would hold NaN or Inf values (they turn every image black).",
                          "Use finite weights (no nan/inf, nothing that overflows the precision).")


def check_values(file: Path, sd: dict[str, torch.Tensor], s: ImportSettings) -> None:
    bad = first_nonfinite(sd)
    if bad is not None:
        raise refuse(file, f"tensor {bad[:80]} holds NaN or Inf values", "The file is broken; get it again.")
    for name, t in sd.items():
        if name.endswith(("lora_down.weight", "lora_A.weight", ".down.weight")) and t.ndim:
            if t.shape[0] > s.max_rank:
                raise refuse(file, f"rank {t.shape[0]} (in {name[:80]}) is over the {s.max_rank} limit")
            if t.shape[0] == 0:
                raise refuse(file, f"rank 0 (in {name[:80]}): the module has no LoRA weights")
    check_pairs(file, sd)


def check_pairs(file: Path, sd: dict) -> None:
    """Every down matrix has its up matrix and the other way round."""
    for a, b in PAIRS:
        for have, want in ((a, b), (b, a)):
            for name in sd:
                if name.endswith(have) and name[: -len(have)] + want not in sd:
                    raise refuse(file, f"module {name[: -len(have)][:80]} has only one of its two LoRA matrices "
                                 f"(no {want.lstrip('.')})", "The file is damaged; get it again.")
