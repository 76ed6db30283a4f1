"""Shared test setup: keep every test offline and quiet."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Two pytest-xdist workers (and the notebook kernels and commands they start) share two
# cores: with OpenMP's default, a thread that waits spins, and two processes of two threads
# each decoded 6 clips in 34 s where one thread each took 3 s (2 cores, 2026-12-08). Passive
# waiting yields the core instead (3 s side by side, 1.8 s alone). Set before torch loads
# libgomp; the child processes inherit it. Results are the same: only waiting changes.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path

import pytest

FAKE_HF_TOKEN = "hf_SmokeRunFakeToken0123456789abcdefXYZ"  # in the env while the notebooks run
# Smoke parameters: every notebook runs for real, on a few clips and steps.
SMOKE_PARAMETERS = {"MAX_TRAIN_CLIPS": 16, "MAX_TEST_CLIPS": 4, "MAX_STEPS": 2,
                    "LOGGING_STEPS": 1, "SAVE_STEPS": 1,
                    "EVAL_STEPS": 1, "EVAL_MAX_CLIPS": 2, "LONG_FORM_SECONDS": 35}


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The six notebooks executed once, in order, each in a fresh kernel, into a temp run dir."""
    from helpers.demo import run_all

    root = tmp_path_factory.mktemp("runs")
    saved = os.environ.get("HF_TOKEN")
    os.environ["HF_TOKEN"] = FAKE_HF_TOKEN  # the kernels inherit it; no file may record it
    try:
        return run_all("smoke", "embedded", dict(SMOKE_PARAMETERS), runs_root=root)
    finally:
        if saved is None:
            os.environ.pop("HF_TOKEN", None)
        else:
            os.environ["HF_TOKEN"] = saved


@pytest.fixture(scope="session")
def trained_embedded(tmp_path_factory):
    """(RunDir, RunConfig, metrics) of the embedded model (8-bit) trained 2 steps in-process,
    made once per session (tests/fixtures/tiny_runs.py trained_embedded_run)."""
    from fixtures.tiny_runs import trained_embedded_run

    return trained_embedded_run(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def fake_hf_token():
    """The token value the smoke run had in its environment."""
    return FAKE_HF_TOKEN


GPU_ON_CPU_ENV = "WHISPER_LORA_GPU_TESTS_ON_CPU"  # "1": run the gpu tests' bodies on the CPU


TIERS = ("unit", "integration", "notebooks", "benchmarks", "browser", "gpu")  # pyproject.toml
# Session fixtures worth sharing across files: under pytest-xdist (`make test` runs two
# workers), the tests that use one run on the same worker, so the fixture is made once.
SHARED_FIXTURES = ("smoke_run", "trained_embedded")


def tier_of(item) -> str | None:
    """The test's tier: its closest tier marker (a test's own mark wins over its file's)."""
    for mark in item.iter_markers():
        if mark.name in TIERS:
            return mark.name
    return None


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's, which reads the xdist_group marks
def pytest_collection_modifyitems(config, items):
    """Refuse a test without a tier; keep each file (and each shared fixture's users) on one
    xdist worker; skip the gpu tests, saying why, where no CUDA GPU is visible."""
    untiered = [item.nodeid for item in items if tier_of(item) is None]
    if untiered:
        raise pytest.UsageError(f"tests without a tier marker: {untiered[:5]}; start the file with "
                                f"`pytestmark = pytest.mark.<tier>`, one of {TIERS}")
    for item in items:
        shared = [name for name in SHARED_FIXTURES if name in getattr(item, "fixturenames", ())]
        item.add_marker(pytest.mark.xdist_group(shared[0] if shared else item.path.stem))
    marked = [item for item in items if tier_of(item) == "gpu"]
    if not marked or os.environ.get(GPU_ON_CPU_ENV) == "1":
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False); "
                            "python benchmarks/gpu_check.py runs these on one")
    for item in marked:
        item.add_marker(skip)


BROWSER_TESTS = Path(__file__).resolve().parent / "browser"


def pytest_ignore_collect(collection_path, config):
    """Collect tests/browser/ only when it is named on the command line (`make test-browser`:
    `pytest tests/browser`), never when pytest walks tests/ (`make test`): those tests need
    gradio, selenium and Debian's chromium, which `make test` does not install."""
    if collection_path != BROWSER_TESTS:
        return None
    start = Path(config.invocation_params.dir)
    named = [(start / arg.split("::")[0]).resolve() for arg in config.args]
    if any(path == BROWSER_TESTS or BROWSER_TESTS in path.parents for path in named):
        return None
    return True
