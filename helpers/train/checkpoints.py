"""What training writes into a run, and what a resume may trust.

With a PEFT model the Trainer's checkpoints hold only the adapter (plus optimizer,
scheduler and RNG state), never the base weights. The Trainer writes `checkpoint-N/` file
by file, so a process killed while saving leaves a partial folder: only checkpoints whose
every file is present and whose `trainer_state.json` parses are trusted
(`is_complete_checkpoint`); the others, and the staging copies of atomic writes, are
removed before training starts (`prepare_output`). Only rank 0 writes files.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from helpers.run import RunDir

CHECKPOINT_FILES = ("trainer_state.json", "adapter_model.safetensors", "adapter_config.json",
                    "optimizer.pt", "scheduler.pt")  # what a resumable checkpoint must hold


CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")


# ---------------------------------------------------------------- checkpoints and resume


def is_complete_checkpoint(path: str | Path) -> bool:
    """True when `path` is a checkpoint-N folder with every CHECKPOINT_FILES file present,
    a trainer_state.json that parses and whose global_step is N."""
    path = Path(path)
    match = CHECKPOINT_NAME.match(path.name)
    try:
        if not match or not all((path / name).is_file() for name in CHECKPOINT_FILES):
            return False
        state = json.loads((path / "trainer_state.json").read_text())
    except (OSError, ValueError):  # vanished while being read, or cut short
        return False
    return state.get("global_step") == int(match.group(1))


def checkpoints(checkpoints_dir: str | Path) -> list[Path]:
    """The checkpoint-N folders in `checkpoints_dir`, by increasing N."""
    folder = Path(checkpoints_dir)
    found = [p for p in folder.iterdir() if CHECKPOINT_NAME.match(p.name)] if folder.is_dir() else []
    return sorted(found, key=lambda p: int(CHECKPOINT_NAME.match(p.name).group(1)))


def last_complete_checkpoint(checkpoints_dir: str | Path) -> Path | None:
    """The highest-step complete checkpoint (see is_complete_checkpoint), or None."""
    complete = [p for p in checkpoints(checkpoints_dir) if is_complete_checkpoint(p)]
    return complete[-1] if complete else None


def remove_partial_files(run: RunDir) -> list[str]:
    """Delete what a killed writer can leave: incomplete checkpoint-N folders and the hidden
    staging copies of atomic writes (.adapter-*, .metrics.json-*, ...). Returns their names."""
    removed = []
    for name in ("adapter", BEST_ADAPTER):  # killed between the two renames of a replacement
        old = run.path / f".{name}-old"
        if old.is_dir() and not (run.path / name).exists():
            old.rename(run.path / name)
    for path in checkpoints(run.checkpoints_dir):
        if not is_complete_checkpoint(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(f"checkpoints/{path.name}")
    for path in run.path.iterdir():
        if any(path.name.startswith(f".{name}-") for name in STAGE_FILES):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed


def prepare_output(run: RunDir, resume: bool = False) -> Path | None:
    """Get the run directory ready to train; returns the checkpoint to resume from, or None.

    resume=True: the last complete checkpoint (None, with a note, when there is none).
    resume=False: earlier checkpoints and adapter_best/ are removed (a new training).
    On rank 0 only, partial files left by a killed process are deleted first.
    """
    checkpoint = last_complete_checkpoint(run.checkpoints_dir) if resume else None
    if process_rank() == 0:
        removed = remove_partial_files(run)
        if removed:
            print(f"removed files a killed run left half-written: {removed}", flush=True)
        if not resume:
            for stale in (run.checkpoints_dir, run.path / BEST_ADAPTER):
                shutil.rmtree(stale, ignore_errors=True)
        elif checkpoint is None:
            print(f"no complete checkpoint in {run.checkpoints_dir}: training from step 0", flush=True)
        else:
            print(f"resuming from {checkpoint}", flush=True)
    return checkpoint


BEST_ADAPTER = "adapter_best"  # run/adapter_best/: the adapter with the lowest training-time WER
STAGE_FILES = ("adapter", BEST_ADAPTER, "train_log.json", "metrics.json", "eval_clips.jsonl")


def process_rank() -> int:
    """This process's global rank under torchrun/accelerate (0 when not distributed)."""
    return int(os.environ.get("RANK", "0"))
