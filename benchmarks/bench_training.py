"""Benchmark 1 (training methods) and 4 (memory versus batch size), on the embedded model.

Methods, same batch, steps, data order and data: full fine-tuning fp32, LoRA on an fp32
base, LoRA on an 8-bit base, LoRA on a 4-bit base (helpers.model.adapters.add_lora, the recipe's
r=32/alpha=64 on q_proj,v_proj; gradient checkpointing for every method). Each method runs
in its own process (run_worker) so that its peak resident memory (VmHWM, taken right
after training, before any decoding) is its own. Per method: seconds per step (median of
the steps after the first, which is a warm-up), peak memory while training (the high-water
mark is reset after loading the model and its data, as benchmarks/gpu_memory.py does), trainable parameters, bytes of
the saved checkpoint (the adapter's folder for LoRA, the model's safetensors for full
fine-tuning) and WER/CER of greedy transcription of test clips after training, decoded
with an fp32 base (the adapter attached to it) so that only training differs. Learning
rates: 1e-3 for LoRA (the recipe's), 1e-5 for full fine-tuning; every method uses the
recipe's 50-step warmup, so a short benchmark measures the first steps of its schedule.

    python benchmarks/bench_training.py --worker --method lora_8bit --batch 8 --steps 12 \\
        --wer-clips 24 --save-adapter DIR       # one measurement, one JSON line on stdout
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (CORPUS, folder_bytes, loadavg, median, run_worker,  # noqa: E402
                          test_clips, write_result)

METHODS = {  # name: (base precision, LoRA?, learning rate)
    "full_fp32": ("fp32", False, 1e-5),  # full fine-tuning: the usual Whisper lr; 1e-3 would wreck it
    "lora_fp32": ("fp32", True, 1e-3),   # the recipe's lr for LoRA
    "lora_8bit": ("8bit", True, 1e-3),   # the recipe
    "lora_4bit": ("4bit", True, 1e-3),   # QLoRA's NF4 base
}
CURVE_METHODS = ("full_fp32", "lora_8bit")
WARMUP_STEPS = 50  # the recipe's warmup: a short benchmark measures the first steps of its schedule


def step_timer():
    """A TrainerCallback whose `.seconds` lists the wall seconds of every optimizer step."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.seconds, self._start = [], None

        def on_step_begin(self, args, state, control, **kwargs):
            self._start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.seconds.append(time.perf_counter() - self._start)

    return StepTimer()


def load_method_model(method: str):
    """(model ready to train, processor) for `method`; LoRA via helpers.model.adapters.add_lora."""
    from helpers.model.adapters import add_lora
    from helpers.model.load import load_model
    from helpers.train.trainer import process_device

    precision, lora, _ = METHODS[method]
    model, processor = load_model("embedded", precision=precision, device=process_device())
    if lora:
        return add_lora(model), processor
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    return model, processor


def train_features(processor, clips: int):
    """Features + labels of the first `clips` clips of cv-mini's train split (in memory)."""
    from helpers.data.corpora import load_corpus
    from helpers.data.features import prepare_features

    rows = load_corpus(str(CORPUS), split="train").select(range(clips))
    return prepare_features(rows, processor, batch_size=16)


def train_steps(model, processor, method: str, batch: int, steps: int, workdir: Path):
    """Train `steps` steps with the project's Trainer (helpers.train.trainer); returns step seconds."""
    from helpers.config import make_config
    from helpers.footprint.process_memory import reset_peak_rss
    from helpers.run import RunDir
    from helpers.train.trainer import build_trainer

    config = make_config("embedded", precision=METHODS[method][0], batch_size=batch,
                         max_steps=steps, learning_rate=METHODS[method][2],
                         warmup_steps=WARMUP_STEPS, logging_steps=1, save_steps=10**6)
    config = replace(config, eval_steps=None)  # no WER during training: it would skew step times
    timer = step_timer()
    trainer = build_trainer(model, processor, train_features(processor, batch * steps), config,
                            RunDir("bench", workdir), callbacks=[timer])
    reset = reset_peak_rss()  # from here on, the peak counts the training only
    trainer.train()
    return timer.seconds, reset


def save_checkpoint(model, method: str, out_dir: Path) -> int:
    """Save what a checkpoint of `method` must hold (adapter, or all weights); returns bytes."""
    from helpers.model.adapters import save_adapter

    if METHODS[method][1]:
        save_adapter(model, out_dir, "embedded")
    else:
        model.save_pretrained(out_dir, safe_serialization=True)
    return folder_bytes(out_dir)


def fp32_wer(model, method: str, checkpoint: Path, processor, clips: list[dict]) -> dict:
    """WER of the trained result decoded in fp32 (adapter attached to an fp32 base)."""
    from helpers.model.adapters import attach_adapter
    from helpers.model.load import load_model
    from helpers.train.trainer import transcription_wer

    if METHODS[method][1]:
        del model
        base, processor = load_model("embedded", precision="fp32")
        model = attach_adapter(base, checkpoint)
    return transcription_wer(model, processor, clips, batch_size=8)


