"""Shared pieces of the benchmarks: result files, the environment record, worker processes.

Every result file is `benchmarks/results/<name>.json` with "benchmark", "settings",
"environment" (versions, CPU count and `os.getloadavg()` before and after, so a reader can
judge how busy the machine was) and "results". Workers are fresh Python processes so that
each measurement's peak memory (helpers.footprint.process_memory) is its own.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from helpers.files import EMBEDDED_CORPUS, write_json_atomic  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
CORPUS = EMBEDDED_CORPUS
DEMO_ADAPTER = REPO / "runs" / "demo" / "adapter"


def environment() -> dict:
    """Versions, CPU/GPU and the current load average (1, 5, 15 min) of this machine."""
    import torch
    import transformers

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "cpu_count": os.cpu_count(),
            "gpu": gpu, "loadavg": [round(x, 2) for x in os.getloadavg()]}


def write_result(out_dir: Path, name: str, settings: dict, results, started: float,
                 load_before: list[float]) -> Path:
    """Write out_dir/<name>.json (settings, environment, results, wall seconds); returns it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    env = environment()
    env["loadavg_before"] = load_before
    data = {"benchmark": name, "settings": settings, "environment": env,
            "wall_seconds": round(time.perf_counter() - started, 1), "results": results}
    path = out_dir / f"{name}.json"
    return write_json_atomic(path, data)


def loadavg() -> list[float]:
    """os.getloadavg() rounded, for the result files."""
    return [round(x, 2) for x in os.getloadavg()]


def run_worker(script: str, args: list[str], timeout: float = 900) -> dict:
    """Run `python benchmarks/<script> --worker ARGS` in a fresh process; returns its JSON.

    The worker prints one JSON object as its last stdout line. Raises RuntimeError with
    the worker's stderr tail when it fails.
    """
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": str(REPO)}
    command = [sys.executable, str(REPO / "benchmarks" / script), "--worker", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed (exit {done.returncode}):\n"
                           f"{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def median(values: list[float]) -> float | None:
    """Median rounded to 3 decimals (None for no values)."""
    return round(statistics.median(values), 3) if values else None


def folder_bytes(folder: Path) -> int:
    """Total bytes of the files under `folder`."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def test_clips(count: int, split: str = "test") -> list[dict]:
    """The first `count` clips of a cv-mini split as {"path", "sentence", "duration"}."""
    from helpers.audio import audio_duration
    from helpers.data.corpora import load_corpus

    rows = load_corpus(str(CORPUS), split=split).select(range(count))
    return [{"path": r["audio"], "sentence": r["sentence"], "duration": audio_duration(r["audio"])}
            for r in rows]
