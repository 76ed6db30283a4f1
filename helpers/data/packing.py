"""Packing: consecutive training clips joined into samples of up to 30 s (`PACK`, RunConfig.pack).

Whisper's encoder always reads 30 s of audio. A Common Voice clip lasts about 5 s (cv-mini's
median 4.0 s), so a training sample of one clip padded to 30 s spends most of the encoder's
work, the largest cost of a step, on padding. With `pack=True` the training clips, in the
order a shuffle with the run's seed gives, are joined with short pauses into samples
("windows") of up to 30 s of audio and the decoder's 448 label positions; a clip is never cut
(distil-whisper's `--concatenate_audio` and i4Ds' whisper-prep do the same). Dev and test
clips stay one a sample: WER during training, notebooks 05-06 and the long-form check are
measured as without packing.

One window:
  audio   clip 1, pause, clip 2, pause, ..., clip n: each pause PAUSE_SECONDS long (seeded)
          of the very quiet noise the long-form test recordings use between sentences
          (helpers.data.long_form.quiet_pause); the clips keep their own silences.
  labels  with timestamps, Whisper's long-form format: each clip a segment whose start and
          end are its speech bounds in the window (helpers.audio.speech_bounds, on the 0.02 s
          grid), its text with a leading space as Whisper writes segments:
              <|startoftranscript|> [<|lang|> <|task|>] <|s1|> text 1<|e1|><|s2|> text 2<|e2|> ... <|endoftext|>
          without timestamps, the recipe's labels of the texts joined by spaces:
              <|startoftranscript|> [<|lang|> <|task|>] <|notimestamps|> text 1 text 2 ... <|endoftext|>
TIMESTAMP_SHARE with packing is the share of the *windows* labelled with timestamps (without
packing, of the clips). The language and task tokens are the run's, as without packing.

A window is closed when the next clip (with its pause) would pass 30 s or its labels with
timestamps would pass 448 tokens, counted with the longer of the two label prefixes, so
either label format fits.

Stored (`prepare_packed_features`, notebook 01): the columns of helpers.data.features
("mel_frames" + "mel_pad" computed on the joined audio, "labels", "timestamps"), plus
"clips" (the clip paths), "sentence" (their texts joined), "duration" (seconds of audio in
the window) and "clip_count", which the collator counts (clips per second in notebook 04).
Streamed (`pack_stream`, STREAMING = True): the stream packs each block of STREAM_BLOCK
consecutive clips as it reads them (a window never spans two blocks), a window gets
timestamps when its first clip was drawn for them (TIMESTAMP_SHARE of the clips, by the seed).

Steps and epochs with packing: a step is BATCH_SIZE windows (`describe_training_data` says
how many clips that is), and an epoch is still one pass over the training clips, so
NUM_TRAIN_EPOCHS keeps its meaning and an epoch takes fewer steps.
"""
from __future__ import annotations

import os
import zlib

import numpy as np
from datasets import Array2D, Dataset, Features, List, Value

from helpers.audio import SAMPLE_RATE, WINDOW_SAMPLES, WINDOW_SECONDS, audio_duration, load_audio, speech_bounds
from helpers.data.replay import LANGUAGE_COLUMN, relabel_language

PAUSE_SECONDS = (0.2, 1.0)  # pause added between two clips of a window (uniform, seeded)
MAX_LABEL_TOKENS = 448      # the decoder's positions: a window's labels, prefix and eos included
STREAM_BLOCK = 128          # streaming: consecutive clips packed together (about 20 windows of cv-mini)
COUNT_COLUMN = "clip_count"  # clips in a window; the collator counts them


# ---------------------------------------------------------------- the plan


def clip_token_counts(tokenizer, sentences: list[str]) -> list[int]:
    """Label tokens each sentence takes in a window with timestamps: its text with a leading
    space, and its start and end timestamps."""
    texts = [" " + sentence.strip() for sentence in sentences]
    return [len(ids) + 2 for ids in tokenizer(texts, add_special_tokens=False).input_ids]


