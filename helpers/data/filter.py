"""The filter applied before training: each dropped row is counted by reason, none silently.

`filter_corpus` checks every row (the clip exists and decodes, has sound, lasts at most
30 s, its transcript is not empty and its label fits the decoder's 448 positions) and
returns the kept rows with a report {"rows", "kept", "dropped": {reason: count},
"dropped_rows": [...]}; `summary_line` says it in one sentence.
"""

import math
import sys
from pathlib import Path

from datasets import Dataset
from tqdm.auto import tqdm

from helpers.audio import SILENCE_PEAK, AudioError, audio_duration, inspect_audio

DROP_REASONS = ("missing_clip", "unreadable_audio", "empty_text", "audio_too_long",
                "silent_audio", "labels_too_long")  # a row gets the first that fails, in this


# ----------------------------------------------------------------------------- filter
def _check_clip(path, sentence, max_seconds: float,
                silence_peak: float) -> tuple[str | None, str, float | None]:
    """Check one row up to the label test; returns (reason or None, detail, seconds).

    The header is read first (cheap); only a clip that passes it is decoded, once.
    """
    if not path or not Path(path).is_file():
        return "missing_clip", f"no audio file at {path}", None
    try:
        header_seconds = audio_duration(path)
    except AudioError as err:
        return "unreadable_audio", str(err), None
    if sentence is None or not sentence.strip():
        return "empty_text", "the sentence is empty", header_seconds
    if header_seconds > max_seconds:
        return "audio_too_long", f"{header_seconds:.2f} s > {max_seconds:g} s", header_seconds
    return _check_samples(path, max_seconds, silence_peak)


def _check_samples(path, max_seconds: float, silence_peak: float):
    """Decode a clip whose header passed; returns (reason or None, detail, decoded seconds)."""
    try:
        info = inspect_audio(path)
    except AudioError as err:
        return "unreadable_audio", str(err), None
    if info.seconds > max_seconds:
        return "audio_too_long", f"{info.seconds:.2f} s > {max_seconds:g} s", info.seconds
    if info.peak < silence_peak:
        level = f"{20 * math.log10(info.peak):.0f} dBFS" if info.peak > 0 else "digital silence"
        return ("silent_audio", f"loudest sample {info.peak:.2g} of full scale ({level}) < "
                f"{silence_peak:.2g}: nothing audible to transcribe", info.seconds)
    return None, "", info.seconds


def _label_lengths(tokenizer, sentences: list[str], chunk: int = 1024) -> list[int]:
    """Number of label tokens of each sentence (prefix tokens and eos included)."""
    lengths = []
    for start in range(0, len(sentences), chunk):
        ids = tokenizer(sentences[start:start + chunk]).input_ids
        lengths.extend(len(row) for row in ids)
    return lengths


def _check_schema(dataset: Dataset) -> None:
    """Raise if `dataset` lacks our "audio" (path str) and "sentence" columns."""
    missing = [c for c in ("audio", "sentence") if c not in dataset.column_names]
    if missing:
        raise ValueError(f"dataset lacks column(s) {missing} (has {dataset.column_names}); "
                         "load it with helpers.data.corpora.load_corpus.")
    if len(dataset) and not isinstance(dataset[0]["audio"], str):
        raise TypeError("the 'audio' column must hold file paths (str); convert Hub datasets "
                        "with helpers.data.corpora.hub_to_corpus.")


def filter_corpus(dataset: Dataset, tokenizer, max_seconds: float = 30.0,
                  max_label_tokens: int = 448, silence_peak: float = SILENCE_PEAK,
                  name: str | None = None) -> tuple[Dataset, dict]:
    """Split `dataset` into the rows fit for training and a report on the others.

    A row is dropped for the first failing reason of DROP_REASONS: the clip is missing, its
    header is unreadable, it has no samples, its frames do not decode or it was cut short,
    the sentence is empty, the clip is longer than `max_seconds` (Whisper sees 30 s), it is
    silent (loudest sample below `silence_peak`, -60 dBFS by default), or its labels
    (tokenizer ids incl. prefix and eos) exceed `max_label_tokens` (the decoder's 448
    positions). Prints one line "rows read = kept + dropped (per reason)" on stderr,
    prefixed by `name` (e.g. the split). Returns (kept dataset with an added "duration"
    column in decoded seconds, report) where report = {"rows", "kept", "dropped": {reason:
    count for every reason}, "dropped_rows": [{"row", "path", "reason", "detail"}, ...],
    "longest_label_tokens": the longest kept label (0 when none is kept)}.
    """
    _check_schema(dataset)
    paths, sentences = list(dataset["audio"]), list(dataset["sentence"])
    dropped_rows, durations, candidates = [], {}, []
    for i in tqdm(range(len(paths)), desc="checking clips", file=sys.stderr):
        reason, detail, durations[i] = _check_clip(paths[i], sentences[i], max_seconds,
                                                   silence_peak)
        if reason:
            dropped_rows.append({"row": i, "path": paths[i], "reason": reason, "detail": detail})
        else:
            candidates.append(i)
    lengths = _label_lengths(tokenizer, [sentences[i] for i in candidates])
    kept = []
    for i, length in zip(candidates, lengths):
        if length > max_label_tokens:
            dropped_rows.append({"row": i, "path": paths[i], "reason": "labels_too_long",
                                 "detail": f"{length} tokens > {max_label_tokens}"})
        else:
            kept.append(i)
    report = _report(len(dataset), kept, dropped_rows)
    report["longest_label_tokens"] = max((length for length in lengths if length <= max_label_tokens),
                                         default=0)
    print(summary_line(report, name), file=sys.stderr, flush=True)
    if "duration" in dataset.column_names:
        dataset = dataset.remove_columns("duration")
    kept_dataset = dataset.select(kept).add_column("duration", [durations[i] for i in kept])
    return kept_dataset, report


def _report(rows: int, kept: list[int], dropped_rows: list[dict]) -> dict:
    """Build the filter report; raises RuntimeError unless every row is kept or dropped
    exactly once (rows read = kept + dropped, per reason)."""
    dropped_rows.sort(key=lambda item: item["row"])
    dropped = {reason: 0 for reason in DROP_REASONS}
    for item in dropped_rows:
        dropped[item["reason"]] += 1
    seen = sorted(kept + [item["row"] for item in dropped_rows])
    if seen != list(range(rows)) or rows != len(kept) + sum(dropped.values()):
        raise RuntimeError(f"filter_corpus lost or duplicated rows: {rows} read, {len(kept)} "
                           f"kept, {dropped} dropped. This is a bug; please report it.")
    return {"rows": rows, "kept": len(kept), "dropped": dropped, "dropped_rows": dropped_rows}


def summary_line(report: dict, name: str | None = None) -> str:
    """One line: "<name>: N rows read = K kept + D dropped (reason n, ...)"."""
    parts = ", ".join(f"{reason} {n}" for reason, n in report["dropped"].items() if n)
    dropped = sum(report["dropped"].values())
    return (f"{name or 'corpus'}: {report['rows']} rows read = {report['kept']} kept + "
            f"{dropped} dropped" + (f" ({parts})" if parts else ""))
