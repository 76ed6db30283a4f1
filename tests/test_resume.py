"""Resume: `python -m helpers.train` killed with SIGKILL after a checkpoint resumes from the
last complete checkpoint and ends where an uninterrupted run ends; partial files are cleaned."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fixtures.tiny_runs import prepared_run, tiny_model_dir
from helpers.files import REPO_ROOT
from helpers.run import RunDir
from helpers.train.checkpoints import (CHECKPOINT_FILES, checkpoint_identity, is_complete_checkpoint, last_complete_checkpoint, prepare_output, remove_partial_files)

pytestmark = pytest.mark.integration

STEPS, SAVE_EVERY = 6, 2


def fake_checkpoint(folder: Path, step: int, files=CHECKPOINT_FILES, state=None) -> Path:
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    for name in files:
        (path / name).write_text("x")
    if "trainer_state.json" in files:
        (path / "trainer_state.json").write_text(state if state is not None else
                                                 json.dumps({"global_step": step}))
    return path


def test_only_complete_checkpoints_are_trusted_and_partial_files_removed(tmp_path):
    run = RunDir("r", tmp_path)
    folder = run.checkpoints_dir
    complete = fake_checkpoint(folder, 4)
    fake_checkpoint(folder, 2)
    no_optimizer = fake_checkpoint(folder, 6, [f for f in CHECKPOINT_FILES if f != "optimizer.pt"])
    cut_short = fake_checkpoint(folder, 8, state='{"global_st')
    wrong_step = fake_checkpoint(folder, 10, state=json.dumps({"global_step": 9}))
    (folder / "checkpoint-12").mkdir()  # killed right after mkdir
    assert is_complete_checkpoint(complete)
    assert not any(map(is_complete_checkpoint, (no_optimizer, cut_short, wrong_step)))
    assert last_complete_checkpoint(folder) == complete
    (run.path / ".adapter-k2j3").mkdir()  # save_adapter's staging folder, writer killed
    (run.path / ".metrics.json-x1y2").write_text("{")  # write_text_atomic's temp file
    (run.path / ".ipynb_checkpoints").mkdir()  # not ours: kept
    (run.path / ".adapter_best-old").mkdir()  # killed between the two renames of a replacement
    (run.path / ".adapter_best-old" / "adapter_model.safetensors").write_text("w")
    removed = remove_partial_files(run)
    assert sorted(removed) == sorted(["checkpoints/checkpoint-6", "checkpoints/checkpoint-8",
                                      "checkpoints/checkpoint-10", "checkpoints/checkpoint-12",
                                      ".adapter-k2j3", ".metrics.json-x1y2"])
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint-2", "checkpoint-4"]
    assert (run.path / ".ipynb_checkpoints").is_dir()
    assert (run.path / "adapter_best" / "adapter_model.safetensors").is_file()  # put back


def test_a_new_training_clears_old_checkpoints_and_resume_keeps_them(tmp_path, capsys):
    run = RunDir("r", tmp_path)
    fake_checkpoint(run.checkpoints_dir, 2)
    assert prepare_output(run, resume=True) == run.checkpoints_dir / "checkpoint-2"
    assert prepare_output(run, resume="auto") == run.checkpoints_dir / "checkpoint-2"
    assert prepare_output(run, resume=False) is None
    assert "RESUME = False: removed checkpoint-2 from" in capsys.readouterr().out  # says what
    assert not run.checkpoints_dir.exists()
    assert prepare_output(run, resume=True) is None  # nothing to resume: starts at step 0
    with pytest.raises(ValueError, match="RESUME must be 'auto', True or False"):
        prepare_output(run, resume="yes")


def identified_checkpoint(run: RunDir, config, step: int) -> Path:
    """A fake complete checkpoint whose trainer_state.json keeps `config`'s training identity,
    as RunIdentity makes the Trainer write it."""
    from helpers.config import TRAINING_SETTINGS, settings_of

    state = {"global_step": step, "stateful_callbacks": {"RunIdentity": {
        "args": {"settings": settings_of(config, TRAINING_SETTINGS)}, "attributes": {"train_seconds": 9.5}}}}
    return fake_checkpoint(run.checkpoints_dir, step, state=json.dumps(state))


@pytest.mark.unit
def test_auto_resume_continues_only_the_same_training(tmp_path, capsys):
    from dataclasses import replace

    from helpers.config import start_run

    run, config = start_run("r", "embedded", tmp_path, max_steps=30)
    checkpoint = identified_checkpoint(run, config, 15)
    assert prepare_output(run, "auto", config) == checkpoint
    assert "resuming from checkpoint-15 (" in capsys.readouterr().out
    assert prepare_output(run, "auto", replace(config, max_steps=60, logging_steps=1)) == checkpoint
    assert "45 steps to go, to step 60" in capsys.readouterr().out  # raising MAX_STEPS continues
    identified_checkpoint(run, config, 30)
    prepare_output(run, "auto", config)
    assert "already at MAX_STEPS = 30, nothing to train; raise MAX_STEPS" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"checkpoint-30 is of another training \(learning_rate "
                                         r"0.001 → 0.0005\)\. RESUME = 'auto' continues only the same "
                                         r"training.*set RESUME = False"):
        prepare_output(run, "auto", replace(config, learning_rate=5e-4))
    with pytest.raises(ValueError, match="Notebook 01 has prepared the data again"):
        prepare_output(run, "auto", replace(config, run_id="another-preparation"))
    assert is_complete_checkpoint(run.checkpoints_dir / "checkpoint-30")  # refused, never deleted
    fake_checkpoint(run.checkpoints_dir, 45)  # written before checkpoints kept their training
    with pytest.raises(ValueError, match="records no run id"):
        prepare_output(run, "auto", config)


@pytest.fixture
def drive_run(tmp_path, monkeypatch):
    """A run on a (stand-in) Drive mount with its runtime's local disk beside it."""
    monkeypatch.setenv("WHISPER_LORA_DRIVE_MOUNT", str(tmp_path / "drive"))
    monkeypatch.setenv("WHISPER_LORA_LOCAL_DISK", str(tmp_path / "content"))
    (tmp_path / "drive" / "MyDrive").mkdir(parents=True)
    return RunDir("r", tmp_path / "drive" / "MyDrive" / "runs")


