"""The Colab flow without Colab: the six notebooks, each in its own kernel and working folder
(as each badge opens its own runtime on Colab), with the stand-in google.colab and Data
Collective client of tests/colab_standin, default RUN_NAME, RUNS_ROOT and PRESET (02-06 find
the run notebook 01 started), smoke parameters, and CORPUS = "mdc:<id>" (a Common Voice
27-layout archive). Each runtime has its own local disk at the same path (emptied between
runtimes, as a new VM's /content would be) and shares only the stand-in Drive.

In the mdc flow notebook 04 is killed with SIGKILL (its kernel: the runtime is gone) once its
first checkpoint is on Drive, then run again in a new runtime with the same parameters and no
RESUME setting: it must say `resuming from checkpoint-1`, train only step 2 and end at
MAX_STEPS; 05 and 06 then run on. The run must land on the stand-in Drive and be found by
every later runtime, with the fake API key in no output. CORPUS = "fleurs:en_us"
(FLEURS-schema Parquet) runs notebooks 01-04, each in such a runtime: the two that read the
corpus (01 prepares it; 04 fetches the dev split for WER during training), while 05 and 06
read only the run, the same way whatever the corpus (the mdc flow shows that). Both corpora
are built from cv-mini."""
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import papermill
import psutil
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
# test the Colab plumbing (Drive, secrets, fetching, the run found by each runtime, resume);
# the training and scoring themselves, and 05/06's long recording, are tested by the smoke
# run (test_notebooks_run.py).
COLAB_SMOKE = {**SMOKE_PARAMETERS, "MAX_TRAIN_CLIPS": 4, "BATCH_SIZE": 4, "MAX_TEST_CLIPS": 2,
               "MAX_STEPS": 1, "EVAL_STEPS": 1, "EVAL_MAX_CLIPS": 1, "PRECISIONS": ["8bit"],
               "LONG_FORM_SECONDS": 0}
SMALL = {"train": 4, "dev": 2, "test": 2}  # clips in the stand-in corpora (FLEURS: dev = validation)
# Variables of the test process that would steer the kernels away from the Colab defaults.
CLEARED = ("MDC_API_KEY", "WHISPER_LORA_CORPORA", "WHISPER_LORA_AUDIO_CACHE", "HF_TOKEN")
RUN = ("whisper-lora-8bit", "runs", "embedded")  # the run on Drive: RUN_NAME None = the preset's name
CELL_TIMEOUT = 1800  # seconds a cell may run: the smoke run's (helpers.demo) limit; a shared 2-core machine needs it


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


def end_runtime(base: Path, runtime: Path) -> None:
    """The runtime is gone: its local disk (the same path for every runtime, as /content is)
    moves into the runtime's folder for the tests to read, and no Drive mount is left."""
    disk = base / "content" / "whisper-lora-work"
    if disk.exists():
        disk.rename(runtime / "local-disk-left")
    link = base / "content" / "drive" / "MyDrive"
    if link.is_symlink():
        link.unlink()


