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

Notebook 06's `long_form_check` scores notebook 05's long recording: long-form WER, the
share of 30 s windows with timestamps and sentence boundary errors, fine-tuned (notebook
05's transcript) and base (transcribed there), beside the short-clip WER;
`python benchmarks/run.py --only long_form` compares shares.
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

LONG_FORM_PREDICTION = "long_form/prediction.json"  # notebook 05: its recording and the fine-tuned transcript
LONG_FORM_BASE = "long_form/base_prediction.json"   # notebook 06: the base model's transcript of it


def _long_form_scores(name: str, recording: dict, prediction: dict) -> dict:
    """metrics.json keys long_form_<name>_wer / _timestamp_share / _start_mae / _end_mae
    of one recording (helpers.evaluate.score_long_form)."""
    from helpers.evaluate import score_long_form

    scores = score_long_form([recording], [prediction])
    keys = {"wer": "wer", "timestamp_share": "timestamp_window_share",
            "start_mae": "start_mae", "end_mae": "end_mae"}
    return {f"long_form_{name}_{key}": scores[source] for key, source in keys.items()}


def base_long_form(config, recording: dict) -> dict:
    """transcribe_long of `recording` by the run's base model alone (no adapter: the same
    weights as notebook 05's adapter switched off), at the run's precision and decoding."""
    from helpers.long_form import transcribe_long
    from helpers.models import load_model

    model, processor = load_model(config.model, precision=config.precision,
                                  language=config.language, task=config.task)
    return transcribe_long(model.eval(), processor, recording["path"], fallback=config.decode_fallback)


def long_form_check(config, run, with_base: bool = True) -> dict | None:
    """Scores of notebook 05's long recording: the fine-tuned transcript notebook 05 made,
    and, with `with_base`, the base model's, transcribed here (saved to
    long_form/base_prediction.json; the check's cost, timed).

    Returns the metrics.json keys long_form_{finetuned,base}_{wer,timestamp_share,
    start_mae,end_mae}, long_form_audio_seconds, long_form_windows and
    long_form_base_seconds (the base transcription's wall time); None, printing why, when
    notebook 05 made no long recording (its LONG_FORM_SECONDS = 0).
    """
    import time

    path = run.path / LONG_FORM_PREDICTION
    if not path.is_file():
        print(f"Long-form check skipped: no {LONG_FORM_PREDICTION} in the run (notebook 05 "
              "makes it unless its LONG_FORM_SECONDS is 0).")
        return None
    saved = run.read_json(LONG_FORM_PREDICTION, "notebook 05 (inference)")
    recording, tuned = saved["recording"], saved["prediction"]
    result = {**_long_form_scores("finetuned", recording, tuned),
              "long_form_audio_seconds": round(recording["duration"], 1),
              "long_form_windows": len(tuned["windows"])}
    if with_base:
        started = time.perf_counter()
        base = base_long_form(config, recording)
        run.write_json(LONG_FORM_BASE, base)
        result.update(_long_form_scores("base", recording, base),
                      long_form_base_seconds=round(time.perf_counter() - started, 1))
    return result


def long_form_table(metrics: dict):
    """Short-clip WER (notebook 05's test clips) beside long-form WER, the share of windows
    with timestamps and sentence boundary errors (notebook 05's long recording), base and
    fine-tuned, as a pandas DataFrame (percent, seconds); a model not measured is left out."""
    import pandas as pd

    def pct(value):
        return None if value is None else round(100 * value, 2)

    rows = {model: {"short-clip WER %": pct(metrics[f"{model}_wer"]),
                    "long-form WER %": pct(metrics[f"long_form_{model}_wer"]),
                    "windows with timestamps %": pct(metrics[f"long_form_{model}_timestamp_share"]),
                    "sentence start error s": metrics[f"long_form_{model}_start_mae"],
                    "sentence end error s": metrics[f"long_form_{model}_end_mae"]}
            for model in ("base", "finetuned") if f"long_form_{model}_wer" in metrics}
    return pd.DataFrame(rows).T
