"""Timestamp labels, so that fine-tuning does not teach Whisper to stop predicting timestamps.

Whisper's long-form decoding (30 s windows moved along by the timestamps the model
predicts) needs a model that still predicts timestamp tokens. The recipe's labels all say
`<|notimestamps|>`, and a model fine-tuned on them alone tends to stop predicting
timestamps (transformers issue 30148). distil-whisper (`--timestamp_probability`) and
yeyupiaoling/Whisper-Finetune train a share of the examples with timestamps instead.

With `timestamp_share` (RunConfig, notebook 01's `TIMESTAMP_SHARE`) that share of the
training rows, chosen by the run's seed, gets labels

    <|startoftranscript|> [<|lang|> <|task|>] <|0.00|> text <|t|> <|endoftext|>

(no `<|notimestamps|>`; the language and task tokens only for multilingual models), where
`t` is the clip's speech end found from its energy (`speech_end`), rounded to Whisper's
0.02 s grid and clamped to 30 s. The other rows keep the recipe's labels. The first
timestamp is always 0.00 (the format asked for in issue 15), not the speech start: cv-mini
clips begin with 0.35-0.9 s of silence, and Whisper's own first segment in a window also
usually starts at 0.00; the long-form benchmark's start error measures what that costs.
Labels are made where notebook 01 (`helpers.features`) and streamed training
(`helpers.streaming`) make them, from the audio already decoded for the features.

Notebook 06's `long_form_check` measures the result on a run: long-form WER, the share of
30 s windows with timestamps and sentence boundary errors, adapter off and on, beside the
short-clip WER; `python benchmarks/run.py --only long_form` compares shares.
"""
from __future__ import annotations

import numpy as np

TIME_PRECISION = 0.02  # seconds per timestamp token: <|0.00|>, <|0.02|>, ... <|30.00|>
MAX_TIMESTAMP = 30.0   # Whisper's window: the last timestamp token
FLAG_COLUMN = "timestamps"  # bool column: this row gets timestamp labels