def worker(args) -> dict:
    """One method in this process: train, measure, save, score; returns the measurement."""
    from helpers.model.adapters import parameter_counts
    from helpers.footprint.process_memory import peak_rss_bytes
    from helpers.train.trainer import peak_memory_bytes

    model, processor = load_method_model(args.method)
    trainable, total = parameter_counts(model)
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        seconds, reset = train_steps(model, processor, args.method, args.batch, args.steps,
                                     Path(tmp))
        result = {"method": args.method, "batch_size": args.batch, "steps": args.steps,
                  "learning_rate": METHODS[args.method][2],
                  "seconds_per_step": median(seconds[1:] or seconds),
                  "step_seconds": [round(s, 3) for s in seconds],
                  # peak while training (model resident + steps), when Linux let us reset
                  # the high-water mark after loading; else the whole process's peak
                  "peak_rss_bytes": peak_rss_bytes(), "rss_peak_reset_before_training": reset,
                  "peak_memory": peak_memory_bytes(),
                  "trainable_params": trainable, "total_params": total}
        if args.wer_clips:
            checkpoint = Path(args.save_adapter or Path(tmp) / "checkpoint")
            result["checkpoint_bytes"] = save_checkpoint(model, args.method, checkpoint)
            result["wer"] = fp32_wer(model, args.method, checkpoint, processor,
                                     test_clips(args.wer_clips))
    return result


def base_wer(wer_clips: int) -> dict:
    """WER of the untrained fp32 base on the same clips (the starting point)."""
    from helpers.model.load import load_model
    from helpers.train.trainer import transcription_wer

    model, processor = load_model("embedded", precision="fp32")
    return transcription_wer(model, processor, test_clips(wer_clips), batch_size=8)


def run_methods(out_dir: Path, batch: int, steps: int, wer_clips: int,
                adapter_dir: Path | None = None, with_base: bool = True) -> Path:
    """Benchmark 1: every method in its own worker -> out_dir/training_methods.json.

    with_base: also transcribe the clips with the untrained base (the starting WER).
    """
    started, load = time.perf_counter(), loadavg()
    results = {"base_fp32_untrained": {"wer": base_wer(wer_clips)}} if with_base else {}
    for method in METHODS:
        extra = ["--save-adapter", str(adapter_dir)] if adapter_dir and method == "lora_8bit" else []
        print(f"[training] {method} ...", file=sys.stderr, flush=True)
        results[method] = run_worker("bench_training.py", [
            "--method", method, "--batch", str(batch), "--steps", str(steps),
            "--wer-clips", str(wer_clips), *extra])
    settings = {"model": "embedded (tiny.en)", "corpus": "data/cv-mini/en", "batch_size": batch,
                "steps": steps, "wer_clips": wer_clips, "gradient_checkpointing": True,
                "warmup_steps": WARMUP_STEPS, "lr_scheduler": "constant_with_warmup",
                "learning_rates": {m: lr for m, (_, _, lr) in METHODS.items()},
                "decoding": "greedy, fp32 base"}
    return write_result(out_dir, "training_methods", settings, results, started, load)


def larger_architecture(model: str, batch_sizes: list[int]) -> dict:
    """Peak RSS of full fine-tuning vs LoRA 8-bit on a bigger Whisper, random weights.

    tiny.en's weights are small next to its activations, so its curve understates what LoRA
    on 8-bit saves. Memory does not depend on weight values, so benchmarks/gpu_memory.py
    (CPU mode) trains `model` built with random weights on synthetic 30 s inputs, one fresh
    process per point, one step (AdamW state is made in it), reentrant checkpointing for both
    methods; its rows carry helpers.footprint.estimate's prediction. Returns
    {"model", "label_length", "full_fp32": rows, "lora_8bit": rows}.
    """
    import gpu_memory

    args = gpu_memory.parse_args([
        "--device", "cpu", "--model", model, "--methods", "full_fp16", "lora_8bit",
        "--batch-sizes", *map(str, batch_sizes), "--steps", "1", "--checkpointing", "reentrant"])
    print(f"[memory curve] {model}, random weights, batches {batch_sizes} ...", file=sys.stderr,
          flush=True)
    doc = gpu_memory.run(args)
    keep = ("batch_size", "peak_rss_bytes", "rss_file_bytes_after_step",
            "predicted_peak_rss_bytes", "error", "step_seconds")
    rows = {ours: [{k: row[k] for k in keep if k in row}
                   for row in doc["results"][f"{theirs}/reentrant"]]
            for ours, theirs in (("full_fp32", "full_fp16"), ("lora_8bit", "lora_8bit"))}
    for name, measured in rows.items():
        failed = [row for row in measured if "peak_rss_bytes" not in row]
        if failed or len(measured) != len(batch_sizes):
            raise RuntimeError(f"{model} {name}: a worker failed: {failed or measured}")
    return {"model": model, "weights": "random weights built by benchmarks/gpu_memory.py",
            "inputs": "synthetic 30 s log-mel", "label_length": doc["label_length"],
            "steps": 1, "checkpointing": "reentrant", **rows}