def label_overhead(tokenizer) -> int:
    """Label tokens of a window besides its clips: the longer of the two prefixes
    (<|notimestamps|> or not), and <|endoftext|>."""
    from helpers.data.timestamps import timestamp_prefix

    return max(len(tokenizer.prefix_tokens), len(timestamp_prefix(tokenizer))) + 1


def clip_pauses(count: int, rng: np.random.Generator) -> list[float]:
    """A pause length (seconds, in PAUSE_SECONDS) for each of `count` clips: the pause put
    before the clip when it is not the first of its window."""
    return [round(float(x), 3) for x in rng.uniform(*PAUSE_SECONDS, size=count)]


def plan_windows(seconds: list[float], tokens: list[int], pauses: list[float], overhead: int,
                 max_seconds: float = WINDOW_SECONDS,
                 max_tokens: int = MAX_LABEL_TOKENS) -> list[list[int]]:
    """Group clips, in their order, into windows: lists of clip indices.

    seconds: each clip's length; tokens: its label tokens (clip_token_counts); pauses: the
    pause before it (ignored for a window's first clip); overhead: label_overhead. A window
    takes the next clip while audio (clips + pauses) stays within `max_seconds` and labels
    within `max_tokens`; a clip is never cut or dropped (one that fits no window alone gets a
    window of its own, and the feature step says why it does not fit).
    """
    windows, current, length, used = [], [], 0.0, overhead
    for index, (clip_seconds, clip_tokens, pause) in enumerate(zip(seconds, tokens, pauses)):
        gap = pause if current else 0.0
        if current and (length + gap + clip_seconds > max_seconds or used + clip_tokens > max_tokens):
            windows.append(current)
            current, length, used, gap = [], 0.0, overhead, 0.0
        current.append(index)
        length += gap + clip_seconds
        used += clip_tokens
    return windows + [current] if current else windows


def clip_seconds(rows: dict) -> list[float]:
    """Each row's duration: its "duration" column (filter_corpus), else its file's header."""
    if rows.get("duration") is not None:
        return [float(seconds) for seconds in rows["duration"]]
    return [audio_duration(path) for path in rows["audio"]]


def windows_of(rows: dict, tokenizer, rng: np.random.Generator) -> dict:
    """Plan the windows of `rows` (columns "audio", "sentence" and maybe "duration",
    "timestamps" and LANGUAGE_COLUMN), in their order. Clips of different languages (replay,
    helpers.data.replay) never share a window, whose labels carry one language token: each
    language's clips are packed in their order, and the windows ordered by their first clip.
    Returns window columns: "clips" (paths), "sentences", "pauses" (seconds before each
    clip, 0 for the first), "first_flag" (the "timestamps" flag of the window's first clip,
    False without that column) and "language" (its clips' LANGUAGE_COLUMN, "" for the run's)."""
    paths, sentences = list(rows["audio"]), list(rows["sentence"])
    pauses = clip_pauses(len(paths), rng)
    seconds, tokens = clip_seconds(rows), clip_token_counts(tokenizer, sentences)
    languages = rows.get(LANGUAGE_COLUMN) or [""] * len(paths)
    plan = []
    for language in dict.fromkeys(languages):
        members = [i for i, own in enumerate(languages) if own == language]
        plan += [[members[j] for j in window] for window in plan_windows(
            [seconds[i] for i in members], [tokens[i] for i in members],
            [pauses[i] for i in members], label_overhead(tokenizer))]
    plan.sort(key=lambda window: window[0])
    flags = rows.get("timestamps") or [False] * len(paths)
    return {"clips": [[paths[i] for i in window] for window in plan],
            "sentences": [[sentences[i] for i in window] for window in plan],
            "pauses": [[0.0] + [pauses[i] for i in window[1:]] for window in plan],
            "first_flag": [bool(flags[window[0]]) for window in plan],
            "language": [languages[window[0]] for window in plan]}