def kill_04_after_first_checkpoint(notebook: Path, runtime: Path, parameters: dict, run: Path) -> None:
    """Run notebook 04 as papermill would, and SIGKILL its kernel (and papermill) as soon as its
    first checkpoint is complete on Drive: a Colab runtime that disconnects mid-training."""
    output = runtime / "executed" / notebook.name
    process = subprocess.Popen(
        [sys.executable, "-m", "papermill", str(notebook), str(output), "--cwd", str(runtime),
         "-k", "python3", "--no-progress-bar", "-y", json.dumps(parameters)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + CELL_TIMEOUT
    while not any(slot_step(path) == 1 for path in (run / "checkpoints").glob("latest-*/slot.json")):
        assert process.poll() is None, "notebook 04 ended before its first checkpoint reached Drive"
        assert time.monotonic() < deadline, f"no checkpoint on Drive within {CELL_TIMEOUT} s"
        time.sleep(0.05)
    for child in psutil.Process(process.pid).children(recursive=True):
        child.kill()  # the kernel runs in its own session: kill -9 it first
    process.kill()
    process.wait()


def slot_step(manifest: Path) -> int | None:
    """The step a Drive slot's manifest records, or None while it is being written."""
    try:
        return json.loads(manifest.read_text()).get("step")
    except (OSError, ValueError):
        return None


def run_colab_flow(base: Path, kind: str, notebooks: int = 6, kill_04: bool = False) -> dict:
    """Run the first `notebooks` of 01-06, each in its own runtime under the stand-in Colab
    (with kill_04, notebook 04 twice: killed after its first checkpoint, then again);
    returns what a test reads."""
    from helpers.model.load import cache_root

    drive, mount = base / "google-drive", base / "content" / "drive"
    drive.mkdir(parents=True)
    shared = {name: None for name in CLEARED}
    shared.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(STANDIN), os.environ.get("PYTHONPATH")])),
        WHISPER_LORA_DRIVE_MOUNT=mount, WHISPER_LORA_LOCAL_DISK=base / "content",
        COLAB_STANDIN_DRIVE=drive, COLAB_STANDIN_LOG=base / "colab.log",
        COLAB_STANDIN_SECRET_MDC_API_KEY=FAKE_KEY, FAKE_MDC_KEY=FAKE_KEY,
        FAKE_MDC_ARCHIVES=base / "mdc-server", FAKE_MDC_LOG=base / "mdc-downloads.log",
        WHISPER_LORA_FLEURS_URL=base / "fleurs-hub",
        WHISPER_LORA_CACHE=cache_root(),  # the converted tiny.en, as a model cache (not a run)
        PIP_NO_INDEX="1")  # should a requirement be unmet, pip fails instead of installing
    if kind == "mdc":
        write_mdc_archive(base / "mdc-server" / DATASET_ID, counts=SMALL)
    else:
        write_fleurs_parquet(base / "fleurs-hub", counts={"train": 4, "validation": 2, "test": 2})
    steps = 2 if kill_04 else 1  # killed after step 1, WER measured once, at the last step
    parameters = {**COLAB_SMOKE, "CORPUS": CORPORA[kind], "MAX_STEPS": steps, "EVAL_STEPS": steps}
    run, executed = drive.joinpath(*RUN), []
    for number, notebook in enumerate(notebook_paths()[:notebooks], start=1):
        accepted = {k: v for k, v in parameters.items() if k in declared_parameters(notebook)}
        if kill_04 and number == 4:
            runtime = base / "runtime-4-killed"
            with environment(**shared, **new_runtime(runtime)):
                (runtime / "executed").mkdir()
                kill_04_after_first_checkpoint(notebook, runtime, accepted, run)
            end_runtime(base, runtime)
        runtime = base / f"runtime-{number}"
        with environment(**shared, **new_runtime(runtime)):
            output = runtime / "executed" / notebook.name
            output.parent.mkdir()
            papermill.execute_notebook(str(notebook), str(output), parameters=accepted,
                                       cwd=str(runtime), kernel_name="python3",
                                       execution_timeout=CELL_TIMEOUT, progress_bar=False)
        executed.append(output)
        assert not (mount / "MyDrive").exists(), f"{notebook.name} left Drive mounted"
        end_runtime(base, runtime)
    return {"base": base, "drive": drive, "mount": mount, "executed": executed, "run": run}


@pytest.fixture(scope="module")
def mdc_flow(tmp_path_factory):
    """The Colab flow from a Data Collective archive, one runtime per notebook and 04 killed
    once, shared by this module's tests."""
    return run_colab_flow(tmp_path_factory.mktemp("colab-mdc"), "mdc", kill_04=True)


@pytest.fixture(scope="module")
def fleurs_flow(tmp_path_factory):
    """Notebooks 01-04, each in its own Colab runtime, from FLEURS Parquet."""
    return run_colab_flow(tmp_path_factory.mktemp("colab-fleurs"), "fleurs", notebooks=4)


