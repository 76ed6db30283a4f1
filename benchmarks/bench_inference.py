"""Benchmark 3: inference speed of a trained adapter, served three ways, on the same clips.

- `8bit_adapter`: the 8-bit base + the LoRA adapter attached (PEFT), `generate` (greedy).
- `merged_fp32`: the adapter merged into the fp32 base (helpers.export.merge.merged_model).
- `ct2_int8`, `ct2_float32`: the merged model converted for CTranslate2
  (helpers.export.ctranslate2.export_ct2, stored float32) and run with that compute type.

All batched (batch 8), greedy, each transcript at most its clip's token cap
(`helpers.transcribe.decode.token_cap`), on the first N clips of cv-mini's
test split. The transformers ways run on the GPU when there is one (the merged model is
moved there after merging on the CPU); CTranslate2 runs on the CPU (this project installs
its CPU build). Every row names its device. Timed: decoding the audio + features + generation + detokenizing, after one
warm-up clip; model loading is timed separately. Real-time factor = processing seconds /
audio seconds (below 1: faster than real time). WER is reported to show the ways agree.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import loadavg, test_clips, write_result  # noqa: E402

BATCH = 8


def timed(transcribe, clips: list[dict]) -> dict:
    """Run `transcribe(clips) -> texts` after a one-clip warm-up; speed and WER."""
    from helpers.evaluate.scoring import score

    transcribe(clips[:1])
    started = time.perf_counter()
    texts = transcribe(clips)
    seconds = time.perf_counter() - started
    audio = sum(clip["duration"] for clip in clips)
    return {"seconds": round(seconds, 2), "audio_seconds": round(audio, 2),
            "real_time_factor": round(seconds / audio, 4),
            "clips_per_second": round(len(clips) / seconds, 3), "wer": score(clips, texts)}


def torch_way(load, clips: list[dict]) -> dict:
    """Load with `load() -> (model, processor)`, then time helpers.evaluate.scoring.predict."""
    from helpers.evaluate.scoring import predict

    started = time.perf_counter()
    model, processor = load()
    model.eval()
    loaded = time.perf_counter() - started
    result = timed(lambda some: predict(model, processor, some, BATCH, progress=False), clips)
    return {"device": next(model.parameters()).device.type, "load_seconds": round(loaded, 2),
            **result}


def load_merged(adapter: Path):
    """(the adapter merged into the fp32 base, processor), on the GPU when there is one."""
    from helpers.export.merge import merged_model
    from helpers.model.load import default_device

    model, processor = merged_model(adapter)
    return model.to(default_device()), processor


def load_8bit_adapter(adapter: Path):
    """(8-bit base with the adapter attached, processor)."""
    from helpers.model.adapters import attach_adapter
    from helpers.model.load import load_model

    model, processor = load_model("embedded", precision="8bit")
    return attach_adapter(model, adapter), processor


def ct2_ways(adapter: Path, clips: list[dict], workdir: Path) -> dict:
    """Export once (float32 storage), then time int8 and float32 compute."""
    from helpers.export.ctranslate2 import ct2_transcribe, export_ct2
    from helpers.export.__main__ import folder_bytes

    started = time.perf_counter()
    folder = export_ct2(adapter, workdir / "ct2", quantization="float32")
    exported = round(time.perf_counter() - started, 2)
    results = {}
    for compute in ("int8", "float32"):
        run = lambda some, c=compute: ct2_transcribe(folder, [x["path"] for x in some],  # noqa: E731
                                                     compute_type=c, batch_size=BATCH)
        results[f"ct2_{compute}"] = {"device": "cpu", "export_seconds": exported,
                                     "model_bytes": folder_bytes(folder), **timed(run, clips)}
    return results


def run(out_dir: Path, adapter: Path, clips: int) -> Path:
    """Benchmark 3 on the first `clips` test clips -> out_dir/inference.json."""
    from helpers.transcribe.decode import token_cap_rule

    started, load = time.perf_counter(), loadavg()
    rows = test_clips(clips)
    results = {}
    print("[inference] 8-bit + adapter ...", file=sys.stderr, flush=True)
    results["8bit_adapter"] = torch_way(lambda: load_8bit_adapter(adapter), rows)
    print("[inference] merged fp32 ...", file=sys.stderr, flush=True)
    results["merged_fp32"] = torch_way(lambda: load_merged(adapter), rows)
    print("[inference] CTranslate2 ...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-ct2-") as tmp:
        results.update(ct2_ways(adapter, rows, Path(tmp)))
    settings = {"model": "embedded (tiny.en)", "adapter": str(adapter), "clips": clips,
                "split": "test", "batch_size": BATCH, "decoding": f"greedy, {token_cap_rule()}",
                "timed": "audio decode + features + generate + detokenize, after 1 warm-up clip"}
    path = write_result(out_dir, "inference", settings, results, started, load)
    chart(results, out_dir / "inference.png")
    return path


def chart(results: dict, path: Path) -> None:
    """Bar chart of clips per second for each way."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.4))
    names = list(results)
    labels = [f"{n}\n({results[n].get('device', 'cpu')})" for n in names]
    bars = axis.bar(labels, [results[n]["clips_per_second"] for n in names], color="#4c72b0")
    axis.bar_label(bars, fmt="%.2f", fontsize=8)
    axis.set(ylabel="clips per second (batch 8)", title="Inference, tiny.en + adapter")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
