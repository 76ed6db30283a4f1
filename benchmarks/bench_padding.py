"""Benchmark 7 (padding): how a clip is padded to Whisper's 30 s, in training and in decoding.

Whisper hears 3000 log-mel frames. transformers' feature extractor (training, and our decoding
before) and whisper.cpp pad a shorter clip's *audio* with silence; OpenAI's `transcribe` and
faster-whisper pad the clip's *log-mel* with zeros (helpers.data.features.PADDINGS). A model
learns the padding it was trained with. This benchmark trains the embedded default (tiny.en,
8-bit base, the recipe's LoRA, the `embedded` preset's 30 steps of batch 8, seed 42) once per
zero_padding_share (0: every example padded with silence, as before this benchmark existed;
0.5: a seeded half with zeros; 1: all with zeros), then transcribes data/cv-mini/en test
(WER) and notebook 05's long recording (its test clips joined into 60-70 s, seed 42) with
the base and each adapter (merged into the fp32 base):
- in our path (helpers.evaluate.scoring.predict, helpers.transcribe.long_form.transcribe_long,
  fp32, Whisper's temperature fallback), once per padding (`decoding_padding`);
- in faster-whisper (float32, its default decoding but beam size 1; it pads with zeros), from
  the CTranslate2 export (helpers.export.ctranslate2, float32);
- in whisper.cpp (pywhispercpp, its default decoding; it pads with silence), from the ggml
  export (helpers.export.ggml, f16).
Which padding training and our decoding use (helpers/data/features.py TRAIN_ZERO_SHARE,
INFERENCE_PADDING) is chosen from these rows. Packing clips into 30 s windows changes how much
padding training sees: run this again then.

    python benchmarks/run.py --only padding      # three trainings + 16 transcriptions of the set
    python benchmarks/run.py --only padding --quick
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import CORPUS, loadavg, write_result  # noqa: E402
from bench_long_form import corpus_clips, train_adapter  # noqa: E402

ZERO_SHARES = (0.0, 0.5, 1.0)  # zero_padding_share values trained
LONG_FORM_SECONDS = 60         # notebook 05's LONG_FORM_SECONDS: a 60-70 s recording
SEED = 42                      # the embedded preset's seed (training, the recording)


def row_name(share: float) -> str:
    """The results key of an adapter trained with zero_padding_share `share`."""
    return f"zeros_{share:g}"


def long_prediction(path, segments: list[dict]) -> dict:
    """An engine's segments as the prediction score_long_form reads."""
    from helpers.export.engines import engine_text

    return {"path": str(path), "text": engine_text(segments), "segments": segments}


def scores(clips: list[dict], texts: list[str], recording: dict, long_form: dict) -> dict:
    """{"clips": WER/CER/loops of the clips, "long_form": WER, insertions, segments}."""
    from helpers.evaluate.scoring import score, score_long_form

    whole = score_long_form([recording], [long_form])
    return {"clips": score(clips, texts),
            "long_form": {key: whole[key] for key in ("wer", "cer", "insertions", "segments")}}


def our_path(model, processor, clips: list[dict], recording: dict) -> dict:
    """Our decoding with each padding: {"ours_silence": scores, "ours_zeros": scores}."""
    from helpers.data.features import PADDINGS, decoding_padding
    from helpers.evaluate.scoring import predict
    from helpers.transcribe.long_form import transcribe_long

    rows = {}
    for padding in PADDINGS:
        with decoding_padding(padding):
            texts = predict(model, processor, clips, progress=False)
            rows[f"ours_{padding}"] = scores(clips, texts, recording,
                                             transcribe_long(model, processor, recording["path"]))
    return rows


