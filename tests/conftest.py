"""Shared test setup: keep every test offline and quiet."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

# Smoke parameters: every notebook runs for real, on a few clips and steps.
SMOKE_PARAMETERS = {"MAX_TRAIN_CLIPS": 16, "MAX_TEST_CLIPS": 8, "MAX_STEPS": 2,
                    "LOGGING_STEPS": 1, "SAVE_STEPS": 1}


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The six notebooks executed once, in order, each in a fresh kernel, into a temp run dir."""
    from helpers.demo import run_all

    root = tmp_path_factory.mktemp("runs")
    return run_all("smoke", "embedded", dict(SMOKE_PARAMETERS), runs_root=root)
