"""Fixtures for the browser tests: one ``studio serve`` and one Chromium page per test module.

A module gets a fresh, empty workspace (``STUDIO_OUTPUTS``); it overrides the ``workspace``
fixture to put something there before the server starts (adapters, an image set).
"""

from pathlib import Path

import pytest

from .studio_page import browser_page, studio_server


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("outputs")


@pytest.fixture(scope="module")
def server(workspace):
    with studio_server(workspace) as url:
        yield url


@pytest.fixture(scope="module")
def page(server):
    with browser_page(server) as pg:
        yield pg
