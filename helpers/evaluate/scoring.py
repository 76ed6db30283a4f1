"""Transcribe a corpus split and score it; score long-form transcripts against their set.

`load_test_clips` + `predict` + `score` are what `python -m helpers.evaluate` runs;
`compare_predictions` gives notebook 06's metrics.json keys for base and fine-tuned;
`score_long_form` and `time_errors` score long recordings (WER and sentence boundaries).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from helpers.metrics import error_rates, is_loop, script_share, word_insertions
from helpers.transcribe.decode import transcribe_paths


def load_test_clips(corpus: str, split: str, tokenizer, max_clips: int | None = None):
    """Load and filter a split; returns (list of {"path", "sentence"}, filter report)."""
    from helpers.data.corpora import load_corpus
    from helpers.data.filter import filter_corpus

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


def predict_routed(model, processor, clips: list[dict], router, batch_size: int = 8,
                   progress: bool = True, fallback: bool = True,
                   known: dict | None = None) -> tuple[list[str], list]:
    """`predict` with routing by spoken language (`helpers.transcribe.routing`): returns
    (texts, routes), a Route (language, adapter) per clip. Raises on unreadable audio.

    Every clip is identified first (`routes_of`), then the clips of each route are decoded
    together. known: {Route: texts of every clip already decoded that way} (notebook 05's
    adapter-on pass is Route(its language, True)): a clip routed so takes its text from
    there instead of being decoded again.
    """
    from helpers.transcribe.routing import decoding_as, routes_of

    known = known or {}
    routes = routes_of(model, processor, [Path(clip["path"]) for clip in clips], router, batch_size)
    texts = [known[route][i] if route in known else None for i, route in enumerate(routes)]
    for route in dict.fromkeys(route for route in routes if route not in known):
        members = [i for i, r in enumerate(routes) if r == route]
        with decoding_as(model, route, router.english_only):
            decoded = predict(model, processor, [clips[i] for i in members], batch_size,
                              progress, fallback)
        for i, text in zip(members, decoded):
            texts[i] = text
    return texts, routes


def routing_summary(routes: list, router) -> dict:
    """What routing did to a split: {"adapter_share" (clips decoded with the adapter),
    "languages" ({code: clips decoded in it}), "detect_seconds" (language identification,
    in all), "settle_seconds" (settling doubts: stage two's greedy decodings, in all)}."""
    languages: dict[str, int] = {}
    for route in routes:
        languages[route.language] = languages.get(route.language, 0) + 1
    return {"adapter_share": round(sum(r.adapter for r in routes) / max(1, len(routes)), 4),
            "languages": languages, "detect_seconds": round(router.detect_seconds, 2),
            "settle_seconds": round(router.settle_seconds, 2)}


def score(clips: list[dict], predictions: list[str]) -> dict:
    """WER/CER (normalized and raw) of predictions against the clips' sentences; "loops":
    transcripts that loop or ran into their token cap (`helpers.metrics.is_loop`)."""
    references = [clip["sentence"] for clip in clips]
    rates = error_rates(references, predictions)
    return {"n": len(clips), **{key: round(value, 4) for key, value in rates.items()},
            "loops": sum(map(is_loop, predictions, references)),
            "insertions": word_insertions(references, predictions)}


def prediction_rows(clips: list[dict], base: list[str], finetuned: list[str]) -> list[dict]:
    """predictions.jsonl (notebook 05): per clip {"path", "reference", "base", "finetuned",
    "base_capped", "finetuned_capped"}; a *_capped flag says the transcript ran into its
    token cap (`helpers.transcribe.decode.Transcript`), which counts as a loop."""
    return [{"path": clip["path"], "reference": clip["sentence"], "base": str(one),
             "finetuned": str(other), "base_capped": getattr(one, "capped", False),
             "finetuned_capped": getattr(other, "capped", False)}
            for clip, one, other in zip(clips, base, finetuned, strict=True)]


def row_loops(row: dict, model: str) -> bool:
    """Whether a predictions.jsonl row's `model` ("base" or "finetuned") transcript loops:
    it ran into its token cap (row[f"{model}_capped"]) or `is_loop` says so."""
    return bool(row.get(f"{model}_capped")) or is_loop(row[model], row["reference"])


def predict_long_form(model, processor, recordings: list[dict], fallback: bool = True) -> list[dict]:
    """Transcribe long recordings ({"path", ...}, e.g. `helpers.data.long_form.read_long_form_set`)
    with Whisper's long-form decoding; returns `transcribe_long`'s dicts, in order."""
    from helpers.transcribe.long_form import transcribe_long

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
    `helpers.evaluate.scoring.time_errors`), "timestamp_window_share" (share of decoded windows
    where the model closed a segment with a timestamp; None without "windows")}.
    """

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
    is a repetition loop or ran into its token cap, `row_loops`), insertions (inserted words,
    normalized) and script_share (share of the transcripts' letters in the reference's
    script, `helpers.metrics.script_share`; None when no letter was transcribed), and n_test.
    Rows with "routed" and "routed_adapter" (notebook 05 with ROUTING) add the same keys for
    "routed", and routed_adapter_share (the share of clips routed to the adapter).
    """
    references = [row["reference"] for row in predictions]
    result = {"n_test": len(predictions)}
    routed = bool(predictions) and all("routed" in row for row in predictions)
    if routed:
        result["routed_adapter_share"] = sum(row["routed_adapter"] for row in predictions) / len(predictions)
    for model in ("base", "finetuned", "routed")[:3 if routed else 2]:
        texts = [row[model] for row in predictions]
        rates = error_rates(references, texts)
        result.update({f"{model}_wer": rates["wer"], f"{model}_cer": rates["cer"],
                       f"raw_{model}_wer": rates["raw_wer"], f"raw_{model}_cer": rates["raw_cer"],
                       f"{model}_loops": sum(row_loops(row, model) for row in predictions),
                       f"{model}_insertions": word_insertions(references, texts),
                       f"{model}_script_share": script_share(references, texts)})
    return {key: round(value, 4) if isinstance(value, float) else value
            for key, value in result.items()}


def time_errors(sentences: list[dict], segments: list[dict]) -> tuple[list[float], list[float]]:
    """How far the predicted segment times lie from the true sentence times, in seconds.

    For each true sentence ({"start", "end"}): the distance from its start to the nearest
    predicted segment start, and from its end to the nearest predicted segment end.
    Whisper ends a segment where the next begins, often in the pause, so end errors
    include part of the pause. With no segment at all, errors are measured from 0 s.
    Returns (start errors, end errors), one per sentence.
    """
    starts = np.array([s["start"] for s in segments] or [0.0])
    ends = np.array([s["end"] for s in segments] or [0.0])
    return ([float(np.abs(starts - s["start"]).min()) for s in sentences],
            [float(np.abs(ends - s["end"]).min()) for s in sentences])
