"""Benchmark 3: inference speed of a trained adapter, served every way, on the same clips and
the same long recording, side by side in one run.

Our path and CTranslate2 directly:
- `8bit_adapter`: the 8-bit base + the LoRA adapter attached (PEFT), `generate` (greedy).
- `merged_fp32`: the adapter merged into the fp32 base (helpers.export.merge.merged_model).
- `ct2_int8`, `ct2_float32`: the merged model converted for CTranslate2
  (helpers.export.ctranslate2.export_ct2, stored float32) and run with that compute type.
The engines users deploy to, on the same exports (requirements-engines.txt):
- `faster_whisper_float32`, `faster_whisper_int8`: faster-whisper 1.2.1, that compute type, its
  default decoding but beam size 1.
- `faster_whisper_int8_vad`: the same with its Silero VAD; the long recording goes through its
  batched pipeline (the speech cut at pauses, 8 pieces at a time).
- `whisper_cpp_f16`, `whisper_cpp_q8_0`: whisper.cpp (pywhispercpp) on the `--to ggml` file,
  f16 and quantized q8_0 by ggml's own quantizer, 2 threads, its default decoding.

Each way runs in its own fresh process (bench_common.run_worker), one after the other, so that
its peak resident memory (VmHWM) is its own: clips batched by 8 where the way batches (ours,
CTranslate2), one at a time where the engine takes one file at a time (faster-whisper,
whisper.cpp), greedy, each transcript at most its clip's token cap
(`helpers.transcribe.decode.token_cap`), on the first N clips of cv-mini's test split; then the long recording
(test clips joined with pauses, helpers.data.long_form) by the way's own long-form decoding
(ours: helpers.transcribe.long_form; CTranslate2 alone has none). Timed: decoding the audio +
features + generation + detokenizing, after one warm-up clip; model loading apart. Real-time
factor = processing seconds / audio seconds (below 1: faster than real time).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import loadavg, run_worker, test_clips, write_result  # noqa: E402

BATCH = 8
WAYS = ("8bit_adapter", "merged_fp32", "ct2_int8", "ct2_float32", "faster_whisper_float32",
        "faster_whisper_int8", "faster_whisper_int8_vad", "whisper_cpp_f16", "whisper_cpp_q8_0")
OUR_WAYS = ("8bit_adapter", "merged_fp32")  # the rows the engines are compared with
LONG_SECONDS = (150, 180)  # the long recording: test clips joined into 2.5-3 minutes
THREADS = 2  # whisper.cpp's threads (the machine's cores); torch and CTranslate2 take all cores


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


def timed_long(transcribe, recording: dict) -> dict:
    """Run `transcribe(path) -> {"text", "segments"}` on the recording; speed and WER."""
    from helpers.evaluate.scoring import score_long_form

    started = time.perf_counter()
    prediction = {"path": recording["path"], **transcribe(recording["path"])}
    seconds = time.perf_counter() - started
    scores = score_long_form([recording], [prediction])
    return {"seconds": round(seconds, 2), "audio_seconds": recording["duration"],
            "real_time_factor": round(seconds / recording["duration"], 4),
            "wer": scores["wer"], "segments": scores["segments"]}


# ------------------------------------------------------------------ one way, in a worker
def torch_way(way: str, adapter: Path):
    """(transcribe clips, transcribe a long file, device) of our path, loaded."""
    from helpers.evaluate.scoring import predict
    from helpers.transcribe.long_form import transcribe_long

    if way == "merged_fp32":
        from helpers.export.merge import merged_model
        from helpers.model.load import default_device

        model, processor = merged_model(adapter)
        model = model.to(default_device())
    else:
        from helpers.model.adapters import attach_adapter
        from helpers.model.load import load_model

        model, processor = load_model("embedded", precision="8bit")
        model = attach_adapter(model, adapter)
    model.eval()
    return (lambda some: predict(model, processor, some, BATCH, progress=False),
            lambda path: transcribe_long(model, processor, path),
            next(model.parameters()).device.type)


def engine_way(way: str, exports: dict):
    """(transcribe clips, transcribe a long file or None, device) of an engine, loaded."""
    from helpers.audio import load_audio
    from helpers.export.engines import EngineOptions, engine_text, load_faster_whisper, transcribe_audio
    from helpers.export.ggml import load_whisper_cpp, whisper_cpp_segments

    if way.startswith("ct2_"):
        from helpers.export.ctranslate2 import ct2_transcribe

        compute = way.removeprefix("ct2_")
        return (lambda some: ct2_transcribe(exports["ct2"], [x["path"] for x in some],
                                            compute_type=compute, batch_size=BATCH), None, "cpu")
    if way.startswith("faster_whisper"):
        model = load_faster_whisper(exports["ct2"], "fp32" if "float32" in way else "8bit")
        options = EngineOptions(vad=way.endswith("_vad"), batch_size=BATCH)
        segments = lambda path: transcribe_audio(model, load_audio(path), options)  # noqa: E731
    else:
        model = load_whisper_cpp(exports[way.removeprefix("whisper_cpp_")], THREADS)
        segments = lambda path: whisper_cpp_segments(model, load_audio(path))  # noqa: E731
    return (lambda some: [engine_text(segments(clip["path"])) for clip in some],
            lambda path: {"segments": (found := segments(path)), "text": engine_text(found)},
            "cpu")


def worker(args) -> dict:
    """One way: load it, time the clips and the recording; with this process's peak RSS."""
    from helpers.footprint.process_memory import peak_rss_bytes

    clips = json.loads(Path(args.clips).read_text())
    recording = json.loads(Path(args.recording).read_text())
    started = time.perf_counter()
    if args.way in OUR_WAYS:
        clips_way, long_way, device = torch_way(args.way, Path(args.adapter))
    else:
        clips_way, long_way, device = engine_way(args.way, json.loads(args.exports))
    row = {"device": device, "load_seconds": round(time.perf_counter() - started, 2),
           **timed(clips_way, clips)}
    if long_way is not None:
        row["long_form"] = timed_long(long_way, recording)
    return {**row, "peak_rss_bytes": peak_rss_bytes()}


