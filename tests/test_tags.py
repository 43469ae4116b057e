"""A1111 prompt tags and adapter specs: pure parsing, no model."""

import pytest

from studio.errors import StudioError
from studio.generate.tags import LoraWeight, parse, parse_spec

KNOWN = ["neon", "pastel", "ink-2"]


def test_tags_are_removed_and_returned_in_order():
    clean, loras = parse("a red mug <lora:neon:0.8>, on white <lora:pastel:0.5:0.25> <LORA:ink-2>", KNOWN)
    assert clean == "a red mug, on white"
    assert loras == [LoraWeight("neon", 0.8), LoraWeight("pastel", 0.5, 0.25), LoraWeight("ink-2", 1.0)]
    assert loras[1].text == 0.25 and loras[0].text == 0.8
    assert parse("no tags here", KNOWN) == ("no tags here", [])


def test_unknown_name_lists_known_adapters():
    with pytest.raises(StudioError, match="No adapter named 'gold'.*ink-2, neon, pastel"):
        parse("x <lora:gold:1>", KNOWN)


@pytest.mark.parametrize("prompt, message", [
    ("x <lora:>", "names no adapter"),
    ("x <lora::1>", "names no adapter"),
    ("x <lora:neon:x>", "'x' is not a number"),
    ("x <lora:neon:4.5>", "outside -4…4"),
    ("x <lora:neon:1:-7>", "outside -4…4"),
    ("x <lora:neon:nan>", "outside -4…4"),
    ("x <lora:neon:1:1:1>", "too many"),
    ("x <lora:neon:1", "not closed"),
    ("<lora:neon:1> <lora:neon:0.5>", "named twice"),
])
def test_malformed_tags_are_clear_errors(prompt, message):
    with pytest.raises(StudioError, match=message):
        parse(prompt, KNOWN)


def test_spec_form_used_by_the_cli():
    assert parse_spec("neon") == LoraWeight("neon", 1.0, None)
    assert parse_spec("neon:-4") == LoraWeight("neon", -4.0)
    assert parse_spec(" neon : 0.5 : 0 ") == LoraWeight("neon", 0.5, 0.0)
    assert LoraWeight("neon", 0.5, 0.0).label == "neon 0.5/0" and LoraWeight("neon", 1).label == "neon 1"
