"""The Colab flow without Colab: the six notebooks, each in its own kernel and working folder
(as each badge opens its own runtime on Colab), with the stand-in google.colab and Data
Collective client of tests/colab_standin, default RUNS_ROOT and PRESET, smoke parameters,
and CORPUS = "mdc:<id>" (a Common Voice 27-layout archive). The run must land on the
stand-in Drive and be found by every later runtime, with the fake API key in no output.
CORPUS = "fleurs:en_us" (FLEURS-schema Parquet) runs notebooks 01-04, each in such a
runtime: the two that read the corpus (01 prepares it; 04 fetches the dev split for WER
during training), while 05 and 06 read only the run, the same way whatever the corpus (the
mdc flow shows that). Both corpora are built from cv-mini."""
import contextlib
import json
import os
from pathlib import Path

import papermill
import pytest

from conftest import SMOKE_PARAMETERS
from fixtures.colab_corpora import write_fleurs_parquet, write_mdc_archive
from helpers.demo import declared_parameters, notebook_paths
from helpers.files import REPO_ROOT

pytestmark = pytest.mark.notebooks

STANDIN = Path(__file__).resolve().parent / "colab_standin"
FAKE_KEY = "mdc_ColabFlowFakeKey_5f1e0c9a7b3d"
DATASET_ID = "cmfakecv27en00000000000000"
CORPORA = {"mdc": f"mdc:{DATASET_ID}", "fleurs": "fleurs:en_us"}
# The smoke parameters, cut to the fewest clips and steps the notebooks accept: these flows
# test the Colab plumbing (Drive, secrets, fetching, the run found by each runtime); the
# training and scoring themselves are tested by the smoke run (test_notebooks_run.py).
COLAB_SMOKE = {**SMOKE_PARAMETERS, "MAX_TRAIN_CLIPS": 4, "BATCH_SIZE": 4, "MAX_TEST_CLIPS": 2,
               "MAX_STEPS": 1, "EVAL_STEPS": 1, "EVAL_MAX_CLIPS": 1, "PRECISIONS": ["8bit"]}
SMALL = {"train": 4, "dev": 2, "test": 2}  # clips in the stand-in corpora (FLEURS: dev = validation)
# Variables of the test process that would steer the kernels away from the Colab defaults.
CLEARED = ("MDC_API_KEY", "WHISPER_LORA_CORPORA", "WHISPER_LORA_AUDIO_CACHE", "HF_TOKEN")


@contextlib.contextmanager
def environment(**values):
    """os.environ with `values` set (None: removed), restored afterwards; kernels inherit it."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, str(value))
        yield
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)


def new_runtime(folder: Path) -> dict:
    """A fresh "Colab runtime": its own working folder (/content) with the checkout the setup
    cell would clone, its own HOME, and an IPython profile that imports google.colab at start
    (Colab's kernel does). Returns the per-runtime environment."""
    (folder / "home").mkdir(parents=True)
    (folder / "whisper-lora-8bit").symlink_to(REPO_ROOT, target_is_directory=True)
    startup = folder / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-colab.py").write_text("import google.colab  # as Colab's kernel does\n")
    return {"HOME": folder / "home", "IPYTHONDIR": folder / "ipython"}


def run_colab_flow(base: Path, kind: str, notebooks: int = 6) -> dict:
    """Run the first `notebooks` of 01-06, each in its own runtime under the stand-in Colab;
    returns what a test reads."""
    from helpers.model.load import cache_root

    drive, mount = base / "google-drive", base / "content" / "drive"
    drive.mkdir(parents=True)
    shared = {name: None for name in CLEARED}
    shared.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(STANDIN), os.environ.get("PYTHONPATH")])),
        WHISPER_LORA_DRIVE_MOUNT=mount, COLAB_STANDIN_DRIVE=drive,
        COLAB_STANDIN_SECRET_MDC_API_KEY=FAKE_KEY, FAKE_MDC_KEY=FAKE_KEY,
        FAKE_MDC_ARCHIVES=base / "mdc-server", FAKE_MDC_LOG=base / "mdc-downloads.log",
        WHISPER_LORA_FLEURS_URL=base / "fleurs-hub",
        WHISPER_LORA_CACHE=cache_root(),  # the converted tiny.en, as a model cache (not a run)
        PIP_NO_INDEX="1")  # should a requirement be unmet, pip fails instead of installing
    if kind == "mdc":
        write_mdc_archive(base / "mdc-server" / DATASET_ID, counts=SMALL)
    else:
        write_fleurs_parquet(base / "fleurs-hub", counts={"train": 4, "validation": 2, "test": 2})
    parameters = {**COLAB_SMOKE, "CORPUS": CORPORA[kind]}
    executed = []
    for number, notebook in enumerate(notebook_paths()[:notebooks], start=1):
        runtime = base / f"runtime-{number}"
        with environment(**shared, **new_runtime(runtime)):
            output = runtime / "executed" / notebook.name
            output.parent.mkdir()
            accepted = {k: v for k, v in parameters.items() if k in declared_parameters(notebook)}
            papermill.execute_notebook(str(notebook), str(output), parameters=accepted,
                                       cwd=str(runtime), kernel_name="python3",
                                       execution_timeout=600, progress_bar=False)
        executed.append(output)
        (mount / "MyDrive").unlink()  # the runtime is gone; the next one mounts Drive again
    return {"base": base, "drive": drive, "mount": mount, "executed": executed,
            "run": drive / "whisper-lora-8bit" / "runs" / "demo"}


