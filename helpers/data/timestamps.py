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
Labels are made where notebook 01 (`helpers.data.features`) and streamed training
(`helpers.data.streaming`) make them, from the audio already decoded for the features.

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
    `helpers.audio.speech_bounds`, on the 0.02 s grid and at most 30 s. Raises
    ValueError for a silent clip (helpers.data.filter.filter_corpus drops those before)."""
    from helpers.audio import speech_bounds

    return snap_timestamp(speech_bounds(audio, sampling_rate)[1])
