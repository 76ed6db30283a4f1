"""Benchmark 6 (long_form): does fine-tuning keep Whisper's timestamps, and does TIMESTAMP_SHARE help?

Whisper transcribes audio over 30 s window by window, each window moved along by the
timestamps the model predicts. A model fine-tuned only on `<|notimestamps|>` labels (the
recipe) tends to stop predicting them (transformers issue 30148). This benchmark trains the
embedded default (tiny.en, 8-bit base, the recipe's LoRA, data/cv-mini/en train, the
`embedded` preset's 30 steps of batch 8, 5 warmup steps then constant, seed 42) once per
TIMESTAMP_SHARE (0, the recipe, and each share asked for), each through the project's own
stages (helpers.data.prepare.prepare_run_data, helpers.train.trainer.run_training). Then the base (no
adapter) and each adapter transcribe a long-form set made from data/cv-mini/en test
(helpers.data.long_form.build_long_form_set: clips joined with pauses into 1-3 minute
recordings, with the true start and end of each sentence) by helpers.transcribe.long_form.transcribe_long
(Whisper's sequential long-form decoding with its temperature fallback), and each is scored:
- WER of the whole recordings, the share of 30 s windows where the model emitted
  timestamps (closed a segment), and the mean absolute error of sentence start and end
  times, each true boundary against the nearest predicted segment boundary
  (helpers.evaluate.scoring.score_long_form);
and, for comparison, WER on short test clips (one window each, no timestamps asked).

    python benchmarks/run.py --only long_form      # estimated at 15 minutes on 2 quiet CPU cores
    python benchmarks/run.py --only long_form --quick
"""
from __future__ import annotations

import gc
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import CORPUS, loadavg, write_result  # noqa: E402

SHARES = (0.0, 0.3, 0.5)  # TIMESTAMP_SHARE values trained; 0 is the recipe
RECORDINGS = 3            # long-form recordings of 1 to 3 minutes from the test split
# The base the adapters are measured on: the one they were trained on, as in notebooks 05
# and 06. fp32 decodes about twice as fast on a CPU (bitsandbytes' int8 matmul costs about
# the same at every decoding step, and long-form decoding runs one window at a time):
# measured on a 66 s recording with the demo's 30-step adapter, 7.5 s in 8-bit and 3.6 s
# in fp32 (2 quiet cores); the base's transcript was the same on both.
EVAL_PRECISION = "8bit"
SHORT_CLIPS = 24          # short test clips transcribed for the short-clip WER
WER_SLACK = 0.02          # a share may cost this much long-form WER (2 points) vs share 0
SAMPLE_CHARS = 300        # transcript characters kept per row, for a reader to see what changed


def corpus_name(corpus: Path) -> str:
    """`corpus` relative to the repository (data/cv-mini/en), or as given when outside it."""
    from bench_common import REPO

    path = Path(corpus).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(corpus)


def corpus_clips(corpus: Path, count: int, split: str = "test") -> list[dict]:
    """The first `count` clips of a corpus split as {"path", "sentence"}."""
    from helpers.data.corpora import load_corpus

    rows = load_corpus(str(corpus), split=split)
    rows = rows.select(range(min(count, len(rows))))
    return [{"path": row["audio"], "sentence": row["sentence"]} for row in rows]


def row_name(share: float) -> str:
    """The results key of an adapter trained with `share`: share_0, share_0.3, ..."""
    return f"share_{share:g}"


def train_adapter(share: float, workdir: Path, model: str = "embedded", steps: int = 30,
                  batch: int = 8, train_clips: int | None = None, corpus: Path = CORPUS,
                  precision: str = "8bit", settings: dict | None = None,
                  name: str | None = None) -> tuple[Path, dict]:
    """Notebooks 01 and 04 for one TIMESTAMP_SHARE: the `embedded` preset with `model`,
    `corpus` and `precision`, one clip a sample (the share is of the clips), `steps` steps of
    batch `batch` (no WER during training, no checkpoints) in
    `workdir`/<name, default the row name>/; `settings`: more RunConfig overrides.
    Returns (adapter folder, {"timestamp_share", "train_seconds",
    "final_loss", "timestamped_clips", "train_clips"})."""
    from datasets import load_from_disk

    from helpers.config import start_run
    from helpers.model.load import load_processor
    from helpers.data.prepare import prepare_run_data
    from helpers.train.trainer import run_training

    name = name or row_name(share)
    run, config = start_run(name, "embedded", workdir, **(settings or {}), model=model, pack=False,
                            corpus=str(corpus), precision=precision, timestamp_share=share,
                            max_steps=steps, batch_size=batch, max_train_clips=train_clips, eval_steps=0, save_steps=10**6,
                            logging_steps=max(1, min(5, steps)))
    prepare_run_data(config, run, load_processor(config.model))
    features = load_from_disk(str(run.features_dir("train")))
    flagged = sum(features["timestamps"]) if "timestamps" in features.column_names else 0
    print(f"[training] {name}: {steps} steps of batch {batch} ...",
          file=sys.stderr, flush=True)
    metrics = run_training(config, run)
    return run.adapter_dir, {"timestamp_share": share, "train_seconds": metrics["train_seconds"],
                             "final_loss": metrics["final_loss"], "train_clips": len(features),
                             "timestamped_clips": flagged}


