"""The run directory: the only channel between notebooks.

`runs/<RUN_NAME>/` holds everything one stage hands to the next:

    config.json          the resolved settings (written by 01, read by all)
    corpus_report.json   rows read, kept and dropped per reason, per split (01)
    dropped_rows.jsonl   every dropped row with its reason (01)
    features/<split>/    log-mel features + labels, `datasets.save_to_disk` (01)
    packing.json         with PACK: windows, clips per window, audio share of 30 s (01)
    footprint.json       memory of the model per precision (02)
    lora.json            trainable vs total parameters, adapter bytes before training (03)
    checkpoints/         the Trainer's checkpoints: adapter + optimizer state only (04)
    adapter/             the final LoRA adapter, safetensors (04)
    adapter_best/        the adapter with the lowest WER during training (04, if enabled)
    eval_clips.jsonl     the dev clips transcribed during training (04)
    exports/             merged or CTranslate2 models (04 with EXPORT, or helpers.export)
    train_log.json       loss per logging step, memory per step (04)
    predictions.jsonl    reference, base and fine-tuned text per test clip (05)
    metrics.json         every figure the docs and tests read (02-06 add to it)
    plots/*.png          histogram, loss curve, WER bars
    notebooks/           the executed notebooks (make demo)

Every file is written atomically: a killed process leaves the old file or none.
"""
from __future__ import annotations

import json
from pathlib import Path

from helpers.files import REPO_ROOT, write_json_atomic, write_text_atomic


class MissingStageError(FileNotFoundError):
    """An earlier notebook's output is missing from the run directory."""


class RunDir:
    """Paths inside one run directory, plus atomic JSON helpers."""

    def __init__(self, name: str = "demo", root: str | Path | None = None):
        root = resolve_runs_root(root)
        self.name = name
        self.path = root / name
        self.path.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def file(self, relative: str) -> Path:
        """Path of a file in the run directory (parent folders created)."""
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    @property
    def adapter_dir(self) -> Path:
        return self.path / "adapter"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    def features_dir(self, split: str) -> Path:
        return self.path / "features" / split

    def plot(self, name: str) -> Path:
        return self.file(f"plots/{name}.png")

    def require(self, relative: str, stage: str) -> Path:
        """Return the path if it exists, else raise naming the notebook that makes it."""
        target = self.path / relative
        if not target.exists():
            raise MissingStageError(f"{target} is missing: run {stage} with RUN_NAME="
                                    f"{self.name!r} first (it writes this file)")
        return target

    def write_json(self, relative: str, data) -> Path:
        """Write JSON atomically; returns the path."""
        target = self.file(relative)
        write_json_atomic(target, data)
        return target

    def read_json(self, relative: str, stage: str):
        """Read a JSON file another stage wrote (clear error if it is missing)."""
        path = self.require(relative, stage)
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err}); it was edited by hand or "
                             f"written by another tool. Fix it, or run {stage} again.") from err

    def write_jsonl(self, relative: str, rows) -> Path:
        """Write one JSON object per line, atomically."""
        lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        target = self.file(relative)
        write_text_atomic(target, lines)
        return target

    def read_jsonl(self, relative: str, stage: str) -> list[dict]:
        """Read a JSON-lines file another stage wrote."""
        path = self.require(relative, stage)
        rows = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            try:
                rows.append(json.loads(line)) if line.strip() else None
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}, line {number}: not valid JSON ({err}). Fix it, or "
                                 f"run {stage} again.") from err
        return rows

    def update_metrics(self, **values) -> dict:
        """Merge values into metrics.json (atomically); returns the merged dict."""
        path = self.path / "metrics.json"
        metrics = json.loads(path.read_text()) if path.exists() else {}
        metrics.update(values)
        self.write_json("metrics.json", metrics)
        return metrics

    def metrics(self) -> dict:
        """metrics.json as a dict (empty if no stage wrote it yet)."""
        path = self.path / "metrics.json"
        return json.loads(path.read_text()) if path.exists() else {}


DRIVE_RUNS = Path("/content/drive/MyDrive/whisper-lora-8bit/runs")  # on Colab (see drive_runs)


def drive_runs() -> Path:
    """The runs folder on Google Drive: DRIVE_RUNS on Colab (tests may move the mount point)."""
    from helpers.colab import drive_home

    return drive_home() / "runs"


def resolve_runs_root(root: str | Path | None) -> Path:
    """The folder that holds run directories; mounts Google Drive when it lies there.

    None -> on Colab, Google Drive (DRIVE_RUNS): every notebook opened from its badge runs
    in its own runtime, and Drive is what they share (it also survives a disconnect);
    elsewhere runs/ in this repository. "drive" -> Google Drive (Colab only). Any other
    value is a folder path (mounted first if it is under /content/drive).
    """
    from helpers.colab import ensure_drive, in_colab

    if root is None or root == "":
        root = drive_runs() if in_colab() else REPO_ROOT / "runs"
    elif str(root) == "drive":
        if not in_colab():
            raise RuntimeError('RUNS_ROOT = "drive" works on Google Colab only; '
                               "elsewhere give a folder path")
        root = drive_runs()
    root = Path(root).expanduser()
    ensure_drive(root)
    return root
