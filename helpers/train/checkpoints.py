"""What training writes into a run, what a resume may trust, and the copy kept on Drive.

With a PEFT model the Trainer's checkpoints hold only the adapter (plus optimizer,
scheduler and RNG state), never the base weights. The Trainer writes `checkpoint-N/` file
by file, so a process killed while saving leaves a partial folder: only checkpoints whose
every file is present and whose `trainer_state.json` parses are trusted
(`is_complete_checkpoint`); the others, and the staging copies of atomic writes, are
removed before training starts (`prepare_output`). Only rank 0 writes files.

Which training a checkpoint belongs to: its trainer_state.json carries the run id and the
training settings (`RunIdentity` in helpers.train.trainer; helpers.config.TRAINING_SETTINGS),
so `RESUME = "auto"` continues only the same training, and says what differs otherwise.

A run on Google Drive (Colab): the Trainer writes its checkpoints on the runtime's own disk
(`training_checkpoints_dir`), and after each save the latest complete one is copied to the
run's `checkpoints/` on Drive into one of two slots, overwriting the older slot's files in
place (`keep_on_drive`): nothing is ever deleted there, so nothing goes to Drive's trash,
which counts against the 15 GB quota. A slot's `slot.json` is written last and emptied
first, so a copy cut short leaves the other slot as the latest. A new runtime copies the
newest slot back to its disk before resuming (`restore_from_drive`).
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
RESUME_CHOICES = ("auto", True, False)
IDENTITY = "RunIdentity"  # the stateful callback whose state trainer_state.json keeps
DRIVE_SLOTS = ("latest-a", "latest-b")  # run/checkpoints/<slot>/ on Drive, overwritten in turn
SLOT_MANIFEST = "slot.json"  # {"step": N, "files": {name: bytes}}; "{}" while being rewritten


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


def checkpoint_step(path: str | Path) -> int:
    """N of a checkpoint-N folder."""
    return int(CHECKPOINT_NAME.match(Path(path).name).group(1))


def checkpoints(checkpoints_dir: str | Path) -> list[Path]:
    """The checkpoint-N folders in `checkpoints_dir`, by increasing N."""
    folder = Path(checkpoints_dir)
    found = [p for p in folder.iterdir() if CHECKPOINT_NAME.match(p.name)] if folder.is_dir() else []
    return sorted(found, key=checkpoint_step)


def last_complete_checkpoint(checkpoints_dir: str | Path) -> Path | None:
    """The highest-step complete checkpoint (see is_complete_checkpoint), or None."""
    complete = [p for p in checkpoints(checkpoints_dir) if is_complete_checkpoint(p)]
    return complete[-1] if complete else None


def training_checkpoints_dir(run: RunDir) -> Path:
    """Where the Trainer writes checkpoints: run/checkpoints, or, for a run on Google Drive,
    <the runtime's disk>/checkpoints/<run name> (the latest is kept on Drive by keep_on_drive)."""
    from helpers.colab import local_root, on_drive

    return local_root() / "checkpoints" / run.name if on_drive(run.path) else run.checkpoints_dir