def pack_rows(rows: Dataset, tokenizer, seed: int = 42) -> Dataset:
    """The windows of the training rows ("audio" path, "sentence", "duration"): the rows
    shuffled with `seed`, then packed consecutively (plan_windows). Returns a Dataset with
    "clips", "sentences", "pauses" and "language" (see windows_of); every row lands in
    exactly one window."""
    missing = [c for c in ("audio", "sentence") if c not in rows.column_names]
    if missing:
        raise ValueError(f"rows lack column(s) {missing} (have {rows.column_names}); "
                         "load them with helpers.data.corpora.load_corpus.")
    shuffled = rows.shuffle(seed=seed)
    columns = {name: shuffled[name] for name in ("audio", "sentence", "duration", LANGUAGE_COLUMN)
               if name in shuffled.column_names}
    windows = windows_of(columns, tokenizer, np.random.default_rng(seed))
    windows.pop("first_flag")
    return Dataset.from_dict(windows)


# ---------------------------------------------------------------- audio and labels


def join_window(arrays: list[np.ndarray], pauses: list[float],
                rng: np.random.Generator, paths: list[str]) -> tuple[np.ndarray, list[int]]:
    """One window's 16 kHz audio: each clip preceded by its pause (quiet noise; none before
    the first). Returns (audio, each clip's first sample). The pauses shrink, last first,
    when the decoded clips come out a few samples longer than planned; ValueError naming
    the clips when they do not fit in 30 s even without pauses."""
    from helpers.data.long_form import quiet_pause

    gaps = [0] + [int(round(pause * SAMPLE_RATE)) for pause in pauses[1:]]
    excess = sum(map(len, arrays)) + sum(gaps) - WINDOW_SAMPLES
    for i in reversed(range(1, len(gaps))):
        cut = min(gaps[i], max(excess, 0))
        gaps[i], excess = gaps[i] - cut, excess - cut
    if excess > 0:
        raise ValueError(f"clips {paths} last {sum(map(len, arrays)) / SAMPLE_RATE:.2f} s together, "
                         f"more than a {WINDOW_SECONDS} s window; run helpers.data.filter.filter_corpus "
                         "first (it records each clip's duration, which the packing plan reads).")
    pieces, offsets, position = [], [], 0
    for gap, audio in zip(gaps, arrays):
        pieces.append(quiet_pause(rng, gap / SAMPLE_RATE))
        offsets.append(position + len(pieces[-1]))
        pieces.append(audio)
        position = offsets[-1] + len(audio)
    return np.concatenate(pieces).astype(np.float32), offsets


def speech_segments(arrays: list[np.ndarray], offsets: list[int]) -> list[tuple[float, float]]:
    """(start, end) seconds of each clip's speech in its window (speech_bounds plus the
    clip's offset), on Whisper's 0.02 s grid."""
    from helpers.data.timestamps import snap_timestamp

    segments = []
    for audio, offset in zip(arrays, offsets):
        start, end = speech_bounds(audio, SAMPLE_RATE)
        segments.append((snap_timestamp(offset / SAMPLE_RATE + start),
                         snap_timestamp(offset / SAMPLE_RATE + end)))
    return segments


def window_labels(tokenizer, sentences: list[str], segments: list[tuple[float, float]] | None) -> list[int]:
    """Label ids of one window: with `segments` (one (start, end) per sentence) Whisper's
    long-form format, else the recipe's labels of the sentences joined (module docstring)."""
    from helpers.data.timestamps import timestamp_prefix, timestamp_token

    if segments is None:
        return tokenizer(" ".join(sentence.strip() for sentence in sentences)).input_ids
    ids = timestamp_prefix(tokenizer)
    texts = tokenizer([" " + s.strip() for s in sentences], add_special_tokens=False).input_ids
    for text, (start, end) in zip(texts, segments):
        ids = ids + [timestamp_token(tokenizer, start), *text, timestamp_token(tokenizer, end)]
    return ids + [tokenizer.eos_token_id]


def window_rng(seed: int, first_clip: str) -> np.random.Generator:
    """The generator of one window's pause noise: from the seed and its first clip's path,
    so a window sounds the same stored or streamed, in any process."""
    return np.random.default_rng([seed, zlib.crc32(str(first_clip).encode())])


