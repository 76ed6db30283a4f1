"""The run directory: the only channel between notebooks.

`runs/<RUN_NAME>/` holds everything one stage hands to the next:

    config.json          the resolved settings (written by 01, read by all)
    corpus_report.json   rows read, kept and dropped per reason, per split (01)
    dropped_rows.jsonl   every dropped row with its reason (01)
    features/<split>/    log-mel features + labels, `datasets.save_to_disk` (01)
    test_clips.jsonl     the kept test clips: path, sentence, duration (01)
    <split>_clips.jsonl  the kept clips of the split WER is watched on in 04, when not test (01)
    packing.json         with PACK: windows, clips per window, audio share of 30 s (01)
    footprint.json       memory of the model per precision (02)
    lora.json            trainable vs total parameters, adapter bytes before training (03)
    checkpoints/         the Trainer's checkpoints: adapter + optimizer state only (04)
    adapter/             the final LoRA adapter, safetensors (04)
    adapter_best/        the adapter with the lowest WER during training (04, if enabled)
    eval_clips.jsonl     the clips transcribed during training (04)
    exports/             merged or CTranslate2 models (04 with EXPORT, or helpers.export)
    train_log.json       loss per logging step, memory per step (04)
    predictions.jsonl    reference, base and fine-tuned text per test clip, and whether each
                         ran into its token cap (05)
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


# ------------------------------------------------------------------ which run

LATEST_RUN = ".latest-run.json"  # in the runs folder: the run notebook 01 started last there


def remember_latest_run(run: RunDir) -> None:
    """Record `run` as the one notebook 01 started last in its runs folder."""
    write_json_atomic(run.path.parent / LATEST_RUN, {"run_name": run.name})


def resolve_run_name(run_name: str | None, preset: str | None, root=None) -> str:
    """RUN_NAME as given; else the preset's name; else the run notebook 01 started last in
    the runs folder `root` (FileNotFoundError saying what to do when there is none)."""
    if run_name:
        return run_name
    if preset:
        return preset
    folder = resolve_runs_root(root)
    latest = folder / LATEST_RUN
    try:
        return json.loads(latest.read_text())["run_name"]
    except (OSError, ValueError, KeyError):
        raise MissingStageError(f"no run in {folder} yet: run notebook 01 first (it starts one), "
                                "or set RUN_NAME to the run to continue") from None


# ------------------------------------------------------------------ completion markers

STAGE_NOTEBOOKS = {"01": "01_data_preparation", "02": "02_load_8bit", "03": "03_lora_injection",
                   "04": "04_training", "05": "05_inference", "06": "06_wer_comparison"}
# 05 checks 04 itself when it scores the run's own adapter (trained_adapter), not one named by ADAPTER.
STAGE_INPUTS = {"02": ("01",), "03": ("01",), "04": ("01",), "05": ("01",), "06": ("05",)}
# What each notebook writes and no later one rewrites: its marker records their sizes (a file
# a runtime left half-uploaded to Drive shows another size, or none), and the SHA-256 of the
# files a later notebook must know it is reading (the adapter 05 loads, the predictions 06 scores).
STAGE_OUTPUTS = {"01": ("corpus_report.json", "test_clips.jsonl", "dropped_rows.jsonl",
                      "train_durations.json", "features"),
               "02": ("footprint.json",), "03": ("lora.json",), "04": ("adapter", "train_log.json"),
               "05": ("predictions.jsonl",), "06": ()}
HASHED = {"04": ("adapter/adapter_model.safetensors",), "05": ("predictions.jsonl",)}


class StaleStageError(MissingStageError):
    """An earlier notebook's outputs are there, but not of this run, or not complete."""


def marker_path(run: RunDir, stage: str) -> Path:
    """run/stages/<NN>.json: notebook NN's completion marker."""
    return run.path / "stages" / f"{stage}.json"


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def stage_files(run: RunDir, stage: str) -> dict[str, int]:
    """{relative path: bytes} of every file notebook `stage` wrote that is there now."""
    sizes = {}
    for name in STAGE_OUTPUTS[stage]:
        target = run.path / name
        paths = sorted(p for p in target.rglob("*") if p.is_file()) if target.is_dir() else [target]
        for path in paths:
            if path.is_file() and not path.name.startswith("."):
                sizes[str(path.relative_to(run.path))] = path.stat().st_size
    return sizes