def remove_partial_files(run: RunDir, checkpoints_dir: str | Path | None = None) -> list[str]:
    """Delete what a killed writer can leave: incomplete checkpoint-N folders (in
    `checkpoints_dir`, default run/checkpoints) and the hidden staging copies of atomic
    writes (.adapter-*, .metrics.json-*, ...). Returns their names."""
    folder = Path(checkpoints_dir or run.checkpoints_dir)
    removed = []
    for name in ("adapter", BEST_ADAPTER):  # killed between the two renames of a replacement
        old = run.path / f".{name}-old"
        if old.is_dir() and not (run.path / name).exists():
            old.rename(run.path / name)
    for path in checkpoints(folder):
        if not is_complete_checkpoint(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(f"checkpoints/{path.name}")
    for path in [*run.path.iterdir(), *(folder.iterdir() if folder.is_dir() else [])]:
        if any(path.name.startswith(f".{name}-") for name in (*STAGE_FILES, "checkpoint")):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed


def prepare_output(run: RunDir, resume="auto", config=None) -> Path | None:
    """Get the run ready to train; returns the checkpoint to resume from, or None.

    resume="auto" (notebook 04's default) or True: the last complete checkpoint (for a run
    on Drive, restored from there first), printed as "resuming from checkpoint-N ..."; None,
    with a note, when there is none. With `config`, the checkpoint must be of the same
    training (run id and training settings; MAX_STEPS may differ: raising it continues a
    finished training), else ValueError naming what differs and the fix. resume=False: the
    earlier checkpoints and adapter_best/ are removed, saying which (a new training). On
    rank 0 only, partial files left by a killed process are deleted first.
    """
    if resume not in RESUME_CHOICES:
        raise ValueError(f"RESUME must be 'auto', True or False, got {resume!r}")
    folder = training_checkpoints_dir(run)
    if process_rank() == 0:
        removed = remove_partial_files(run, folder)
        if removed:
            print(f"removed files a killed run left half-written: {removed}", flush=True)
        if resume is False:
            start_over(run, folder)
            return None
        restore_from_drive(run, folder)
    elif resume is False:
        return None
    checkpoint = last_complete_checkpoint(folder)
    if checkpoint is None:
        if process_rank() == 0:
            print(f"no checkpoint in {folder}: training from step 0", flush=True)
        return None
    if config is not None:
        check_same_training(checkpoint, config)
    if process_rank() == 0:
        print(resume_line(checkpoint, config), flush=True)
    return checkpoint


def resume_line(checkpoint: Path, config=None) -> str:
    """"resuming from checkpoint-N (...)": where training continues and what is left to do."""
    step, limit = checkpoint_step(checkpoint), (config.max_steps if config is not None else -1)
    where = f"{checkpoint.parent}" + (f", run id {config.run_id}" if config is not None else "")
    if limit is None or limit <= 0:
        return f"resuming from {checkpoint.name} ({where}): training on from step {step}"
    if step >= limit:
        return (f"resuming from {checkpoint.name} ({where}): already at MAX_STEPS = {limit}, "
                "nothing to train; raise MAX_STEPS to train further, or set RESUME = False to "
                "start over")
    left = limit - step
    return f"resuming from {checkpoint.name} ({where}): {left} step{'s' * (left != 1)} to go, to step {limit}"


def checkpoint_identity(checkpoint: str | Path) -> dict:
    """The RunIdentity state a checkpoint's trainer_state.json keeps ({} when it has none):
    {"args": {"settings": {...}}, "attributes": {"train_seconds": ...}}."""
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    return state.get("stateful_callbacks", {}).get(IDENTITY) or {}


def check_same_training(checkpoint: Path, config) -> None:
    """ValueError when `checkpoint` is not of the training `config` describes (see
    helpers.config.TRAINING_SETTINGS), naming what differs and how to go on."""
    from helpers.config import TRAINING_SETTINGS, setting_changes, settings_of

    saved = checkpoint_identity(checkpoint).get("args", {}).get("settings")
    wanted = settings_of(config, TRAINING_SETTINGS)
    if saved == wanted:
        return
    changes = setting_changes(saved, wanted) if saved else ["it records no run id (written by an older version)"]
    why = (" Notebook 01 has prepared the data again with other settings since (a new run id)."
           if saved and saved.get("run_id") != wanted["run_id"] else "")
    raise ValueError(
        f"{checkpoint} is of another training ({'; '.join(changes)}).{why} RESUME = 'auto' "
        "continues only the same training: to continue it, set those settings back; to start "
        f"over, set RESUME = False (it removes the checkpoints in {checkpoint.parent}).")


def start_over(run: RunDir, folder: Path) -> None:
    """RESUME = False: remove the checkpoints and adapter_best/, and mark the Drive copies
    stale (emptied manifests, overwritten by the new training: nothing goes to the trash);
    prints what it removed."""
    gone = [path.name for path in checkpoints(folder)]
    shutil.rmtree(folder, ignore_errors=True)
    if (run.path / BEST_ADAPTER).exists():
        shutil.rmtree(run.path / BEST_ADAPTER, ignore_errors=True)
        gone.append(f"{BEST_ADAPTER}/")
    stale = [f"{slot} (step {manifest['step']})" for slot, manifest in drive_slots(run) if manifest]
    for slot, _ in drive_slots(run):
        if (run.checkpoints_dir / slot / SLOT_MANIFEST).is_file():
            overwrite_in_place(run.checkpoints_dir / slot / SLOT_MANIFEST, b"{}")
    print(f"RESUME = False: removed {', '.join(gone) or 'nothing (no checkpoints)'} from {folder}"
          + (f"; the copies on Drive ({', '.join(stale)}) are marked stale and will be "
             "overwritten" if stale else "") + "; training starts at step 0", flush=True)


# ---------------------------------------------------------------- the latest checkpoint on Drive


def overwrite_in_place(target: Path, data: bytes | Path) -> None:
    """Write `data` (bytes, or a file's contents) into `target`, truncating the existing file
    instead of replacing it: on Drive the file keeps its identity, nothing goes to the trash."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as out:  # "wb" truncates the same file; never unlink + create
        if isinstance(data, Path):
            with open(data, "rb") as source:
                shutil.copyfileobj(source, out, 2**20)
        else:
            out.write(data)
        out.flush()
        os.fsync(out.fileno())


def slot_manifest(slot: Path) -> dict | None:
    """A Drive slot's manifest when the slot is complete (every listed file at its size)."""
    try:
        manifest = json.loads((slot / SLOT_MANIFEST).read_text())
        complete = all((slot / name).stat().st_size == size for name, size in manifest["files"].items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return manifest if complete else None


def drive_slots(run: RunDir) -> list[tuple[str, dict | None]]:
    """(slot name, manifest or None) for the run's Drive slots; empty off Drive."""
    from helpers.colab import on_drive

    if not on_drive(run.path):
        return []
    return [(slot, slot_manifest(run.checkpoints_dir / slot)) for slot in DRIVE_SLOTS]


def keep_on_drive(checkpoint: Path, run: RunDir) -> Path:
    """Copy complete `checkpoint` into the run's older Drive slot, in place; returns the slot.

    The slot's manifest is emptied first and written last, so a copy cut short leaves the
    other slot as the latest complete checkpoint on Drive.
    """
    manifests = dict(drive_slots(run))
    slot_name = min(DRIVE_SLOTS, key=lambda name: (manifests.get(name) or {}).get("step", -1))
    slot = run.checkpoints_dir / slot_name
    if (slot / SLOT_MANIFEST).is_file():
        overwrite_in_place(slot / SLOT_MANIFEST, b"{}")
    files = {}
    for path in sorted(p for p in checkpoint.iterdir() if p.is_file()):
        overwrite_in_place(slot / path.name, path)
        files[path.name] = path.stat().st_size
    manifest = {"step": checkpoint_step(checkpoint), "checkpoint": checkpoint.name, "files": files}
    overwrite_in_place(slot / SLOT_MANIFEST, json.dumps(manifest, indent=1).encode())
    return slot


def restore_from_drive(run: RunDir, folder: Path) -> Path | None:
    """Copy the newest complete Drive slot to `folder`/checkpoint-N when `folder` holds no
    complete checkpoint as new (a fresh runtime); returns the restored checkpoint or None."""
    newest = max(((slot, m) for slot, m in drive_slots(run) if m), key=lambda s: s[1]["step"],
                 default=None)
    local = last_complete_checkpoint(folder)
    if newest is None or (local is not None and checkpoint_step(local) >= newest[1]["step"]):
        return None
    slot, manifest = run.checkpoints_dir / newest[0], newest[1]
    target = folder / f"checkpoint-{manifest['step']}"
    staging = folder / f".{target.name}-restoring"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in manifest["files"]:
        shutil.copyfile(slot / name, staging / name)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    print(f"{target.name} restored from Google Drive ({slot}) onto this runtime's disk", flush=True)
    return target


BEST_ADAPTER = "adapter_best"  # run/adapter_best/: the adapter with the lowest training-time WER
STAGE_FILES = ("adapter", BEST_ADAPTER, "train_log.json", "metrics.json", "eval_clips.jsonl")


def process_rank() -> int:
    """This process's global rank under torchrun/accelerate (0 when not distributed)."""
    return int(os.environ.get("RANK", "0"))
