"""Build a small CLIP BPE vocabulary (vocab.json + merges.txt) from a word list.

The tokenizer is a real ``CLIPTokenizer``: byte-level symbols plus one merge chain per
word, so every listed word encodes to a single token and any other text still encodes
(character by character) instead of failing.
"""

from __future__ import annotations

import json
from pathlib import Path

from .scenes import BACKGROUNDS, COLOURS, OBJECTS, STYLES

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
# Words that appear in captions or in the prompts people type. The style words are in
# the vocabulary (like rare words in CLIP's) but never in a pretraining caption.
EXTRA_WORDS = (
    "a an the on in of and with at by photo picture image product studio style background "
    "object dark light bright soft glowing outline striped pastel neon stripes black gray "
    "grey brown cyan magenta gold silver small large"
).split()


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP reversible byte -> printable unicode map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def words() -> list[str]:
    ws = list(COLOURS) + list(BACKGROUNDS) + list(OBJECTS) + list(STYLES) + EXTRA_WORDS
    return sorted(set(w.lower() for w in ws))


def build(out_dir: Path) -> int:
    """Write vocab.json / merges.txt for ``words()``; return the vocabulary size."""
    symbols = list(_bytes_to_unicode().values())
    vocab: list[str] = symbols + [s + "</w>" for s in symbols]
    merges: list[tuple[str, str]] = []
    seen = set(vocab)
    for word in words():
        chars = [_bytes_to_unicode()[b] for b in word.encode("utf-8")]
        suffix = chars[-1] + "</w>"
        for ch in reversed(chars[:-1]):  # merge right-to-left: one candidate pair per step
            merged = ch + suffix
            if merged not in seen:
                merges.append((ch, suffix))
                vocab.append(merged)
                seen.add(merged)
            suffix = merged
    vocab += [BOS, EOS]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)},
                                                   ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (out_dir / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(vocab)
