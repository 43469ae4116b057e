"""Train-tab controls the whole-flow test (``test_flow.py``) does not walk: Stop mid-run still
leaves a usable adapter, and bad settings or a taken name are refused before any job starts.

The image set and an adapter named "shop-style" are put into the workspace before the
server starts (no browser steps needed for them).
"""

import re

import pytest

from .adapters import write_adapter
from .studio_page import fill_run, tab

pytestmark = pytest.mark.e2e

RUN_TIMEOUT_MS = 600_000  # a busy 2-core CI machine


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_model):
    from studio.data.ingest import ingest
    from studio.models.tiny.sample_data import write_style_set
    from studio.paths import Workspace

    root = tmp_path_factory.mktemp("outputs")
    photos = tmp_path_factory.mktemp("photos")
    write_style_set(photos, "stripes", 6, seed=3)
    ingest("shop", [photos], ws=Workspace(root))
    write_adapter(tiny_model, root, "shop-style", seed=0)
    return root


def test_stop_mid_run_leaves_a_usable_adapter(page, workspace):
    from diffusers import StableDiffusionPipeline

    train = tab(page, "Train")
    fill_run(train, "shop-stopped", steps=400, sample_every=0)
    train.get_by_role("button", name="Start training").click()
    page.get_by_text("Training shop-stopped started").wait_for()
    page.locator("#run-status[data-status=running]").wait_for(timeout=RUN_TIMEOUT_MS)
    # any step: the page polls every 2 s, so on a fast machine it may never show step 2 or 3
    page.locator("#run-stats").get_by_text(re.compile(r"step \d+/400")).wait_for(timeout=RUN_TIMEOUT_MS)
    train.get_by_role("button", name="Stop").click()
    page.get_by_text("Stopping shop-stopped").wait_for()
    page.locator("#run-status[data-status=stopped]").wait_for(timeout=RUN_TIMEOUT_MS)
    path = workspace / "adapters" / "shop-stopped" / "shop-stopped.safetensors"
    loaded = StableDiffusionPipeline.lora_state_dict(str(path))  # diffusers' own loader reads it
    state = loaded[0] if isinstance(loaded, tuple) else loaded
    assert any("lora" in k for k in state)


def test_bad_settings_are_refused_before_a_job_starts(page, workspace):
    train = tab(page, "Train")
    train.get_by_label("Adapter name").fill("../escape")
    train.get_by_role("button", name="Start training").click()
    page.get_by_text("is not allowed").first.wait_for()
    runs_before = _count_runs(workspace)
    train.get_by_label("Adapter name").fill("shop-style")  # already in the library
    train.get_by_role("button", name="Start training").click()
    page.get_by_text("already exists").first.wait_for()
    assert _count_runs(workspace) == runs_before


def _count_runs(workspace) -> int:
    runs = workspace / "runs"
    return len(list(runs.iterdir())) if runs.is_dir() else 0