def timestamp_flags(count: int, share: float, seed: int) -> list[bool]:
    """Which of `count` rows get timestamp labels: exactly round(share * count) of them,
    picked by a permutation seeded with `seed` (same seed, same rows). Raises ValueError
    for a share outside [0, 1]."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"timestamp_share must be between 0 and 1 (a share of the training "
                         f"examples), got {share!r}")
    chosen = np.random.default_rng(seed).permutation(count)[:round(share * count)]
    flags = np.zeros(count, dtype=bool)
    flags[chosen] = True
    return flags.tolist()


def with_timestamp_flags(dataset, share: float, seed: int):
    """`dataset` with a bool column FLAG_COLUMN from `timestamp_flags`; unchanged at share 0
    (the recipe's labels for every row, exactly as without this option)."""
    flags = timestamp_flags(len(dataset), share, seed)
    if not any(flags):
        return dataset
    if FLAG_COLUMN in dataset.column_names:
        dataset = dataset.remove_columns(FLAG_COLUMN)
    return dataset.add_column(FLAG_COLUMN, flags)


def snap_timestamp(seconds: float) -> float:
    """`seconds` rounded to Whisper's 0.02 s grid and clamped to [0, 30]."""
    steps = round(min(max(float(seconds), 0.0), MAX_TIMESTAMP) / TIME_PRECISION)
    return round(steps * TIME_PRECISION, 2)


def timestamp_token(tokenizer, seconds: float) -> int:
    """The id of the timestamp token for `seconds` (snapped by `snap_timestamp`)."""
    first = tokenizer.convert_tokens_to_ids("<|0.00|>")
    if first is None or first == tokenizer.unk_token_id:
        raise ValueError("this tokenizer has no timestamp tokens (<|0.00|>); timestamp labels "
                         "need a Whisper tokenizer. Set TIMESTAMP_SHARE = 0.")
    return first + round(snap_timestamp(seconds) / TIME_PRECISION)


def timestamp_prefix(tokenizer) -> list[int]:
    """The tokenizer's label prefix without <|notimestamps|>: <|startoftranscript|>, then the
    language and task tokens when the tokenizer has them set (multilingual models)."""
    no_timestamps = tokenizer.convert_tokens_to_ids("<|notimestamps|>")
    return [token for token in tokenizer.prefix_tokens if token != no_timestamps]


def timestamp_labels(tokenizer, sentence: str, end_seconds: float) -> list[int]:
    """Label ids `prefix <|0.00|> sentence <|end|> <|endoftext|>` (see the module docstring)."""
    text = tokenizer(sentence, add_special_tokens=False).input_ids
    return (timestamp_prefix(tokenizer) + [timestamp_token(tokenizer, 0.0)] + text
            + [timestamp_token(tokenizer, end_seconds), tokenizer.eos_token_id])


def speech_end(audio: np.ndarray, sampling_rate: int) -> float:
    """Seconds from the start of `audio` to the end of its speech, found from its energy by
    `helpers.long_form.speech_bounds`, on the 0.02 s grid and at most 30 s. Raises
    ValueError for a silent clip (helpers.data.filter_corpus drops those before)."""
    from helpers.long_form import speech_bounds

    return snap_timestamp(speech_bounds(audio, sampling_rate)[1])


# ---------------------------------------------------------------- notebook 06's long-form check

LONG_FORM_DIR = "long_form"  # in the run directory: the recordings notebook 06 builds


def _long_form_predictions(model, processor, recordings: list[dict], fallback: bool) -> list[dict]:
    """transcribe_long of each recording, as it stands (adapter on or off)."""
    from helpers.long_form import transcribe_long

    return [transcribe_long(model, processor, rec["path"], fallback=fallback) for rec in recordings]


def _long_form_scores(name: str, recordings: list[dict], predictions: list[dict]) -> dict:
    """metrics.json keys long_form_<name>_wer / _timestamp_share / _start_mae / _end_mae
    (helpers.evaluate.score_long_form)."""
    from helpers.evaluate import score_long_form

    scores = score_long_form(recordings, predictions)
    keys = {"wer": "wer", "timestamp_share": "timestamp_window_share",
            "start_mae": "start_mae", "end_mae": "end_mae"}
    return {f"long_form_{name}_{key}": scores[source] for key, source in keys.items()}


def long_form_check(config, run, recordings: int = 1, seconds: float = 60.0) -> dict | None:
    """Long-form WER of the run's model, adapter off (base) and on (fine-tuned).

    Joins test clips of the run's corpus into `recordings` recordings of `seconds` to
    `seconds` + 15 s (helpers.long_form.build_long_form_set, seed 0) in run/long_form/,
    transcribes each with Whisper's long-form decoding (transcribe_long, the run's precision
    and decoding), writes long_form_predictions.jsonl and prints one line. Returns the
    metrics.json keys long_form_{base,finetuned}_{wer,timestamp_share,start_mae,end_mae},
    long_form_recordings, long_form_audio_seconds and long_form_check_seconds (what the
    check took); None, printing why, when `recordings` is 0.
    """
    import time

    from helpers.adapters import attach_adapter
    from helpers.long_form import build_long_form_set
    from helpers.models import load_model

    if not recordings:
        print("Long-form check skipped: LONG_FORM_RECORDINGS is 0.")
        return None
    started = time.perf_counter()
    recs = build_long_form_set(config.corpus, split=config.test_split,
                               out_dir=run.path / LONG_FORM_DIR, count=recordings,
                               min_seconds=seconds, max_seconds=seconds + 15, seed=0)
    model, processor = load_model(config.model, precision=config.precision,
                                  language=config.language, task=config.task)
    model = attach_adapter(model, run.require("adapter", "notebook 04 (training)")).eval()
    with model.disable_adapter():
        base = _long_form_predictions(model, processor, recs, config.decode_fallback)
    tuned = _long_form_predictions(model, processor, recs, config.decode_fallback)
    run.write_jsonl("long_form_predictions.jsonl", [
        {"path": rec["path"], "duration": rec["duration"], "reference": rec["text"],
         "sentences": rec["sentences"], "base": b["text"], "finetuned": t["text"],
         "base_segments": b["segments"], "finetuned_segments": t["segments"]}
        for rec, b, t in zip(recs, base, tuned)])
    result = {**_long_form_scores("base", recs, base), **_long_form_scores("finetuned", recs, tuned),
              "long_form_recordings": len(recs),
              "long_form_audio_seconds": round(sum(rec["duration"] for rec in recs), 1),
              "long_form_check_seconds": round(time.perf_counter() - started, 1)}
    print(f"Long-form ({len(recs)} recording(s), {result['long_form_audio_seconds']:.0f} s of "
          f"audio): WER {result['long_form_base_wer']:.1%} base, "
          f"{result['long_form_finetuned_wer']:.1%} fine-tuned; took "
          f"{result['long_form_check_seconds']:.0f} s.")
    return result


def long_form_table(metrics: dict):
    """Short-clip (notebook 05's test clips) beside long-form WER, windows with timestamps
    and sentence boundary errors, base and fine-tuned, as a pandas DataFrame (percent, s)."""
    import pandas as pd

    def pct(value):
        return None if value is None else round(100 * value, 2)

    rows = {model: {"short-clip WER %": pct(metrics[f"{model}_wer"]),
                    "long-form WER %": pct(metrics[f"long_form_{model}_wer"]),
                    "windows with timestamps %": pct(metrics[f"long_form_{model}_timestamp_share"]),
                    "sentence start error s": metrics[f"long_form_{model}_start_mae"],
                    "sentence end error s": metrics[f"long_form_{model}_end_mae"]}
            for model in ("base", "finetuned")}
    return pd.DataFrame(rows).T
