"""Measure the peak memory and step time of real Whisper training steps; compare with the estimate.

Memory does not depend on weight values, so the named architecture is built with random
weights (helpers.architectures; nothing is downloaded) and trained on synthetic 30 s inputs:
full fine-tuning (fp16 autocast + GradScaler + fused AdamW, as the Trainer does with
fp16=True), LoRA on an 8-bit base and LoRA on a 4-bit base (helpers.adapters.add_lora), over
a range of batch sizes, stopping at the first out-of-memory. Each measurement runs in a
fresh worker process; the results and helpers.memory_estimate's predictions go to
benchmarks/results/gpu_memory_<model>.json.

    python benchmarks/gpu_memory.py --model large-v2                     # any CUDA GPU
    python benchmarks/gpu_memory.py --device cpu --model embedded \\
        --methods lora_8bit --batch-sizes 2 8                          # process memory on CPU

On cuda: peak allocated/reserved (torch.cuda.max_memory_*) over the measured steps. On cpu:
the peak RSS of the worker (VmHWM, helpers.process_memory; reset after loading and one
warm-up step where Linux allows) and, with --track-tensors, the peak bytes of live tensors.
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

from helpers.memory_estimate import CHECKPOINTING, LABEL_LENGTH, METHODS  # noqa: E402

PRECISION = {"full_fp16": "fp32", "lora_8bit": "8bit", "lora_4bit": "4bit"}
EMBEDDED = ("embedded", "embedded-base")
NO_CUDA = ("No CUDA GPU is visible, so GPU memory cannot be measured here. Run this on a "
           "machine with an NVIDIA GPU (Colab, a cloud VM), or exercise the code path on the "
           "CPU: python benchmarks/gpu_memory.py --device cpu --model tiny.en")


# ------------------------------------------------------------------ worker (one process)

def load_for(method: str, source: str, device: str, lora, checkpointing: str):
    """The model of one method, ready to train: full (fp32 weights) or LoRA on 8/4-bit."""
    from transformers import WhisperForConditionalGeneration

    from helpers.adapters import add_lora
    from helpers.models import load_model, precision_kwargs, release_checkpoint_mapping

    precision = PRECISION[method]
    if source in EMBEDDED:
        model, _ = load_model(source, precision=precision, device=device)
    else:
        kwargs = precision_kwargs(precision, device)
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
        model = add_lora(model, lora, checkpointing=checkpointing)
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
    return {"input_features": features.to(device), "labels": labels.to(device)}


def train_step(model, optimizer, scaler, batch: dict, device: str) -> float:
    """One optimizer step (fp16 autocast + GradScaler on cuda, float32 on cpu); the loss."""
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
    from helpers.footprint import LiveTensorBytes
    from helpers.process_memory import peak_rss_bytes, reset_peak_rss, rss_parts

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


def worker(spec: dict) -> list[dict]:
    """Measure one method at each batch size in turn; stop at the first out-of-memory."""
    import gc
    import warnings

    import torch

    from helpers.footprint import lora_settings

    warnings.filterwarnings("ignore")
    device = spec["device"]
    lora = lora_settings(spec["preset"], r=spec.get("r"), target_modules=spec.get("targets"))
    model = load_for(spec["method"], spec["source"], device, lora, spec["checkpointing"])
    optimizer = make_optimizer(model)
    rows = []
    for batch_size in spec["batch_sizes"]:
        try:
            measure = measure_cuda if device == "cuda" else measure_cpu
            rows.append(measure(model, optimizer, spec, batch_size))
        except torch.cuda.OutOfMemoryError:
            rows.append({"batch_size": batch_size, "oom": True})
            break
        finally:
            gc.collect()
            if device == "cuda":
                torch.cuda.empty_cache()
    return rows


# ------------------------------------------------------------------ parent

def weights_source(model: str, workdir: Path) -> str:
    """`model` itself for the packaged models, else a folder of random weights in workdir."""
    import torch
    from transformers import WhisperForConditionalGeneration

    from helpers.architectures import whisper_config

    if model in EMBEDDED:
        return model
    torch.manual_seed(0)
    random_model = WhisperForConditionalGeneration(whisper_config(model))
    random_model.save_pretrained(workdir / "random", safe_serialization=True)
    return str(workdir / "random")


def run_worker(spec: dict, timeout: float) -> list[dict]:
    """Run `worker(spec)` in a fresh Python process; its rows, or one row with the error."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                          capture_output=True, text=True, env=env, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("[")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return [{"batch_size": spec["batch_sizes"][0], "error": " | ".join(tail)}]
    return json.loads(lines[-1])


def add_predictions(rows: list[dict], method: str, args, report: dict, counts: dict,
                    lora, checkpointing: str) -> None:
    """Put the estimator's prediction and its relative error on each measured row."""
    from helpers.memory_estimate import estimate

    key = "peak_allocated_bytes" if args.device == "cuda" else "peak_rss_bytes"
    for row in rows:
        if key not in row:
            continue
        predicted = estimate(report["config"], lora, counts, row["batch_size"], device=args.device,
                             checkpointing=checkpointing, label_length=args.label_length,
                             methods=(method,))["methods"][method]
        row[f"predicted_{key}"] = predicted[key]
        row["error"] = round((predicted[key] - row[key]) / row[key], 4)
        if "step_tensor_peak_bytes" in row:
            row["predicted_step_tensor_bytes"] = predicted["step_tensor_bytes"]
            row["tensor_error"] = round(
                (predicted["step_tensor_bytes"] - row["step_tensor_peak_bytes"])
                / row["step_tensor_peak_bytes"], 4)


def environment(device: str) -> dict:
    """Library versions and the device name."""
    import bitsandbytes
    import peft
    import torch
    import transformers

    name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    return {"device_name": name, "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__, "bitsandbytes": bitsandbytes.__version__,
            "cpu_count": os.cpu_count()}


def run(args) -> dict:
    """Measure every method x checkpointing x batch size; returns the results document."""
    from helpers.footprint import count_footprint, lora_settings

    lora = lora_settings(args.preset, r=args.r, target_modules=args.target_modules)
    report, counts = count_footprint(args.model, lora)
    doc = {"model": args.model, "architecture": report["architecture"], "device": args.device,
           "preset": args.preset,
           "lora": report["lora"], "label_length": args.label_length, "steps": args.steps,
           "environment": environment(args.device), "results": {}}
    with tempfile.TemporaryDirectory(prefix="whisper-random-") as workdir:
        source = weights_source(args.model, Path(workdir))
        for checkpointing in args.checkpointing:
            for method in args.methods:
                spec = {"method": method, "source": source, "device": args.device,
                        "preset": args.preset, "r": args.r, "targets": args.target_modules,
                        "checkpointing": checkpointing, "label_length": args.label_length,
                        "steps": args.steps, "track_tensors": args.track_tensors}
                rows = measure_method(spec, args)
                add_predictions(rows, method, args, report, counts, lora, checkpointing)
                doc["results"][f"{method}/{checkpointing}"] = rows
                print(f"{method:10s} {checkpointing:14s} {summary(rows)}", file=sys.stderr)
    return doc


def measure_method(spec: dict, args) -> list[dict]:
    """cuda: one worker over all batch sizes; cpu: one worker per batch size (clean RSS)."""
    if args.device == "cuda":
        return run_worker({**spec, "batch_sizes": args.batch_sizes}, args.timeout)
    rows = []
    for batch_size in args.batch_sizes:
        rows += run_worker({**spec, "batch_sizes": [batch_size]}, args.timeout)
        if "error" in rows[-1] or rows[-1].get("oom"):
            break
    return rows


def summary(rows: list[dict]) -> str:
    """One line: batch -> measured GB (predicted GB) per row."""
    parts = []
    for row in rows:
        key = next((k for k in ("peak_allocated_bytes", "peak_rss_bytes") if k in row), None)
        if key is None:
            parts.append(f"b{row['batch_size']}: {'OOM' if row.get('oom') else 'error'}")
        else:
            parts.append(f"b{row['batch_size']}: {row[key] / 1e9:.2f} GB "
                         f"(predicted {row['predicted_' + key] / 1e9:.2f})")
    return ", ".join(parts)


def repredict(path: Path) -> dict:
    """Recompute the predictions in a results file with the current estimator (no training)."""
    from types import SimpleNamespace

    from helpers.adapters import LoraSettings
    from helpers.footprint import count_footprint

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
                        "random weights, or embedded / embedded-base (packaged real weights)")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 2, 4, 8, 16, 32, 64])
    p.add_argument("--checkpointing", nargs="+", default=["non-reentrant"], choices=CHECKPOINTING)
    p.add_argument("--preset", default="blog", help="LoRA settings from this preset")
    p.add_argument("--r", type=int, help="override the LoRA rank")
    p.add_argument("--target-modules", nargs="+", help="override the LoRA target modules")
    p.add_argument("--label-length", type=int, default=LABEL_LENGTH)
    p.add_argument("--steps", type=int, default=3, help="steps per batch size, the first a warm-up")
    p.add_argument("--track-tensors", action="store_true",
                   help="cpu: also measure live tensor bytes of one step (slow; tiny models)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per worker process")
    p.add_argument("--out", help="output JSON "
                   "(default: benchmarks/results/<gpu|cpu>_memory_<model>.json)")
    p.add_argument("--repredict", metavar="RESULTS_JSON",
                   help="only recompute the predictions stored in a results file")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    """Entry point: a worker run, or the whole benchmark; 2 when cuda is asked but absent."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)   # PEFT asks a deprecated flag
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    if args.repredict:
        for method_key, rows in repredict(Path(args.repredict))["results"].items():
            print(f"{method_key:26s} {summary(rows)}")
        return 0
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        return 2
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