def packed_window(paths: list[str], sentences: list[str], pauses: list[float], timestamped: bool,
                  processor, seed: int, max_label_tokens: int = MAX_LABEL_TOKENS,
                  language: str = "") -> dict:
    """Decode, join and featurize one window; returns its row of the packed schema. Its
    labels carry `language`'s token when given (a replay window), else the run's.

    A window of one clip whose timestamp labels would pass `max_label_tokens` gets the
    recipe's labels (timestamps False); ValueError naming the clips when even those pass.
    """
    from helpers.data.features import mel_frames

    arrays = [load_audio(path) for path in paths]
    audio, offsets = join_window(arrays, pauses, window_rng(seed, paths[0]), paths)
    labels = window_labels(processor.tokenizer, sentences,
                           speech_segments(arrays, offsets) if timestamped else None)
    if timestamped and len(labels) > max_label_tokens:
        labels, timestamped = window_labels(processor.tokenizer, sentences, None), False
    labels = relabel_language([labels], [language], processor.tokenizer)[0]
    if len(labels) > max_label_tokens:
        raise ValueError(f"clips {paths}: {len(labels)} label tokens together, more than "
                         f"{max_label_tokens}; run helpers.data.filter.filter_corpus first.")
    frames, pad = mel_frames(audio, processor.feature_extractor)
    return {"clips": list(paths), "sentence": " ".join(s.strip() for s in sentences),
            "duration": len(audio) / SAMPLE_RATE, COUNT_COLUMN: len(paths),
            "timestamps": bool(timestamped), "mel_frames": frames, "mel_pad": pad, "labels": labels}


# ---------------------------------------------------------------- datasets


def packed_schema(processor) -> Features:
    """Columns of a packed training dataset (see the module docstring)."""
    return Features({"clips": List(Value("string")), "sentence": Value("string"),
                     "duration": Value("float32"), COUNT_COLUMN: Value("int32"),
                     "timestamps": Value("bool"),
                     "mel_frames": Array2D(shape=(None, processor.feature_extractor.feature_size),
                                           dtype="float32"),
                     "mel_pad": Value("float32"), "labels": List(Value("int64"))})


def _columns(rows: list[dict]) -> dict:
    """Rows of the packed schema -> the column dict datasets.map expects."""
    names = ("clips", "sentence", "duration", COUNT_COLUMN, "timestamps", "mel_frames",
             "mel_pad", "labels")
    return {name: [row[name] for row in rows] for name in names}


def _windows_batch(batch: dict, processor, seed: int, max_label_tokens: int, parent_pid: int) -> dict:
    """datasets.map function over planned windows ("clips", "sentences", "pauses",
    "timestamps" maybe): their packed rows."""
    from helpers.data.features import single_thread_if_forked

    single_thread_if_forked(parent_pid)
    flags = batch.get("timestamps") or [False] * len(batch["clips"])
    languages = batch.get("language") or [""] * len(batch["clips"])
    return _columns([packed_window(paths, sentences, pauses, flag, processor, seed, max_label_tokens,
                                   language)
                     for paths, sentences, pauses, flag, language
                     in zip(batch["clips"], batch["sentences"], batch["pauses"], flags, languages)])


def prepare_packed_features(rows: Dataset, processor, timestamp_share: float = 0.0, seed: int = 42,
                            batch_size: int = 4, num_proc: int | None = None,
                            cache_file_name: str | None = None) -> Dataset:
    """Notebook 01's training features with packing: `rows` ("audio", "sentence",
    "duration", the kept rows of filter_corpus) packed by `pack_rows`, `timestamp_share` of
    the windows (chosen with `seed`) labelled with timestamps, each window decoded, joined
    and turned into compact log-mel features and labels (packed_window). `batch_size`:
    windows per map call (each about 30 s of audio). Returns the packed Dataset."""
    from helpers.data.timestamps import with_timestamp_flags

    windows = with_timestamp_flags(pack_rows(rows, processor.tokenizer, seed), timestamp_share, seed)
    return windows.map(_windows_batch, batched=True, batch_size=batch_size, num_proc=num_proc,
                       fn_kwargs={"processor": processor, "seed": seed,
                                  "max_label_tokens": MAX_LABEL_TOKENS, "parent_pid": os.getpid()},
                       remove_columns=windows.column_names, features=packed_schema(processor),
                       writer_batch_size=16, cache_file_name=cache_file_name,
                       desc="packing 30 s windows")


