"""Transcribe a corpus split and score it, and the command `python -m helpers.evaluate`.

Usage:
    python -m helpers.evaluate [--corpus PATH] [--split test] [--model SOURCE]
                               [--adapter DIR] [--precision P] [--max-clips N] [--no-fallback]

Prints one JSON object: {"n": clips, "wer", "cer" (normalized), "raw_wer", "raw_cer",
"loops", "insertions"}.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from helpers.metrics import error_rates, is_loop, script_mix, script_share, word_insertions
from helpers.quiet import quiet_libraries
from helpers.transcribe import load_for_transcription, transcribe_paths

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent / "data" / "cv-mini" / "en"


def load_test_clips(corpus: str, split: str, tokenizer, max_clips: int | None = None):
    """Load and filter a split; returns (list of {"path", "sentence"}, filter report)."""
    from helpers.data import filter_corpus, load_corpus

    kept, report = filter_corpus(load_corpus(corpus, split=split), tokenizer)
    rows = [{"path": row["audio"], "sentence": row["sentence"]} for row in kept]
    return rows[:max_clips] if max_clips else rows, report


def predict(model, processor, clips: list[dict], batch_size: int = 8,
            progress: bool = True, fallback: bool = True) -> list[str]:
    """Transcribe clips ({"path", ...}); returns texts in order (raises on unreadable audio).

    fallback: Whisper's temperature fallback against loops (default), or greedy only.
    """
    texts = []
    paths = [Path(clip["path"]) for clip in clips]
    for path, text, error in transcribe_paths(model, processor, paths, batch_size, progress,
                                              fallback):
        if error:
            raise ValueError(error)
        texts.append(text)
    return texts


def score(clips: list[dict], predictions: list[str]) -> dict:
    """WER/CER (normalized and raw) of predictions against the clips' sentences."""
    references = [clip["sentence"] for clip in clips]
    rates = error_rates(references, predictions)
    return {"n": len(clips), **{key: round(value, 4) for key, value in rates.items()},
            "loops": sum(map(is_loop, predictions, references)),
            "insertions": word_insertions(references, predictions)}


def predict_long_form(model, processor, recordings: list[dict], fallback: bool = True) -> list[dict]:
    """Transcribe long recordings ({"path", ...}, e.g. `helpers.long_form.read_long_form_set`)
    with Whisper's long-form decoding; returns `transcribe_long`'s dicts, in order."""
    from helpers.long_form import transcribe_long

    return [transcribe_long(model, processor, recording["path"], fallback=fallback)
            for recording in recordings]


def score_long_form(recordings: list[dict], predictions: list[dict]) -> dict:
    """Score long-form predictions against the long-form set's recordings.

    recordings: {"path", "text", "sentences": [{"start", "end", ...}]} (the set's manifest);
    predictions: {"path", "text", "segments", optional "windows"} (`transcribe_long`), in
    the same order. Returns {"n" (recordings), "wer", "cer" (normalized), "raw_wer",
    "raw_cer" (corpus-level, each recording one reference), "insertions", "sentences",
    "segments" (counts), "start_mae", "end_mae" (seconds: mean distance from each true
    sentence start/end to the nearest predicted segment start/end,
    `helpers.long_form.time_errors`), "timestamp_window_share" (share of decoded windows
    where the model closed a segment with a timestamp; None without "windows")}.
    """
    from helpers.long_form import time_errors

    if len(recordings) != len(predictions):
        raise ValueError(f"{len(recordings)} recordings but {len(predictions)} predictions; "
                         "they must pair up one to one, in the same order.")
    for recording, prediction in zip(recordings, predictions):
        if Path(recording["path"]).name != Path(prediction["path"]).name:
            raise ValueError(f"prediction for {prediction['path']} paired with recording "
                             f"{recording['path']}: keep the manifest's order.")
    references = [recording["text"] for recording in recordings]
    texts = [prediction["text"] for prediction in predictions]
    starts, ends = [], []
    for recording, prediction in zip(recordings, predictions):
        start_errors, end_errors = time_errors(recording["sentences"], prediction["segments"])
        starts += start_errors
        ends += end_errors
    windows = [w for p in predictions for w in p.get("windows", [])]
    share = (sum(w["timestamped"] for w in windows) / len(windows)
             if windows and all("windows" in p for p in predictions) else None)
    result = {"n": len(recordings), **error_rates(references, texts),
              "insertions": word_insertions(references, texts), "sentences": len(starts),
              "segments": sum(len(p["segments"]) for p in predictions),
              "start_mae": sum(starts) / len(starts) if starts else None,
              "end_mae": sum(ends) / len(ends) if ends else None,
              "timestamp_window_share": share}
    return {key: round(value, 4) if isinstance(value, float) else value
            for key, value in result.items()}


