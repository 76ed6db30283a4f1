"""Measure the peak memory and step time of real Whisper training steps; compare with the estimate.

Memory does not depend on weight values, so the named architecture is built with random
weights (helpers.model.architectures; nothing is downloaded) and trained on synthetic 30 s inputs:
full fine-tuning (fp16 autocast + GradScaler + fused AdamW, as the Trainer does with
fp16=True), LoRA on an fp16 base, on an 8-bit base and on a 4-bit base
(helpers.model.adapters.add_lora), at batch sizes doubling until the first out-of-memory. Each
point (method, checkpointing, batch size) runs in a fresh worker process, so a crash, a
hang (killed at --timeout) or an out-of-memory costs that point only; on cuda the next
worker is started while one measures, so its imports overlap. The results and
helpers.footprint.estimate's predictions go to benchmarks/results/gpu_memory_<model>.json.

    python benchmarks/gpu_memory.py --model large-v2                     # any CUDA GPU
    python benchmarks/gpu_memory.py --model large-v2 --cap 15GB          # behave like a 15 GB T4
    python benchmarks/gpu_memory.py --device cpu --model embedded \\
        --methods lora_8bit --batch-sizes 2 8                          # process memory on CPU

Gradient checkpointing defaults to what training uses in one process
(helpers.model.adapters.checkpointing_kind: reentrant); `--checkpointing non-reentrant reentrant`
measures both.

On cuda, per point: peak allocated/reserved (torch.cuda.max_memory_*) over the measured
steps, and device-level use, what nvidia-smi shows for the process: the GPU memory in use
before the worker touched CUDA (NVML) and after its steps (torch.cuda.mem_get_info); their
difference less the allocator's current reservation is the CUDA context and other memory
outside PyTorch's allocator, and that plus the peak reservation is the device-level peak
(`device_peak_bytes`). `--cap` limits the caching allocator with
torch.cuda.set_per_process_memory_fraction so that context + reserved stays within it, as
on a smaller card. On cpu: the peak RSS of the worker (VmHWM, helpers.footprint.process_memory; reset
after loading and one warm-up step where Linux allows) and, with --track-tensors, the peak
bytes of live tensors.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from helpers.model.adapters import checkpointing_kind
from helpers.footprint.estimate import CHECKPOINTING, CUDA_CONTEXT_BYTES, LABEL_LENGTH, METHODS

PRECISION = {"full_fp16": "fp32", "lora_fp16": "fp16", "lora_8bit": "8bit", "lora_4bit": "4bit"}
EMBEDDED = ("embedded", "embedded-base")
DEFAULT_CHECKPOINTING = checkpointing_kind()   # reentrant in one process, as training uses
BATCH_SIZES = [1, 2, 4, 8, 16, 32, 64]
NO_CUDA = ("No CUDA GPU is visible, so GPU memory cannot be measured here. Run this on a "
           "machine with an NVIDIA GPU (Colab, a cloud VM), or exercise the code path on the "
           "CPU: python benchmarks/gpu_memory.py --device cpu --model tiny.en")


# ------------------------------------------------------------------ worker (one process, one point)

def load_for(method: str, source: str, device: str, lora, checkpointing: str):
    """The model of one method, ready to train: full (fp32 weights) or LoRA on fp16/8/4-bit."""
    from transformers import WhisperForConditionalGeneration

    from helpers.model.adapters import add_lora
    from helpers.model.load import load_model, precision_kwargs, release_checkpoint_mapping

    precision = PRECISION[method]
    if source in EMBEDDED:
        model, _ = load_model(source, precision=precision, device=device)
    else:
        kwargs = precision_kwargs(precision, device)
        if device == "cuda":
            kwargs.setdefault("device_map", {"": device})   # straight to the GPU: same memory
        model = WhisperForConditionalGeneration.from_pretrained(source, **kwargs)
        if "quantization_config" in kwargs:
            release_checkpoint_mapping(model)  # as load_model does
        model = model if "device_map" in kwargs else model.to(device)
    ckpt = checkpointing != "none"
    if method == "full_fp16":
        if ckpt:
            model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": checkpointing == "reentrant"})
        model.config.use_cache = False
    else:
        model = add_lora(model, lora, gradient_checkpointing=ckpt, checkpointing=checkpointing)
    return model.train()


def make_optimizer(model):
    """AdamW over the trainable parameters, fused like the Trainer's default adamw_torch_fused."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    try:
        return torch.optim.AdamW(params, lr=1e-5, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(params, lr=1e-5)


def synthetic_batch(model, batch_size: int, label_length: int, device: str) -> dict:
    """Random 30 s log-mel features and random label ids of `label_length` tokens."""
    import torch

    config = model.config
    generator = torch.Generator().manual_seed(batch_size)
    features = torch.randn(batch_size, config.num_mel_bins, 2 * config.max_source_positions,
                           generator=generator)
    labels = torch.randint(0, config.vocab_size - 1000, (batch_size, label_length),
                           generator=generator)
    dtype = next(model.get_encoder().conv1.parameters()).dtype   # an fp16 base wants fp16 input
    return {"input_features": features.to(device, dtype=dtype), "labels": labels.to(device)}


def train_step(model, optimizer, scaler, batch: dict, device: str) -> float:
    """One optimizer step (fp16 autocast + GradScaler on cuda, no autocast on cpu); the loss."""
    import contextlib

    import torch

    autocast = torch.autocast("cuda", dtype=torch.float16) if device == "cuda" \
        else contextlib.nullcontext()
    with autocast:
        loss = model(**batch).loss
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def measure_cpu(model, optimizer, spec: dict, batch_size: int) -> dict:
    """Peak RSS of `steps - 1` steps after a warm-up step (of the first step when steps is
    1), loading excluded where Linux lets us reset the peak; + the live tensor peak of one
    more step if asked."""
    from helpers.footprint.measure import LiveTensorBytes
    from helpers.footprint.process_memory import peak_rss_bytes, reset_peak_rss, rss_parts

    batch = synthetic_batch(model, batch_size, spec["label_length"], "cpu")
    if spec["steps"] > 1:      # warm-up: AdamW state appears
        train_step(model, optimizer, None, batch, "cpu")
    reset = reset_peak_rss()   # forget the loading (and converting) peak
    started = time.perf_counter()
    for _ in range(max(1, spec["steps"] - 1)):
        loss = train_step(model, optimizer, None, batch, "cpu")
    seconds = (time.perf_counter() - started) / max(1, spec["steps"] - 1)
    row = {"batch_size": batch_size, "peak_rss_bytes": peak_rss_bytes(),
           "rss_peak_reset": reset, "step_seconds": round(seconds, 3), "loss": round(loss, 4),
           **{f"{key}_after_step": value for key, value in rss_parts().items()}}
    if spec.get("track_tensors"):
        del batch
        with LiveTensorBytes("cpu") as tracker:
            train_step(model, optimizer, None,
                       synthetic_batch(model, batch_size, spec["label_length"], "cpu"), "cpu")
        row["step_tensor_peak_bytes"] = tracker.peak
    return row


def device_used_bytes(index: int = 0) -> int | None:
    """GPU memory in use on the whole device (NVML, as nvidia-smi reports it), read without
    creating a CUDA context; None when neither NVML nor nvidia-smi answers."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return int(pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(index)).used)
    except Exception:  # no pynvml, or NVML refused: ask nvidia-smi (MiB resolution)
        pass
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits",
                              f"--id={index}"], capture_output=True, text=True, timeout=20)
        return int(float(out.stdout.strip().splitlines()[0]) * 2**20)
    except Exception:
        return None


def open_cuda(cap_bytes: float | None) -> dict:
    """Create this process's CUDA context; with `cap_bytes`, limit the caching allocator so
    that context + reserved memory stay within it. Returns the device readings taken."""
    import torch

    before = device_used_bytes()
    torch.zeros(1, device="cuda")
    torch.cuda.synchronize()
    free, total = torch.cuda.mem_get_info()
    info = {"device_total_bytes": total, "device_used_before_bytes": before,
            "device_used_after_init_bytes": total - free}
    if cap_bytes:
        context = (total - free) - before - torch.cuda.memory_reserved() if before is not None \
            else CUDA_CONTEXT_BYTES
        fraction = max(cap_bytes - context, 0) / total
        torch.cuda.set_per_process_memory_fraction(fraction)
        info.update(cap_bytes=int(cap_bytes), cap_fraction=round(fraction, 6))
    return info


def device_level(info: dict) -> dict:
    """What the process holds on the device now, and its device-level peak (see the docstring)."""
    import torch

    free, total = torch.cuda.mem_get_info()
    reserved = torch.cuda.memory_reserved()
    row = {"device_used_after_bytes": total - free, "reserved_after_bytes": reserved}
    before = info.get("device_used_before_bytes")
    if before is not None:
        outside = (total - free) - before - reserved   # CUDA context, cuBLAS, loaded kernels
        row.update(device_bytes=(total - free) - before, outside_allocator_bytes=outside,
                   device_peak_bytes=outside + torch.cuda.max_memory_reserved())
    return row


def measure_cuda(model, optimizer, spec: dict, batch_size: int) -> dict:
    """Peak allocated/reserved GPU memory and seconds per step after a warm-up step."""
    import torch

    scaler = torch.amp.GradScaler("cuda")
    batch = synthetic_batch(model, batch_size, spec["label_length"], "cuda")
    train_step(model, optimizer, scaler, batch, "cuda")         # warm-up: AdamW state appears
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for _ in range(max(1, spec["steps"] - 1)):
        loss = train_step(model, optimizer, scaler, batch, "cuda")
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - started) / max(1, spec["steps"] - 1)
    return {"batch_size": batch_size, "peak_allocated_bytes": torch.cuda.max_memory_allocated(),
            "peak_reserved_bytes": torch.cuda.max_memory_reserved(),
            "step_seconds": round(seconds, 3), "loss": round(loss, 4)}


def worker(spec: dict) -> dict:
    """Measure one point: spec's method and checkpointing at spec["batch_size"].

    An out-of-memory while loading or stepping is a result ({"oom": True, ...}), not an error.
    """
    import warnings

    import torch

    from helpers.footprint.count import lora_settings

    warnings.filterwarnings("ignore")
    device, batch_size = spec["device"], spec["batch_size"]
    info = open_cuda(spec.get("cap_bytes")) if device == "cuda" else {}
    lora = lora_settings(spec["preset"], r=spec.get("r"), target_modules=spec.get("targets"))
    stage = "loading"
    try:
        model = load_for(spec["method"], spec["source"], device, lora, spec["checkpointing"])
        optimizer = make_optimizer(model)
        stage = "training"
        measure = measure_cuda if device == "cuda" else measure_cpu
        row = measure(model, optimizer, spec, batch_size)
    except torch.cuda.OutOfMemoryError as error:
        row = {"batch_size": batch_size, "oom": True, "oom_while": stage,
               "oom_message": str(error).strip().splitlines()[0][:300]}
        if device == "cuda":
            row["peak_reserved_bytes"] = torch.cuda.max_memory_reserved()
    if device == "cuda":
        row.update({**info, **device_level(info)})
    return row


def prefetch_imports() -> None:
    """Import what a worker needs before it is given its point (nothing touches the GPU)."""
    import peft  # noqa: F401  (imports bitsandbytes too, when installed)
    import transformers  # noqa: F401
    from transformers import WhisperForConditionalGeneration  # noqa: F401

    import helpers.model.adapters  # noqa: F401
    import helpers.model.load  # noqa: F401


def worker_main(arg: str) -> int:
    """`--worker JSON`, or `--worker -`: import, then read one spec line from stdin (EOF: exit)."""
    if arg == "-":
        prefetch_imports()
        line = sys.stdin.readline()
        if not line.strip():
            return 0
        arg = line
    print(json.dumps(worker(json.loads(arg))), flush=True)
    return 0


# ------------------------------------------------------------------ parent: fresh process per point

class Workers:
    """Runs each point in a fresh `--worker -` process and returns its row, never raising.

    With `prefetch`, the next process is started (and imports its libraries) while the
    current one measures; it touches no GPU until it is given its point.
    """

    def __init__(self, prefetch: bool = False):
        self.prefetch, self.spare = prefetch, None
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}

    def _spawn(self) -> subprocess.Popen:
        """A worker process waiting for its spec on stdin."""
        return subprocess.Popen([sys.executable, __file__, "--worker", "-"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=self.env, cwd=str(REPO))

    def run(self, spec: dict, timeout: float) -> dict:
        """The row of one point; {"batch_size", "failed": why} when the worker fails or times out."""
        process, self.spare = self.spare or self._spawn(), None
        if self.prefetch:
            self.spare = self._spawn()
        started = time.perf_counter()
        try:
            out, err = process.communicate(json.dumps(spec) + "\n", timeout=max(timeout, 1))
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            return {"batch_size": spec["batch_size"], "failed": f"timed out after {timeout:.3g} s",
                    "wall_seconds": round(time.perf_counter() - started, 1)}
        except OSError as error:   # the worker died before reading its spec
            process.kill()
            out, err = process.communicate()
            err = f"{err}\n{error}"
        rows = [line for line in (out or "").splitlines() if line.startswith("{")]
        if process.returncode != 0 or not rows:
            tail = (err or out or "no output").strip().splitlines()[-5:]
            return {"batch_size": spec["batch_size"],
                    "failed": f"exit {process.returncode}: " + " | ".join(tail)[-1500:],
                    "wall_seconds": round(time.perf_counter() - started, 1)}
        row = json.loads(rows[-1])
        row["wall_seconds"] = round(time.perf_counter() - started, 1)
        return row

    def close(self) -> None:
        """End the spare worker, if any."""
        if self.spare is not None:
            self.spare.kill()
            self.spare.communicate()
            self.spare = None


def measure_series(workers: Workers, spec: dict, batch_sizes, timeout: float,
                   deadline: float | None = None, on_row=None, min_seconds: float = 0) -> list[dict]:
    """One point per batch size, in order, until the first out-of-memory or error.

    deadline (time.monotonic()): no point starts with less than `min_seconds` left (the
    rest are recorded as skipped) and none runs past it. on_row(rows) after each point.
    """
    rows = []
    for batch_size in batch_sizes:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left < max(min_seconds, 1):
            rows.append({"batch_size": batch_size, "skipped": "time budget used up"})
            break
        limit = timeout if left is None else min(timeout, left)
        rows.append(workers.run({**spec, "batch_size": batch_size}, limit))
        if on_row:
            on_row(rows)
        if rows[-1].get("oom") or "failed" in rows[-1]:
            break
    return rows


def save_random_weights(model: str, folder: Path, device: str = "cpu", dtype: str = "float32") -> str:
    """Build architecture `model` with random weights (on `device`, fast on a GPU) and save it
    to `folder` in `dtype` (float16 halves the file; loading converts); returns the folder."""
    import torch
    from transformers import WhisperForConditionalGeneration

    from helpers.model.architectures import whisper_config

    torch.manual_seed(0)
    with torch.device(device):
        random_model = WhisperForConditionalGeneration(whisper_config(model))
    random_model.to(getattr(torch, dtype)).save_pretrained(folder, safe_serialization=True)
    return str(folder)


def weights_source(model: str, workdir: Path, device: str = "cpu") -> str:
    """`model` itself for the packaged models, else a folder of random weights in workdir
    (saved in float32 for cpu runs, float16 built on the GPU for cuda runs)."""
    if model in EMBEDDED:
        return model
    on_cuda = device == "cuda"
    return save_random_weights(model, workdir / "random", "cuda" if on_cuda else "cpu",
                               "float16" if on_cuda else "float32")


def add_predictions(rows: list[dict], method: str, args, report: dict, counts: dict,
                    lora, checkpointing: str) -> None:
    """Put the estimator's prediction and its relative error on each measured row."""
    from helpers.footprint.estimate import estimate

    key = "peak_allocated_bytes" if args.device == "cuda" else "peak_rss_bytes"
    for row in rows:
        if key not in row or row.get("oom"):
            continue
        predicted = estimate(report["config"], lora, counts, row["batch_size"], device=args.device,
                             checkpointing=checkpointing, label_length=args.label_length,
                             methods=(method,))["methods"][method]
        row[f"predicted_{key}"] = predicted[key]
        row["error"] = round((predicted[key] - row[key]) / row[key], 4)
        if args.device == "cuda":
            row["predicted_peak_reserved_bytes"] = predicted["peak_reserved_bytes"]
            row["predicted_device_peak_bytes"] = int(predicted["peak_reserved_bytes"]
                                                     + CUDA_CONTEXT_BYTES)
            if row.get("device_peak_bytes"):
                row["device_error"] = round((row["predicted_device_peak_bytes"]
                                             - row["device_peak_bytes"]) / row["device_peak_bytes"], 4)
        if "step_tensor_peak_bytes" in row:
            row["predicted_step_tensor_bytes"] = predicted["step_tensor_bytes"]
            row["tensor_error"] = round(
                (predicted["step_tensor_bytes"] - row["step_tensor_peak_bytes"])
                / row["step_tensor_peak_bytes"], 4)


def environment(device: str) -> dict:
    """Library versions and the device name (and its memory on cuda)."""
    import importlib.metadata
    import platform

    import torch

    versions = {}
    for name in ("torch", "transformers", "peft", "bitsandbytes", "accelerate"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    env = {"device_name": "cpu", "python": platform.python_version(), **versions,
           "cpu_count": os.cpu_count()}
    if device == "cuda":
        env.update(device_name=torch.cuda.get_device_name(0), cuda=torch.version.cuda,
                   device_total_bytes=torch.cuda.get_device_properties(0).total_memory)
    return env


def method_spec(args, method: str, checkpointing: str, source: str) -> dict:
    """The worker spec of one method and checkpointing kind (the batch size is added per point)."""
    return {"method": method, "source": source, "device": args.device, "preset": args.preset,
            "r": args.r, "targets": args.target_modules, "checkpointing": checkpointing,
            "label_length": args.label_length, "steps": args.steps,
            "track_tensors": args.track_tensors,
            "cap_bytes": args.cap_bytes if args.device == "cuda" else None}


def run(args) -> dict:
    """Measure every method x checkpointing x batch size; returns the results document."""
    from helpers.footprint.count import count_footprint, lora_settings
    from helpers.footprint.estimate import parse_bytes

    args.cap_bytes = parse_bytes(args.cap) if getattr(args, "cap", None) else None
    lora = lora_settings(args.preset, r=args.r, target_modules=args.target_modules)
    report, counts = count_footprint(args.model, lora)
    doc = {"model": args.model, "architecture": report["architecture"], "device": args.device,
           "preset": args.preset, "lora": report["lora"], "label_length": args.label_length,
           "steps": args.steps, "cap_bytes": args.cap_bytes,
           "environment": environment(args.device), "results": {}}
    workers = Workers(prefetch=args.device == "cuda")
    try:
        with tempfile.TemporaryDirectory(prefix="whisper-random-") as workdir:
            source = weights_source(args.model, Path(workdir), args.device)
            for checkpointing in args.checkpointing:
                for method in args.methods:
                    spec = method_spec(args, method, checkpointing, source)
                    rows = measure_series(workers, spec, args.batch_sizes, args.timeout)
                    add_predictions(rows, method, args, report, counts, lora, checkpointing)
                    doc["results"][f"{method}/{checkpointing}"] = rows
                    print(f"{method:10s} {checkpointing:14s} {summary(rows)}", file=sys.stderr)
    finally:
        workers.close()
    return doc


def summary(rows: list[dict]) -> str:
    """One line: batch -> measured GB (predicted GB) per row."""
    parts = []
    for row in rows:
        key = next((k for k in ("peak_allocated_bytes", "peak_rss_bytes")
                    if k in row and not row.get("oom")), None)
        if key is None:
            what = "OOM" if row.get("oom") else row.get("skipped") or "failed"
            parts.append(f"b{row['batch_size']}: {what}")
        else:
            predicted = row.get("predicted_" + key)
            guess = f" (predicted {predicted / 1e9:.2f})" if predicted else ""
            parts.append(f"b{row['batch_size']}: {row[key] / 1e9:.2f} GB{guess}")
    return ", ".join(parts)


def repredict(path: Path) -> dict:
    """Recompute the predictions in a results file with the current estimator (no training)."""
    from types import SimpleNamespace

    from helpers.config import LoraSettings
    from helpers.footprint.count import count_footprint

    doc = json.loads(Path(path).read_text())
    lora = LoraSettings(**doc["lora"])
    report, counts = count_footprint(doc["model"], lora)
    device = doc.setdefault(
        "device", "cpu" if doc["environment"]["device_name"] == "cpu" else "cuda")
    settings = SimpleNamespace(device=device, label_length=doc["label_length"])
    for key, rows in doc["results"].items():
        method, checkpointing = key.split("/")
        add_predictions(rows, method, settings, report, counts, lora, checkpointing)
    Path(path).write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def parse_args(argv=None):
    """Command-line arguments."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="large-v2",
                   help="architecture name (tiny ... large-v3-turbo, openai/whisper-*) built with "
                        "random weights, a local dir with config.json, or embedded / "
                        "embedded-base (packaged real weights)")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--batch-sizes", nargs="+", type=int, default=BATCH_SIZES)
    p.add_argument("--checkpointing", nargs="+", default=[DEFAULT_CHECKPOINTING],
                   choices=CHECKPOINTING,
                   help=f"gradient checkpointing kinds (default: {DEFAULT_CHECKPOINTING}, what "
                        "training uses in one process)")
    p.add_argument("--cap", help="cuda: keep context + reserved memory within this, e.g. 15GB "
                                 "(torch.cuda.set_per_process_memory_fraction)")
    p.add_argument("--preset", default="blog", help="LoRA settings from this preset")
    p.add_argument("--r", type=int, help="override the LoRA rank")
    p.add_argument("--target-modules", nargs="+", help="override the LoRA target modules")
    p.add_argument("--label-length", type=int, default=LABEL_LENGTH)
    p.add_argument("--steps", type=int, default=3, help="steps per point, the first a warm-up")
    p.add_argument("--track-tensors", action="store_true",
                   help="cpu: also measure live tensor bytes of one step (slow; tiny models)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per worker process")
    p.add_argument("--out", help="output JSON "
                   "(default: benchmarks/results/<gpu|cpu>_memory_<model>.json)")
    p.add_argument("--repredict", metavar="RESULTS_JSON",
                   help="only recompute the predictions stored in a results file")
    p.add_argument("--save-random", nargs=2, metavar=("MODEL", "FOLDER"), help=argparse.SUPPRESS)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    """Entry point: a worker run, or the whole benchmark; 2 when cuda is asked but absent."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)   # PEFT asks a deprecated flag
    args = parse_args(argv)
    if args.worker:
        return worker_main(args.worker)
    if args.repredict:
        for method_key, rows in repredict(Path(args.repredict))["results"].items():
            print(f"{method_key:26s} {summary(rows)}")
        return 0
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        return 2
    if args.save_random:
        print(weights_source(args.save_random[0], Path(args.save_random[1]), args.device))
        return 0
    doc = run(args)
    name = args.model if args.model in EMBEDDED else doc["architecture"]
    name = Path(args.model).name if name == "config.json" else name
    prefix = "gpu" if args.device == "cuda" else "cpu"
    out = Path(args.out or REPO / "benchmarks" / "results" / f"{prefix}_memory_{name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
