import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network


@pytest.fixture(scope="session")
def tiny_model():
    """The embedded tiny model on CPU, loaded once per test session."""
    from studio.models.loading import load_model

    return load_model("tiny", device="cpu")


@pytest.fixture(scope="session")
def engine(tiny_model):
    from studio.generate import Engine

    return Engine(tiny_model)


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None):
    import subprocess

    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "studio", *args], cwd=cwd or ROOT,
                          capture_output=True, text=True, env=full_env, timeout=600)
