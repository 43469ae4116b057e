"""CLIP tokenizers for SD 1.x / 2.x / XL built offline from the shipped BPE merges.

``configs/clip_bpe_simple_vocab_16e6.txt.gz`` is OpenAI CLIP's BPE merge list (MIT
licence, as shipped by open_clip). The 49,408-token vocabulary is derived from it exactly
as CLIP does: 256 byte symbols, the same with ``</w>``, one token per merge, 2 specials.
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

from transformers import CLIPTokenizer

BPE_FILE = Path(__file__).parent / "configs" / "clip_bpe_simple_vocab_16e6.txt.gz"
N_MERGES = 49152 - 256 - 2


@functools.lru_cache(maxsize=1)
def _vocab_and_merges() -> tuple[dict[str, int], tuple[str, ...]]:
    from .tiny.vocab import _bytes_to_unicode

    lines = gzip.open(BPE_FILE, "rt", encoding="utf-8").read().split("\n")[1:N_MERGES + 1]
    merges = tuple(lines)
    symbols = list(_bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges


def clip_tokenizer(pad_token: str = "<|endoftext|>") -> CLIPTokenizer:
    """SD 1.x / SDXL text encoder 1 pad with ``<|endoftext|>``; OpenCLIP (SD 2, SDXL 2) with ``!``."""
    vocab, merges = _vocab_and_merges()
    tok = CLIPTokenizer(vocab=dict(vocab), merges=[tuple(m.split()) for m in merges], pad_token=pad_token)
    tok.model_max_length = 77
    return tok