def finish_stage(run: RunDir, stage: str, run_id: str | None, **record) -> Path:
    """End notebook `stage`: write its completion marker, then flush Google Drive (Colab).

    The marker (run/stages/<NN>.json) holds the run id, the time, the size of each file the
    notebook wrote, the SHA-256 of those later notebooks must trust (HASHED) and `record`.
    On Colab, drive.flush_and_unmount() then uploads everything before the runtime goes
    (helpers.colab.release_drive). Returns the marker's path.
    """
    from datetime import datetime, timezone

    from helpers.colab import release_drive

    files = stage_files(run, stage)
    hashes = {name: file_sha256(run.path / name) for name in HASHED.get(stage, ()) if name in files}
    marker = run.write_json(f"stages/{stage}.json", {
        "stage": stage, "notebook": STAGE_NOTEBOOKS[stage], "run_id": run_id,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": files, "sha256": hashes, **record})
    print(f"notebook {stage} finished: {len(files)} files recorded in {marker.relative_to(run.path)}",
          flush=True)
    if release_drive(last=stage == "06"):
        print("Google Drive flushed and unmounted: every file is uploaded, so the next notebook's "
              "runtime sees them all (this runtime may go now)", flush=True)
    return marker


def read_marker(run: RunDir, stage: str, reader: str) -> dict:
    """Notebook `stage`'s completion marker; MissingStageError saying what to do without one."""
    path = marker_path(run, stage)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        raise MissingStageError(
            f"notebook {stage} ({STAGE_NOTEBOOKS[stage]}) has not finished for run {run.name!r}: "
            f"its completion marker {path} is missing. Run notebook {stage} again to its last "
            f"cell (on Colab that cell also flushes Google Drive, so the next runtime sees all of "
            f"its files), then run {reader} again.") from None


def check_marker(run: RunDir, stage: str, run_id: str | None, reader: str) -> dict:
    """Notebook `stage`'s marker, checked: this run id, every file there at its recorded size,
    the hashed ones unchanged. StaleStageError naming the file and the fix otherwise."""
    marker = read_marker(run, stage, reader)
    again = f"Run notebook {stage} ({STAGE_NOTEBOOKS[stage]}) again, then {reader}."
    if marker.get("run_id") != run_id:
        raise StaleStageError(
            f"notebook {stage}'s outputs in {run.path} are of run id {marker.get('run_id')}, an "
            f"earlier preparation of this run; notebook 01 has since prepared run id {run_id} "
            f"with other data settings. {again}")
    for name, size in marker["files"].items():
        path = run.path / name
        found = path.stat().st_size if path.is_file() else None
        if found != size:
            raise StaleStageError(
                f"{path} is {'missing' if found is None else f'{found:,} bytes'}, but notebook "
                f"{stage} wrote {size:,} bytes: its runtime ended before Google Drive had "
                f"uploaded everything, or the file was changed since. {again}")
    for name, digest in marker.get("sha256", {}).items():
        if file_sha256(run.path / name) != digest:
            raise StaleStageError(f"{run.path / name} is not the file notebook {stage} wrote "
                                  f"(its SHA-256 differs). {again}")
    return marker


def check_stage_inputs(run: RunDir, config, stage: str) -> dict[str, dict]:
    """Check the markers of the notebooks `stage` reads (STAGE_INPUTS); returns them by stage.

    Notebook 06 also checks that the predictions were made with the adapter notebook 04
    recorded last (when 05 used the run's adapter)."""
    reader = f"notebook {stage}"
    markers = {needed: check_marker(run, needed, config.run_id, reader)
               for needed in STAGE_INPUTS.get(stage, ())}
    made = markers.get("05", {})
    if stage == "06" and made.get("adapter") == "run":
        trained = check_marker(run, "04", config.run_id, "notebook 05, then 06")
        if made.get("adapter_sha256") != trained["sha256"].get("adapter/adapter_model.safetensors"):
            raise StaleStageError(
                f"predictions.jsonl in {run.path} were made with an earlier adapter: notebook 04 "
                f"has trained again since (at {trained['finished_at']}). Run notebook 05 again, "
                "then notebook 06.")
    return markers


def trained_adapter(run: RunDir, run_id: str | None) -> Path:
    """The run's adapter/ once notebook 04's marker vouches for it (this run id, the very
    weights it saved); MissingStageError / StaleStageError saying what to do otherwise."""
    check_marker(run, "04", run_id, "notebook 05")
    return run.adapter_dir


def adapter_record(run: RunDir, adapter) -> dict:
    """What notebook 05's marker says about the adapter it used: the run's (with the SHA-256
    of its weights, which 06 compares with notebook 04's marker) or the one named by ADAPTER."""
    if adapter:
        return {"adapter": str(adapter)}
    return {"adapter": "run", "adapter_sha256": file_sha256(run.adapter_dir / "adapter_model.safetensors")}


def stage_done(run: RunDir, stage: str, run_id: str | None) -> bool:
    """True when notebook `stage` finished for this run id and its files are all there
    (its marker checks out; see check_marker)."""
    try:
        check_marker(run, stage, run_id, f"notebook {stage}")
    except MissingStageError:
        return False
    return True