def _stream_block(batch: dict, processor, seed: int, max_label_tokens: int, parent_pid: int) -> dict:
    """datasets.map function over a block of streamed clip rows: plan the block's windows
    (in stream order) and return their packed rows."""
    from helpers.data.features import single_thread_if_forked

    single_thread_if_forked(parent_pid)
    rng = window_rng(seed, f"block:{batch['audio'][0]}")
    windows = windows_of(batch, processor.tokenizer, rng)
    return _columns([packed_window(paths, sentences, pauses, flag, processor, seed, max_label_tokens,
                                   language)
                     for paths, sentences, pauses, flag, language
                     in zip(windows["clips"], windows["sentences"], windows["pauses"],
                            windows["first_flag"], windows["language"])])


def pack_stream(stream, columns: list[str], processor, seed: int = 42):
    """A stream of clip rows (datasets.IterableDataset with the columns `columns`: "audio",
    "sentence", "duration" and maybe "timestamps") -> a stream of packed windows, each block
    of STREAM_BLOCK consecutive clips packed as it is read."""
    return stream.map(_stream_block, batched=True, batch_size=STREAM_BLOCK,
                      fn_kwargs={"processor": processor, "seed": seed,
                                 "max_label_tokens": MAX_LABEL_TOKENS, "parent_pid": os.getpid()},
                      remove_columns=list(columns), features=packed_schema(processor))


# ---------------------------------------------------------------- what a step holds


def packing_summary(dataset: Dataset) -> dict:
    """Figures of a packed dataset: windows, clips, clips and audio seconds per window, the
    share of the 30 s windows filled with audio, windows with timestamps, longest labels."""
    counts, seconds = dataset[COUNT_COLUMN], dataset["duration"]
    windows = len(dataset)
    return {"windows": windows, "clips": int(sum(counts)),
            "clips_per_window": round(sum(counts) / max(windows, 1), 2),
            "seconds_per_window": round(float(np.mean(seconds)) if windows else 0.0, 2),
            "audio_share": round(float(np.sum(seconds)) / (WINDOW_SECONDS * max(windows, 1)), 3),
            "timestamped_windows": int(sum(dataset["timestamps"])),
            "longest_labels": max((len(ids) for ids in dataset["labels"]), default=0)}


def describe_training_data(dataset, config) -> str:
    """One sentence for notebook 04: how many clips a step holds and what an epoch is."""
    import math

    world = int(os.environ.get("WORLD_SIZE", "1"))
    per_step = config.batch_size * config.gradient_accumulation_steps * world
    if not hasattr(dataset, "__len__"):
        unit = "packed windows of several clips" if config.pack else "clips"
        return f"a stream: each step reads {per_step} {unit}; {config.max_steps} steps."
    if COUNT_COLUMN not in dataset.column_names:
        steps = math.ceil(len(dataset) / per_step)
        return (f"{len(dataset)} clips, one a sample: a step holds {per_step} clips; "
                f"an epoch (each clip once) is {steps} steps.")
    summary = packing_summary(dataset)
    steps = math.ceil(summary["windows"] / per_step)
    return (f"{summary['clips']} clips packed into {summary['windows']} windows of "
            f"{summary['clips_per_window']:.1f} clips ({summary['seconds_per_window']:.1f} s) on "
            f"average: a step of {per_step} windows holds about "
            f"{per_step * summary['clips_per_window']:.0f} clips; an epoch (each clip once) is "
            f"{steps} steps.")