def engine_rows(ct2_folder: Path, ggml_file: Path, clips: list[dict], recording: dict) -> dict:
    """faster-whisper (float32, beam 1) and whisper.cpp on the clips and the recording."""
    from helpers.audio import load_audio
    from helpers.export.engines import EngineOptions, engine_text, load_faster_whisper, transcribe_audio
    from helpers.export.ggml import load_whisper_cpp, whisper_cpp_segments

    audios = [load_audio(clip["path"]) for clip in clips]
    long_audio = load_audio(recording["path"])
    model, options = load_faster_whisper(ct2_folder, "fp32"), EngineOptions()
    rows = {"faster_whisper": scores(
        clips, [engine_text(transcribe_audio(model, audio, options)) for audio in audios],
        recording, long_prediction(recording["path"], transcribe_audio(model, long_audio, options)))}
    cpp = load_whisper_cpp(ggml_file)
    rows["whisper_cpp"] = scores(
        clips, [engine_text(whisper_cpp_segments(cpp, audio)) for audio in audios],
        recording, long_prediction(recording["path"], whisper_cpp_segments(cpp, long_audio)))
    return rows


def measure(adapter: Path | None, clips: list[dict], recording: dict, workdir: Path) -> dict:
    """Every way of one model: the base (adapter None) or the adapter merged into it."""
    from helpers.export.ctranslate2 import convert_to_ct2
    from helpers.export.ggml import write_ggml
    from helpers.export.merge import merged_model, save_plain_model
    from helpers.model.load import load_model

    model, processor = (merged_model(adapter) if adapter else
                        load_model("embedded", precision="fp32", device="cpu"))
    model.eval()
    rows = our_path(model, processor, clips, recording)
    plain = save_plain_model(model, processor, workdir / "plain")
    ct2 = convert_to_ct2(plain, workdir / "ct2", "float32")
    ggml = write_ggml(model, processor, workdir / "ggml-model.bin", "f16")
    return {**rows, **engine_rows(ct2, ggml, clips, recording)}


def run(out_dir: Path, steps: int = 30, batch: int = 8, clip_count: int = 80,
        long_seconds: float = LONG_FORM_SECONDS, shares=ZERO_SHARES,
        train_clips: int | None = None) -> Path:
    """Train one adapter per zero_padding_share, measure the base and each -> padding.json."""
    from helpers.data.long_form import build_long_form_from_clips

    started, load = time.perf_counter(), loadavg()
    clips = corpus_clips(CORPUS, clip_count)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-padding-") as tmp:
        tmp = Path(tmp)
        recording = build_long_form_from_clips(clips, tmp / "recording", count=1,
                                               min_seconds=long_seconds,
                                               max_seconds=long_seconds + 10, seed=SEED)[0]
        settings = {"model": "embedded (tiny.en)", "corpus": "data/cv-mini/en",
                    "clips": len(clips), "long_form_seconds": round(recording["duration"], 1),
                    "train_steps": steps, "train_batch": batch,
                    "zero_padding_shares": list(shares), "seed": SEED,
                    "ours": "fp32, the adapter merged, Whisper's temperature fallback",
                    "faster_whisper": "1.2.1, float32, beam size 1, its other defaults",
                    "whisper_cpp": "pywhispercpp (whisper.cpp), f16 ggml, its default decoding"}
        print("[padding] the base ...", file=sys.stderr, flush=True)
        results["base"] = measure(None, clips, recording, tmp / "base")
        for share in shares:
            adapter, training = train_adapter(0.0, tmp / "runs", steps=steps, batch=batch,
                                              train_clips=train_clips,
                                              settings={"zero_padding_share": share, "seed": SEED},
                                              name=row_name(share))
            print(f"[padding] measuring {row_name(share)} ...", file=sys.stderr, flush=True)
            results[row_name(share)] = {"zero_padding_share": share,
                                        "train_seconds": training["train_seconds"],
                                        **measure(adapter, clips, recording, tmp / row_name(share))}
            # written after every row: a long run stopped halfway keeps what it measured
            path = write_result(out_dir, "padding", settings, results, started, load)
    return path