def long_form_scores(model, processor, recordings: list[dict], **decode) -> dict:
    """Transcribe every recording with transcribe_long; WER, timestamp window share, sentence
    start/end MAE, seconds and real-time factor, and the first transcript's beginning."""
    from helpers.evaluate.scoring import score_long_form
    from helpers.transcribe.long_form import transcribe_long

    started = time.perf_counter()
    predictions = [transcribe_long(model, processor, rec["path"], **decode) for rec in recordings]
    seconds = time.perf_counter() - started
    audio = sum(rec["duration"] for rec in recordings)
    windows = sum(len(prediction["windows"]) for prediction in predictions)
    return {**score_long_form(recordings, predictions), "windows": windows,
            "seconds": round(seconds, 1), "real_time_factor": round(seconds / audio, 4),
            "sample": predictions[0]["text"][:SAMPLE_CHARS] if predictions else ""}


def short_clip_wer(model, processor, clips: list[dict], fallback: bool = True,
                   max_new_tokens: int | None = None) -> dict:
    """helpers.evaluate.scoring.score (WER, CER, loops) of `clips` transcribed in one batch, one
    window each, no timestamps asked (as notebook 05 does); each at most its clip's token
    cap (`helpers.transcribe.decode.token_cap`), or `max_new_tokens` when that is lower."""
    from helpers.audio import load_audio
    from helpers.evaluate.scoring import score
    from helpers.transcribe.decode import transcribe_arrays

    audios = [load_audio(clip["path"]) for clip in clips]
    return score(clips, transcribe_arrays(model, processor, audios,
                                          max_new_tokens, fallback))


def measure(model, processor, recordings: list[dict], clips: list[dict], **decode) -> dict:
    """{"long_form": long_form_scores, "short_clips": short_clip_wer} of one model;
    `decode`: transcribe_long's keywords (fallback, max_new_tokens), used for both."""
    from helpers.train.trainer import generation_mode

    with generation_mode(model):
        return {"long_form": long_form_scores(model, processor, recordings, **decode),
                "short_clips": short_clip_wer(model, processor, clips,
                                              decode.get("fallback", True),
                                              decode.get("max_new_tokens"))}


def model_row(model_source: str, adapter: Path | None, recordings: list[dict],
              clips: list[dict], precision: str = "8bit", **decode) -> dict:
    """Load the base at `precision` (with `adapter` when given) and measure it."""
    from helpers.model.adapters import load_for_transcription

    model, processor = load_for_transcription(model_source, str(adapter) if adapter else None,
                                              None, precision)
    row = measure(model, processor, recordings, clips, **decode)
    del model
    gc.collect()
    return row


def recommend(results: dict, shares) -> dict:
    """The share to recommend, by a rule fixed before the run: among the shares above 0
    whose long-form WER is at most WER_SLACK above share 0's, the one with the lowest mean
    of sentence start and end MAE (ties: the smaller share). When no share qualifies, the
    one with the lowest long-form WER. Returns {"row", "share", "rule"}."""
    zero = results[row_name(0.0)]["long_form"]["wer"]
    candidates = [s for s in shares if s > 0]
    if not candidates:
        raise ValueError("recommend needs at least one share above 0")

    def mae(share: float) -> float:
        scores = results[row_name(share)]["long_form"]
        values = [v for v in (scores["start_mae"], scores["end_mae"]) if v is not None]
        return sum(values) / len(values) if values else float("inf")

    fair = [s for s in candidates if results[row_name(s)]["long_form"]["wer"] <= zero + WER_SLACK]
    if fair:
        chosen, rule = min(fair, key=lambda s: (mae(s), s)), (
            f"the share above 0 with the lowest mean sentence start/end error among those whose "
            f"long-form WER is within {100 * WER_SLACK:g} points of share 0's")
    else:
        chosen, rule = min(candidates, key=lambda s: (results[row_name(s)]["long_form"]["wer"], s)), (
            f"no share above 0 kept long-form WER within {100 * WER_SLACK:g} points of share "
            "0's: the one with the lowest long-form WER")
    return {"row": row_name(chosen), "share": chosen, "rule": rule}