# ------------------------------------------------------------------ the run
def exports_for(adapter: Path, workdir: Path) -> tuple[dict, dict]:
    """Export once: CTranslate2 (float32 storage) and whisper.cpp (f16, q8_0).
    Returns ({"ct2", "f16", "q8_0": path}, {name: {"export_seconds", "model_bytes"}})."""
    from helpers.export.ctranslate2 import export_ct2
    from helpers.export.ggml import export_ggml
    from helpers.export.__main__ import folder_bytes

    paths, sizes = {}, {}
    for name, make in (("ct2", lambda: export_ct2(adapter, workdir / "ct2", quantization="float32")),
                       ("f16", lambda: export_ggml(adapter, workdir / "ggml-f16.bin", "f16")),
                       ("q8_0", lambda: export_ggml(adapter, workdir / "ggml-q8_0.bin", "q8_0"))):
        started = time.perf_counter()
        paths[name] = str(make())
        sizes[name] = {"export_seconds": round(time.perf_counter() - started, 2),
                       "model_bytes": folder_bytes(Path(paths[name]))}
    return paths, sizes


def export_of(way: str) -> str | None:
    """Which export a way runs: "ct2", "f16", "q8_0", or None (our path)."""
    if way in OUR_WAYS:
        return None
    return "ct2" if way.startswith(("ct2", "faster")) else way.removeprefix("whisper_cpp_")


def run(out_dir: Path, adapter: Path, clips: int, long_seconds=LONG_SECONDS) -> Path:
    """Benchmark 3 on the first `clips` test clips and one long recording -> inference.json."""
    from helpers.data.long_form import build_long_form_from_clips
    from helpers.transcribe.decode import token_cap_rule

    started, load = time.perf_counter(), loadavg()
    rows = test_clips(clips)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as tmp:
        tmp = Path(tmp)
        recording = build_long_form_from_clips(test_clips(80), tmp / "long", count=1,
                                               min_seconds=long_seconds[0],
                                               max_seconds=long_seconds[1], seed=42)[0]
        (tmp / "clips.json").write_text(json.dumps(rows))
        (tmp / "recording.json").write_text(json.dumps(recording))
        print("[inference] exporting for CTranslate2 and whisper.cpp ...", file=sys.stderr, flush=True)
        exports, sizes = exports_for(adapter, tmp)
        for way in WAYS:
            print(f"[inference] {way} ...", file=sys.stderr, flush=True)
            results[way] = {**sizes.get(export_of(way), {}), **run_worker("bench_inference.py", [
                "--way", way, "--adapter", str(adapter), "--clips", str(tmp / "clips.json"),
                "--recording", str(tmp / "recording.json"), "--exports", json.dumps(exports)])}
    settings = {"model": "embedded (tiny.en)", "adapter": str(adapter), "clips": clips,
                "split": "test", "batch_size": BATCH, "long_form_seconds": recording["duration"],
                "decoding": f"greedy (beam size 1) with each way's own fallback; ours: {token_cap_rule()}",
                "timed": "audio decode + features + generate + detokenize, after 1 warm-up clip"}
    path = write_result(out_dir, "inference", settings, results, started, load)
    chart(results, out_dir / "inference.png")
    return path


def chart(results: dict, path: Path) -> None:
    """Bars of the real-time factor of each way, short clips and the long recording."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 3.8))
    names = list(results)
    clips = [results[n]["real_time_factor"] for n in names]
    long = [results[n].get("long_form", {}).get("real_time_factor", 0) for n in names]
    positions = range(len(names))
    axis.bar([p - 0.2 for p in positions], clips, 0.4, label="short clips", color="#4c72b0")
    axis.bar([p + 0.2 for p in positions], long, 0.4, label="long recording", color="#dd8452")
    axis.set_xticks(list(positions), [n.replace("_", "\n", 1) for n in names], fontsize=7)
    axis.set(ylabel="real-time factor (lower is faster)",
             title="Inference on a CPU, tiny.en + adapter")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def parse_worker_args(argv=None):
    """The worker's arguments (bench_common.run_worker passes --worker first)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", action="store_true", required=True)
    parser.add_argument("--way", choices=WAYS, required=True)
    for name in ("--adapter", "--clips", "--recording", "--exports"):
        parser.add_argument(name, required=True)
    return parser.parse_args(argv)


if __name__ == "__main__":
    print(json.dumps(worker(parse_worker_args())))