def files_on_drive(run: RunDir) -> dict[str, int]:
    """{path: inode} of the files under the run's checkpoints/ on Drive."""
    return {str(p.relative_to(run.path)): p.stat().st_ino for p in run.checkpoints_dir.rglob("*") if p.is_file()}


@pytest.mark.unit
def test_the_latest_checkpoint_is_kept_on_drive_in_two_slots_overwritten_in_place(drive_run, capsys):
    """Checkpoints are written on the runtime's disk; Drive gets each new one in the older of
    two slots, overwritten in place (the same files: nothing deleted, so nothing in Drive's
    trash); a fresh runtime restores the newest; a copy cut short leaves the other slot."""
    from helpers.train.checkpoints import (keep_on_drive, restore_from_drive, slot_manifest,
                                           training_checkpoints_dir)

    local = training_checkpoints_dir(drive_run)
    assert local.parts[-3:] == ("whisper-lora-work", "checkpoints", "r")
    keep_on_drive(fake_checkpoint(local, 1), drive_run)
    keep_on_drive(fake_checkpoint(local, 2), drive_run)
    first = files_on_drive(drive_run)
    for step in (3, 4, 5):
        keep_on_drive(fake_checkpoint(local, step), drive_run)
    assert files_on_drive(drive_run) == first  # the same files, written over
    slots = {slot: slot_manifest(drive_run.checkpoints_dir / slot)["step"] for slot in ("latest-a", "latest-b")}
    assert sorted(slots.values()) == [4, 5]
    (drive_run.checkpoints_dir / "latest-a" / "slot.json").write_text("{}")  # a copy cut short
    shutil.rmtree(local.parent)  # a new runtime: an empty disk
    restored = restore_from_drive(drive_run, local)
    assert restored.name == f"checkpoint-{slots['latest-b']}" and is_complete_checkpoint(restored)
    assert prepare_output(drive_run, resume=False) is None
    out = capsys.readouterr().out
    assert "the copies on Drive (latest-b (step" in out and "marked stale" in out
    assert files_on_drive(drive_run) == first  # even starting over deletes nothing on Drive
    assert restore_from_drive(drive_run, local) is None  # stale slots are never restored