@pytest.fixture(scope="module")
def mdc_flow(tmp_path_factory):
    """The six-runtime Colab flow from a Data Collective archive, shared by this module's tests."""
    return run_colab_flow(tmp_path_factory.mktemp("colab-mdc"), "mdc")


@pytest.fixture(scope="module")
def fleurs_flow(tmp_path_factory):
    """Notebooks 01-04, each in its own Colab runtime, from FLEURS Parquet."""
    return run_colab_flow(tmp_path_factory.mktemp("colab-fleurs"), "fleurs", notebooks=4)


def outputs_text(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "\n".join(json.dumps(cell.get("outputs", [])) for cell in cells)


def assert_clips_lie_in_drive_corpora(result) -> None:
    """The run's 2 test clips lie in corpora/ on Drive (the loaders resolve the stand-in's
    MyDrive link to the folder behind it; on Colab it is a mount)."""
    clips = [json.loads(line)["path"]
             for line in (result["run"] / "test_clips.jsonl").read_text().splitlines()]
    drive_corpora = [result["mount"] / "MyDrive" / "whisper-lora-8bit" / "corpora",
                     result["drive"] / "whisper-lora-8bit" / "corpora"]
    assert len(clips) == 2 and all(any(Path(clip).is_relative_to(folder) for folder in drive_corpora)
                                   for clip in clips)


def check_first_runtime(result, kind: str) -> None:
    """Notebook 01 checked the requirements, mounted Drive, and wrote the run there."""
    assert f'"corpus": "{CORPORA[kind]}"' in (result["run"] / "config.json").read_text()
    first = outputs_text(result["executed"][0])
    assert "requirements: all of requirements-colab.txt satisfied" in first  # checked, on "Colab"
    assert "Mounted at" in first and str(result["mount"] / "MyDrive" / "whisper-lora-8bit" / "runs" / "demo") in first
    for runtime in result["base"].glob("runtime-*"):  # nothing was kept on a runtime's own disk
        assert not (runtime / "runs").exists() and not list((runtime / "home").rglob("*.mp3"))
        assert not list((runtime / "home").rglob("*.wav"))
    assert_clips_lie_in_drive_corpora(result)


def test_six_runtimes_share_one_run_on_drive(mdc_flow):
    run = mdc_flow["run"]
    metrics = (run / "metrics.json").read_text()
    for key in ('"n_test": 2', '"train_steps": 1', '"finetuned_wer"'):
        assert key in metrics
    for name in ("config.json", "test_clips.jsonl", "footprint.json", "lora.json",
                 "adapter/adapter_model.safetensors", "predictions.jsonl"):
        assert (run / name).is_file(), name
    check_first_runtime(mdc_flow, "mdc")
    for executed in mdc_flow["executed"][1:]:
        assert "Mounted at" in outputs_text(executed), executed.name  # each runtime mounts Drive


def test_fleurs_is_prepared_and_trained_on_from_drive(fleurs_flow):
    """01 prepares FLEURS into the run on Drive; 04, in a fresh runtime, fetches its dev split
    (validation) for WER during training onto Drive too, never into the runtime's home."""
    run = fleurs_flow["run"]
    for name in ("config.json", "test_clips.jsonl", "corpus_report.json",
                 "adapter/adapter_model.safetensors"):
        assert (run / name).is_file(), name
    check_first_runtime(fleurs_flow, "fleurs")
    assert '"eval_wer"' in (run / "train_log.json").read_text()  # 04 scored dev clips
    for executed in fleurs_flow["executed"][1:]:
        assert "Mounted at" in outputs_text(executed), executed.name


def test_the_common_voice_archive_is_downloaded_once(mdc_flow):
    assert (mdc_flow["base"] / "mdc-downloads.log").read_text().splitlines() == [DATASET_ID]
    corpora = mdc_flow["drive"] / "whisper-lora-8bit" / "corpora"
    assert sorted(p.name for p in corpora.iterdir()) == ["downloads", f"mdc-{DATASET_ID}"]


@pytest.mark.parametrize("kind", sorted(CORPORA))
def test_the_api_key_is_in_no_output_and_no_file(kind, request):
    result = request.getfixturevalue(f"{kind}_flow")
    needle = FAKE_KEY.encode()
    assert not [p for p in result["executed"] if needle in p.read_bytes()]
    assert not [p for p in result["drive"].rglob("*") if p.is_file() and needle in p.read_bytes()]