def run(out_dir: Path, steps: int = 30, batch: int = 8, shares=SHARES,
        recordings: int = RECORDINGS, short_clips: int = SHORT_CLIPS, model: str = "embedded",
        train_clips: int | None = None, min_seconds: float = 60, max_seconds: float = 180,
        corpus: Path = CORPUS, precision: str = "8bit", eval_precision: str = EVAL_PRECISION,
        **decode) -> Path:
    """Benchmark 6: base and one adapter per share -> out_dir/long_form.json (and
    long_form.png); returns the JSON's path. `model`, `train_clips`, the recording lengths,
    `corpus` (train and test splits), `precision` (of the base trained on),
    `eval_precision` (of the base the adapters are measured on) and `decode` (transcribe_long's keywords,
    e.g. max_new_tokens) let the test run it on a tiny random model in a few minutes."""
    from helpers.data.long_form import build_long_form_set

    shares = sorted({0.0, *shares})
    started, load = time.perf_counter(), loadavg()
    with tempfile.TemporaryDirectory(prefix="bench-long-form-") as tmp:
        recs = build_long_form_set(corpus, split="test", out_dir=Path(tmp) / "long_form",
                                   count=recordings, min_seconds=min_seconds,
                                   max_seconds=max_seconds, seed=0)
        clips = corpus_clips(corpus, short_clips)
        print(f"[long_form] base ({model}, 8-bit) ...", file=sys.stderr, flush=True)
        results = {"base": model_row(model, None, recs, clips, eval_precision, **decode)}
        for share in shares:
            adapter, training = train_adapter(share, Path(tmp) / "runs", model, steps, batch,
                                              train_clips, corpus, precision)
            results[row_name(share)] = {**training, **model_row(model, adapter, recs, clips,
                                                                eval_precision, **decode)}
    results["recommended"] = recommend(results, shares)
    name = corpus_name(corpus)
    settings = {"model": model, "precision": precision, "eval_precision": eval_precision,
                "preset": "embedded",
                "train_corpus": f"{name} train", "steps": steps, "batch_size": batch,
                "train_clips": train_clips or "all (the preset's)", "seed": 42,
                "timestamp_shares": shares, "warmup_steps": 5, "lr_scheduler": "constant_with_warmup",
                "long_form_set": {"corpus": f"{name} test", "recordings": len(recs),
                                  "seconds": [round(r["duration"], 1) for r in recs],
                                  "sentences": sum(len(r["sentences"]) for r in recs),
                                  "min_seconds": min_seconds, "max_seconds": max_seconds, "seed": 0},
                "short_clips": len(clips),
                "decoding": "helpers.transcribe.long_form.transcribe_long, Whisper's temperature fallback"
                            + (f", {decode}" if decode else ""),
                "matching": "each true sentence start (end) to the nearest predicted segment "
                            "start (end); helpers.evaluate.scoring.score_long_form"}
    path = write_result(out_dir, "long_form", settings, results, started, load)
    long_form_chart(path)
    return path


def rows_in_order(results: dict) -> list[str]:
    """The model rows of long_form.json in table order: base, then the shares ascending."""
    shares = sorted(v["timestamp_share"] for k, v in results.items() if k.startswith("share_"))
    return ["base"] + [row_name(share) for share in shares]


def long_form_chart(path_json: Path) -> None:
    """Three panels per model row: WER (long-form and short clips), share of windows with
    timestamps, sentence start/end MAE -> long_form.png beside the JSON."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(Path(path_json).read_text())["results"]
    rows = rows_in_order(data)
    panels = [("WER (%)", {"long-form": lambda r: 100 * r["long_form"]["wer"],
                           "short clips": lambda r: 100 * r["short_clips"]["wer"]}),
              ("windows with timestamps (%)",
               {"long-form": lambda r: 100 * (r["long_form"]["timestamp_window_share"] or 0)}),
              ("sentence boundary error (s)",
               {"start": lambda r: r["long_form"]["start_mae"] or 0,
                "end": lambda r: r["long_form"]["end_mae"] or 0})]
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for axis, (ylabel, series) in zip(axes, panels):
        width = 0.8 / len(series)
        for i, (label, value) in enumerate(series.items()):
            xs = [x + (i - (len(series) - 1) / 2) * width for x in range(len(rows))]
            axis.bar(xs, [value(data[row]) for row in rows], width, label=label)
        axis.set_xticks(range(len(rows)), rows, fontsize=8)
        axis.set_ylabel(ylabel)
        if len(series) > 1:
            axis.legend(fontsize=8)
    figure.suptitle(f"tiny.en 8-bit + LoRA by TIMESTAMP_SHARE; recommended: "
                    f"{data['recommended']['row']}", fontsize=10)
    figure.tight_layout()
    figure.savefig(Path(path_json).with_suffix(".png"), dpi=110)
    plt.close(figure)