def train_command(run: RunDir, *extra: str) -> list[str]:
    return [sys.executable, "-m", "helpers.train", "--config", str(run.path / "config.json"), *extra]


def script_env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}


def finish(command: list[str]) -> dict:
    """Run the script to the end; returns the metrics it prints (last stdout line)."""
    done = subprocess.run(command, capture_output=True, text=True, env=script_env(), cwd=REPO_ROOT,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def kill_after_first_checkpoint(run: RunDir) -> None:
    """Start training, wait for checkpoint-2 to be complete, SIGKILL it during step 3."""
    process = subprocess.Popen(train_command(run), env=script_env(), cwd=REPO_ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = run.checkpoints_dir / f"checkpoint-{SAVE_EVERY}"
    deadline = time.monotonic() + 240
    while not is_complete_checkpoint(first):
        assert process.poll() is None, "training ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.05)
    time.sleep(0.3)  # into the next step: between checkpoints
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two identical runs of a tiny random Whisper in 8-bit: one to kill, one left alone."""
    root = tmp_path_factory.mktemp("resume")
    model = tiny_model_dir(root / "tiny-whisper")
    settings = dict(model=str(model), precision="8bit", batch_size=2, max_steps=STEPS,
                    save_steps=SAVE_EVERY, logging_steps=1, warmup_steps=2,
                    lr_scheduler="linear", learning_rate=1e-2, eval_steps=None)
    killed, _ = prepared_run(root, "killed", train_clips=8, **settings)
    shutil.copytree(killed.path, root / "whole", ignore=shutil.ignore_patterns("checkpoints"))
    return killed, RunDir("whole", root)


def test_killed_training_resumes_and_ends_where_an_uninterrupted_run_ends(runs):
    killed, whole = runs
    reference = finish(train_command(whole))
    kill_after_first_checkpoint(killed)
    # A checkpoint the Trainer was writing when killed: no trainer_state.json yet.
    partial = killed.checkpoints_dir / "checkpoint-4"
    if not is_complete_checkpoint(partial):
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(killed.checkpoints_dir / "checkpoint-2", partial,
                        ignore=shutil.ignore_patterns("trainer_state.json", "optimizer.pt"))
    (killed.path / ".adapter-zz9").mkdir()
    resumed = finish(train_command(killed, "--resume"))

    assert resumed["resumed_from_step"] in (2, 4) and reference["resumed_from_step"] == 0
    assert resumed["train_steps"] == reference["train_steps"] == STEPS
    assert resumed["final_loss"] == pytest.approx(reference["final_loss"], rel=0.01)
    log, reference_log = (r.read_json("train_log.json", "04") for r in (killed, whole))
    assert [e["step"] for e in log] == [e["step"] for e in reference_log] == list(range(1, STEPS + 1))
    assert [e["learning_rate"] for e in log] == pytest.approx([e["learning_rate"] for e in reference_log])
    weights, reference_weights = (load_file(str(r.adapter_dir / "adapter_model.safetensors"))
                                  for r in (killed, whole))
    for name, tensor in weights.items():
        assert torch.allclose(tensor, reference_weights[name], atol=2e-3, rtol=0.05), name
    assert all(is_complete_checkpoint(p) for p in killed.checkpoints_dir.iterdir())
    assert not [p.name for p in killed.path.rglob(".*")]  # no staging leftovers anywhere
    # Raising MAX_STEPS on the finished run continues from its last checkpoint (step 6).
    before = checkpoint_identity(whole.checkpoints_dir / f"checkpoint-{STEPS}")["attributes"]["train_seconds"]
    longer = finish(train_command(whole, "--resume", "--set", f"max_steps={STEPS + 2}"))
    assert (longer["resumed_from_step"], longer["train_steps"]) == (STEPS, STEPS + 2)
    assert longer["train_seconds"] > before > 0  # the earlier session's time counts