def compare_predictions(predictions: list[dict]) -> dict:
    """Score predictions.jsonl rows ({"reference", "base", "finetuned"}) for both models.

    Returns the metrics.json keys: base_/finetuned_ wer and cer (normalized),
    raw_base_/raw_finetuned_ wer and cer, base_/finetuned_ loops (clips whose transcript
    is a repetition loop, `helpers.metrics.is_loop`), insertions (inserted words,
    normalized) and script_share (share of the transcripts' letters in the reference's
    script, `helpers.metrics.script_share`; None when no letter was transcribed), and n_test.
    """
    references = [row["reference"] for row in predictions]
    result = {"n_test": len(predictions)}
    for model in ("base", "finetuned"):
        texts = [row[model] for row in predictions]
        rates = error_rates(references, texts)
        result.update({f"{model}_wer": rates["wer"], f"{model}_cer": rates["cer"],
                       f"raw_{model}_wer": rates["raw_wer"], f"raw_{model}_cer": rates["raw_cer"],
                       f"{model}_loops": sum(map(is_loop, texts, references)),
                       f"{model}_insertions": word_insertions(references, texts),
                       f"{model}_script_share": script_share(references, texts)})
    return {key: round(value, 4) if isinstance(value, float) else value
            for key, value in result.items()}


def comparison_table(metrics: dict):
    """Base vs fine-tuned error rates (percent) as a pandas DataFrame."""
    import pandas as pd

    rows = {model: {"WER": metrics[f"{model}_wer"], "CER": metrics[f"{model}_cer"],
                    "raw WER": metrics[f"raw_{model}_wer"], "raw CER": metrics[f"raw_{model}_cer"]}
            for model in ("base", "finetuned")}
    table = (pd.DataFrame(rows).T * 100).round(2)
    if all(f"{model}_script_share" in metrics for model in rows):  # percent, like the rates
        table["script share"] = [None if metrics[f"{model}_script_share"] is None
                                 else round(100 * metrics[f"{model}_script_share"], 2)
                                 for model in rows]
    for key, label in (("loops", "looping clips"), ("insertions", "inserted words")):
        if all(f"{model}_{key}" in metrics for model in rows):
            table[label] = [metrics[f"{model}_{key}"] for model in rows]
    return table


def script_table(predictions: list[dict]):
    """Which scripts the references and each model's transcripts are written in: percent of
    their letters per script (`helpers.metrics.script_mix`), as a DataFrame (0 where none)."""
    import pandas as pd

    mixes = {key: script_mix(row[key] for row in predictions)
             for key in ("reference", "base", "finetuned")}
    return (pd.DataFrame(mixes).fillna(0) * 100).round(1)


def looping_clips(predictions: list[dict]):
    """The clips whose base or fine-tuned transcript loops (`is_loop`), as a DataFrame."""
    import pandas as pd

    rows = [{"clip": Path(row["path"]).name, "reference": row["reference"],
             **{f"{model} loops": is_loop(row[model], row["reference"]) for model in ("base", "finetuned")},
             "base": row["base"], "finetuned": row["finetuned"]}
            for row in predictions
            if is_loop(row["base"], row["reference"]) or is_loop(row["finetuned"], row["reference"])]
    return pd.DataFrame(rows, columns=["clip", "reference", "base loops", "finetuned loops",
                                       "base", "finetuned"])


def worst_utterances(predictions: list[dict], count: int = 8):
    """The clips with the highest fine-tuned WER, as a DataFrame (reference, base, fine-tuned)."""
    import pandas as pd

    scored = [{"clip": Path(row["path"]).name,
               "finetuned_wer": error_rates([row["reference"]], [row["finetuned"]])["wer"],
               "reference": row["reference"], "base": row["base"], "finetuned": row["finetuned"]}
              for row in predictions]
    scored.sort(key=lambda row: row["finetuned_wer"], reverse=True)
    return pd.DataFrame(scored[:count])


def main(argv: list[str] | None = None) -> int:
    """Evaluate a model (optionally with an adapter) on a corpus split; print JSON."""
    parser = argparse.ArgumentParser(prog="python -m helpers.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    parser.add_argument("--split", default="test")
    parser.add_argument("--model")
    parser.add_argument("--adapter")
    parser.add_argument("--language")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--max-clips", type=int)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--no-fallback", action="store_true",
                        help="greedy decoding only (no temperature fallback against loops)")
    args = parser.parse_args(argv)
    quiet_libraries()
    model, processor = load_for_transcription(args.model, args.adapter, args.language, args.precision)
    clips, _ = load_test_clips(args.corpus, args.split, processor.tokenizer, args.max_clips)
    predictions = predict(model, processor, clips, args.batch_size, fallback=not args.no_fallback)
    print(json.dumps(score(clips, predictions)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
