"""Fixtures for the browser tests: one ``studio serve`` and one Chromium page per test module.

A module gets a fresh, empty workspace (``STUDIO_OUTPUTS``); it overrides the ``workspace``
fixture to put something there before the server starts (adapters, an image set).
"""

from pathlib import Path

import pytest

from .studio_page import browser_page, failure_report, studio_server


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing browser test's report carries what the server logged and what the page showed:
    a timeout alone says only that something never appeared."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and rep.when == "call":
        for title, text in failure_report():
            rep.sections.append((title, text))


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