def outputs_text(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "\n".join(json.dumps(cell.get("outputs", [])) for cell in cells)


def printed(path: Path) -> str:
    """What a notebook's cells printed (stream outputs), as one text."""
    cells = json.loads(path.read_text())["cells"]
    return "".join("".join(out.get("text", "")) for cell in cells for out in cell.get("outputs", [])
                   if out.get("output_type") == "stream")


def assert_clips_lie_on_the_local_disk(result) -> None:
    """The run's 2 test clips lie on the runtimes' local disk (the same path in each), not on
    Drive: each runtime that needs them puts them there again."""
    clips = [json.loads(line)["path"]
             for line in (result["run"] / "test_clips.jsonl").read_text().splitlines()]
    local = result["base"] / "content" / "whisper-lora-work" / "corpora"
    assert len(clips) == 2 and all(Path(clip).is_relative_to(local) for clip in clips)


def check_first_runtime(result, kind: str) -> None:
    """Notebook 01 asked for Drive and the secrets before the requirements, mounted Drive and
    wrote the run there; nothing but the local disk's corpora was kept on a runtime."""
    assert f'"corpus": "{CORPORA[kind]}"' in (result["run"] / "config.json").read_text()
    first = printed(result["executed"][0])
    assert first.index("Google Drive:") < first.index("Colab secrets: MDC_API_KEY") < \
        first.index("requirements: all of requirements-colab.txt satisfied")  # prompts first
    assert "Mounted at" in first and str(result["mount"] / "MyDrive" / "whisper-lora-8bit" / "runs" / "embedded") in first
    for runtime in result["base"].glob("runtime-*"):  # nothing was kept in a runtime's home
        assert not (runtime / "runs").exists() and not list((runtime / "home").rglob("*.mp3"))
        assert not list((runtime / "home").rglob("*.wav"))
    assert_clips_lie_on_the_local_disk(result)


def test_six_runtimes_share_one_run_on_drive(mdc_flow):
    run = mdc_flow["run"]
    metrics = (run / "metrics.json").read_text()
    for key in ('"n_test": 2', '"train_steps": 2', '"finetuned_wer"'):
        assert key in metrics
    for name in ("config.json", "test_clips.jsonl", "footprint.json", "lora.json",
                 "adapter/adapter_model.safetensors", "predictions.jsonl"):
        assert (run / name).is_file(), name
    check_first_runtime(mdc_flow, "mdc")
    for executed in mdc_flow["executed"][1:]:
        assert "Mounted at" in outputs_text(executed), executed.name  # each runtime mounts Drive


def test_04_killed_after_its_first_checkpoint_resumes_in_a_new_runtime(mdc_flow):
    """The issue's "done when": killed (SIGKILL) after checkpoint-1, run again in a new runtime
    with the same parameters and no RESUME setting, 04 resumes, trains step 2 only, and ends
    at MAX_STEPS = 2."""
    again = printed(mdc_flow["executed"][3])
    assert "checkpoint-1 restored from Google Drive" in again
    assert "resuming from checkpoint-1 (" in again and "1 step to go, to step 2" in again
    assert "step 2/2: loss" in again and "step 1/2" not in again  # only the remaining step
    metrics = json.loads((mdc_flow["run"] / "metrics.json").read_text())
    assert metrics["train_steps"] == 2 and metrics["resumed_from_step"] == 1
    log = json.loads((mdc_flow["run"] / "train_log.json").read_text())
    assert [entry["step"] for entry in log] == [1, 2]
    killed_disk = mdc_flow["base"] / "runtime-4-killed" / "local-disk-left" / "checkpoints" / "embedded"
    assert (killed_disk / "checkpoint-1").is_dir()  # written on the runtime's disk first


def test_checkpoints_on_drive_are_two_slots_overwritten_in_place(mdc_flow):
    """Drive holds the latest complete checkpoint in one of two slots, written over in place:
    no checkpoint-N folder was ever made (or deleted) there, so nothing went to Drive's trash."""
    checkpoints = mdc_flow["run"] / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["latest-a", "latest-b"]
    steps = sorted(slot_step(checkpoints / slot / "slot.json") for slot in ("latest-a", "latest-b"))
    assert steps == [1, 2]  # checkpoint-1 (the killed runtime) and checkpoint-2 (the resumed one)


def test_each_notebook_ends_with_its_marker_and_a_flushed_drive(mdc_flow):
    run = mdc_flow["run"]
    run_id = json.loads((run / "config.json").read_text())["run_id"]
    for stage in ("01", "02", "03", "04", "05", "06"):
        marker = json.loads((run / "stages" / f"{stage}.json").read_text())
        assert marker["run_id"] == run_id and marker["stage"] == stage
    assert json.loads((run / "stages" / "05.json").read_text())["adapter_sha256"] == \
        json.loads((run / "stages" / "04.json").read_text())["sha256"]["adapter/adapter_model.safetensors"]
    # six finished runtimes flushed and unmounted Drive; the killed one never got there
    assert (mdc_flow["base"] / "colab.log").read_text().splitlines() == ["flush_and_unmount"] * 6


def test_fleurs_is_prepared_and_trained_on_from_drive(fleurs_flow):
    """01 prepares FLEURS into the run on Drive; 04, in a fresh runtime, fetches its dev split
    (validation) for WER during training onto its own disk, never into the runtime's home."""
    run = fleurs_flow["run"]
    for name in ("config.json", "test_clips.jsonl", "corpus_report.json",
                 "adapter/adapter_model.safetensors"):
        assert (run / name).is_file(), name
    check_first_runtime(fleurs_flow, "fleurs")
    assert '"eval_wer"' in (run / "train_log.json").read_text()  # 04 scored dev clips
    for executed in fleurs_flow["executed"][1:]:
        assert "Mounted at" in outputs_text(executed), executed.name


def test_the_common_voice_archive_stays_on_drive_and_is_unpacked_per_runtime(mdc_flow):
    """Downloaded once, kept on Drive as one file; 01, 02 and 05 (the runtimes that read clips)
    each unpacked it onto their own disk; Drive holds no unpacked clip."""
    assert (mdc_flow["base"] / "mdc-downloads.log").read_text().splitlines() == [DATASET_ID]
    corpora = mdc_flow["drive"] / "whisper-lora-8bit" / "corpora"
    assert [p.relative_to(corpora).parts[:2] for p in corpora.rglob("*") if p.is_file()] == \
        [("downloads", f"mdc-{DATASET_ID}")]
    assert not list(mdc_flow["drive"].rglob("*.mp3"))
    unpacked = {runtime.name for runtime in mdc_flow["base"].glob("runtime-*")
                if list(runtime.glob(f"local-disk-left/corpora/mdc-{DATASET_ID}/**/clips/*.mp3"))}
    assert {"runtime-1", "runtime-2", "runtime-5"} <= unpacked


@pytest.mark.parametrize("kind", sorted(CORPORA))
def test_the_api_key_is_in_no_output_and_no_file(kind, request):
    result = request.getfixturevalue(f"{kind}_flow")
    needle = FAKE_KEY.encode()
    assert not [p for p in result["executed"] if needle in p.read_bytes()]
    assert not [p for p in result["drive"].rglob("*") if p.is_file() and needle in p.read_bytes()]