def run_curve(out_dir: Path, batch_sizes: list[int], steps: int,
              known: dict | None = None, larger: tuple[str, list[int]] | None = None) -> Path:
    """Benchmark 4: peak RSS per batch size, full fine-tuning vs LoRA 8-bit -> memory_curve.json.

    `known`: training_methods.json's results; a point at the same batch size is taken from
    there (its peak RSS is measured before decoding, so it is the training peak) instead of
    being run again; such points say so in "from". `larger`: (architecture, batch sizes)
    also measured with random weights (larger_architecture), stored under "larger_model".
    """
    started, load, results = time.perf_counter(), loadavg(), {}
    for method in CURVE_METHODS:
        results[method] = []
        for batch in batch_sizes:
            row = (known or {}).get(method)
            source = f"training_methods.json results.{method}"
            if not row or row["batch_size"] != batch:
                print(f"[memory curve] {method} batch {batch} ...", file=sys.stderr, flush=True)
                row, source = run_worker("bench_training.py", [
                    "--method", method, "--batch", str(batch), "--steps", str(steps),
                    "--wer-clips", "0"]), "own worker"
            results[method].append({"batch_size": batch, "peak_rss_bytes": row["peak_rss_bytes"],
                                    "steps": row["steps"], "from": source})
    if larger:
        results["larger_model"] = larger_architecture(*larger)
    settings = {"model": "embedded (tiny.en)", "batch_sizes": batch_sizes, "steps": steps,
                "measure": "peak RSS of a fresh process (VmHWM), high-water mark reset "
                           "after loading", "gradient_checkpointing": True,
                "larger_model": larger[0] if larger else None}
    path = write_result(out_dir, "memory_curve", settings, results, started, load)
    curve_chart(results, out_dir / "memory_curve.png")
    return path


def curve_chart(results: dict, path: Path) -> None:
    """Peak RSS (GiB) against batch size, one line per method: tiny.en, and the larger
    random-weight architecture in a second panel when measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("tiny.en, real weights, cv-mini", results)]
    if "larger_model" in results:
        larger = results["larger_model"]
        panels.append((f"{larger['model']}, random weights, synthetic", larger))
    figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 3.6), squeeze=False)
    for axis, (title, data) in zip(axes[0], panels):
        for method in CURVE_METHODS:
            rows = data[method]
            axis.plot([r["batch_size"] for r in rows],
                      [r["peak_rss_bytes"] / 2**30 for r in rows], marker="o", label=method)
        axis.set(xlabel="batch size", ylabel="peak RSS (GiB)", xscale="log",
                 title=f"CPU training memory: {title}")
        axis.set_xticks([r["batch_size"] for r in data[CURVE_METHODS[0]]],
                        [str(r["batch_size"]) for r in data[CURVE_METHODS[0]]])
        axis.xaxis.set_minor_locator(plt.NullLocator())
        axis.set_ylim(bottom=0)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def methods_chart(path_json: Path) -> None:
    """Bar charts of seconds/step and peak memory per method -> training_methods.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(path_json.read_text())["results"]
    methods = [m for m in METHODS if m in data]
    figure, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    panels = [("seconds per step", lambda r: r["seconds_per_step"]),
              ("peak RSS (GiB)", lambda r: r["peak_rss_bytes"] / 2**30),
              ("WER after training (%)", lambda r: 100 * r["wer"]["eval_wer"])]
    for axis, (title, value) in zip(axes, panels):
        bars = axis.bar(methods, [value(data[m]) for m in methods],
                        color=["#888", "#4c72b0", "#dd8452", "#55a868"][:len(methods)])
        axis.bar_label(bars, fmt="%.2f", fontsize=8)
        axis.set_title(title, fontsize=10)
        axis.tick_params(axis="x", labelrotation=20, labelsize=8)
    figure.tight_layout()
    figure.savefig(path_json.with_suffix(".png"), dpi=110)
    plt.close(figure)


def parse_args(argv=None):
    """Worker arguments."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", action="store_true", required=True)
    parser.add_argument("--method", choices=sorted(METHODS), required=True)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--wer-clips", type=int, default=24)
    parser.add_argument("--save-adapter", default=None, help="keep the LoRA adapter here")
    return parser.parse_args(argv)


if __name__ == "__main__":
    import warnings

    warnings.filterwarnings("ignore")
    print(json.dumps(worker(parse_args())))
