import dataclasses

import pytest

from studio.config import GenerateSettings, ServeSettings
from studio.errors import StudioError
from studio.overlay import load_toml, overlay


def test_every_setting_has_help_text():
    for cls in (GenerateSettings, ServeSettings):
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help"


def test_overlay_rejects_unknown_keys():
    with pytest.raises(StudioError, match="Unknown setting 'stepz'"):
        overlay(GenerateSettings(), {"stepz": 3}, "test")


def test_overlay_coerces_strings_and_checks_ranges():
    assert overlay(GenerateSettings(), {"steps": "12"}, "cli").steps == 12
    with pytest.raises(StudioError, match="not a valid int"):
        overlay(GenerateSettings(), {"steps": "many"}, "cli")
    with pytest.raises(StudioError, match="out of range"):
        GenerateSettings(steps=0)


def test_bad_toml_is_reported(tmp_path):
    p = tmp_path / "x.toml"
    p.write_text("steps = [")
    with pytest.raises(StudioError, match="not valid TOML"):
        load_toml(p)
