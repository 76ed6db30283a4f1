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
from helpers.train.checkpoints import (CHECKPOINT_FILES, is_complete_checkpoint, last_complete_checkpoint, prepare_output, remove_partial_files)

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


def test_a_new_training_clears_old_checkpoints_and_resume_keeps_them(tmp_path):
    run = RunDir("r", tmp_path)
    fake_checkpoint(run.checkpoints_dir, 2)
    assert prepare_output(run, resume=True) == run.checkpoints_dir / "checkpoint-2"
    assert prepare_output(run, resume=False) is None
    assert not run.checkpoints_dir.exists()
    assert prepare_output(run, resume=True) is None  # nothing to resume: starts at step 0


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
