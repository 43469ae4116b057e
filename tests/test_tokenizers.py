from pathlib import Path

from studio.models.tiny import scenes, vocab
from studio.models.tokenizers import clip_tokenizer


def test_offline_clip_tokenizer_matches_clip_ids():
    tok = clip_tokenizer()
    # Token ids of OpenAI CLIP ViT-L/14 for this sentence (bos, 8 words, eos).
    assert tok("a photo of an astronaut riding a horse").input_ids == \
        [49406, 320, 1125, 539, 550, 18376, 6765, 320, 4558, 49407]
    assert len(tok) == 49408 and tok.model_max_length == 77


def test_openclip_tokenizer_pads_with_bang():
    assert clip_tokenizer("!").pad_token_id == 0


def test_tiny_vocab_encodes_every_caption_word_as_one_token(tmp_path: Path):
    from transformers import CLIPTokenizer

    vocab.build(tmp_path)
    tok = CLIPTokenizer.from_pretrained(tmp_path)
    for word in vocab.words():
        ids = tok(word, add_special_tokens=False).input_ids
        assert len(ids) == 1, word
    caption = scenes.Scene("mug", "red", "white").caption
    assert len(tok(caption).input_ids) == 2 + len(caption.split())
    # Unknown words still encode (per character), never fail.
    assert len(tok("zebra", add_special_tokens=False).input_ids) == 5
