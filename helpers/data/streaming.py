"""Stream the training corpus: log-mel features computed on the fly, never written to disk.

Notebook 01 normally materializes the features (only the frames that see audio: 80 float32
per 10 ms, 32 KB per second of audio, 4 to 7 times the size of a Common Voice MP3; the
recipe's way stores all 3000 frames, 960 KB per clip), so 100 hours of speech need about
12 GB of disk.
With `streaming=True` in the run's settings, training reads the filtered rows of the
corpus instead and computes each clip's features when a batch asks for it, through a
`datasets.IterableDataset` (shuffle buffer, then the same feature function as notebook 01).

What is still read up front: the corpus's row list and the filter pass of
`helpers.data.filter.filter_corpus` (every clip is decoded once to check it, nothing is stored),
so dropped rows are still counted. The audio files themselves must be readable (a local
folder, or a mounted bucket/Drive); Hub datasets are downloaded by `helpers.data` first.

An IterableDataset has no length, so the Trainer needs `max_steps`; when the stream runs
out before `max_steps`, the Trainer starts it again with a new shuffle (`set_epoch`).
With more than one process each reads its own shards (no clip is decoded twice). With
`pack=True` each block of consecutive streamed clips is packed into 30 s windows as it is
read (`helpers.data.packing.pack_stream`).
"""
from __future__ import annotations

import os

from datasets import Dataset, IterableDataset

from helpers.config import RunConfig

SHARDS = 64  # the stream is cut into this many shards: their order is shuffled each epoch,


# and under torchrun/accelerate each process reads its own share of them


def training_rows(config: RunConfig, tokenizer) -> tuple[Dataset, dict]:
    """The filtered rows ("audio" path, "sentence", "duration") of the training splits.

    Same rows as notebook 01 keeps: every split of `config.train_splits` filtered, joined,
    and capped to `config.max_train_clips` by a seeded shuffle. Returns (rows, reports).
    """
    from datasets import concatenate_datasets

    from helpers.data.prepare import load_filtered_split
    from helpers.data.replay import with_replay

    parts, reports = [], {}
    for split in config.train_splits:
        kept, reports[split] = load_filtered_split(config, split, tokenizer)
        reports[split].pop("dropped_rows", None)
        parts.append(kept)
    rows = concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    if config.max_train_clips is not None and len(rows) > config.max_train_clips:
        rows = rows.shuffle(seed=config.seed).select(range(config.max_train_clips))
    rows, replayed = with_replay(rows, config, tokenizer)
    if replayed:
        reports["replay"] = replayed
    return rows, reports


def stream_features(rows: Dataset, processor, seed: int = 42, shuffle_buffer: int = 256,
                    batch_size: int = 16, num_shards: int = 1,
                    timestamp_share: float = 0.0, pack: bool = False) -> IterableDataset:
    """An IterableDataset of rows with features ("mel_frames", "mel_pad", see helpers.data.features)
    and "labels" computed as they are read.

    rows: dataset with "audio" (path) and "sentence" (e.g. from `training_rows`);
    shuffle_buffer: rows held for shuffling (the stream is shuffled within this window and
    its shard order); batch_size: clips decoded per feature-extraction call;
    timestamp_share: the share of rows (chosen with `seed` before shuffling, so the same rows
    as notebook 01 picks) given timestamp labels; pack: clips packed into 30 s windows as they
    are read (`helpers.data.packing.pack_stream`). The feature function is notebook 01's
    (`helpers.data.features`, `helpers.data.packing`), so both paths give identical inputs.
    """
    from helpers.data.features import KEEP_COLUMNS, _feature_schema, _features_batch
    from helpers.data.timestamps import with_timestamp_flags

    missing = [c for c in ("audio", "sentence") if c not in rows.column_names]
    if missing:
        raise ValueError(f"rows lack column(s) {missing} (have {rows.column_names}); "
                         "load them with helpers.data.corpora.load_corpus.")
    rows = with_timestamp_flags(rows, timestamp_share, seed)
    stream = rows.to_iterable_dataset(num_shards=max(1, min(num_shards, len(rows))))
    stream = stream.shuffle(seed=seed, buffer_size=shuffle_buffer)
    if pack:
        from helpers.data.packing import pack_stream

        return pack_stream(stream, rows.column_names, processor, seed)
    remove = [c for c in rows.column_names if c not in KEEP_COLUMNS]
    return stream.map(_features_batch, batched=True, batch_size=batch_size,
                      fn_kwargs={"processor": processor, "max_label_tokens": 448,
                                 "parent_pid": os.getpid()},
                      remove_columns=remove, features=_feature_schema(rows, processor))


def streaming_dataset(config: RunConfig, processor) -> IterableDataset:
    """The training stream for a run with `streaming=True` (see the module docstring).

    Raises ValueError when `config.max_steps` is not set (an IterableDataset has no length,
    so "3 epochs" cannot be turned into a number of steps).
    """
    if config.max_steps is None or config.max_steps <= 0:
        raise ValueError("streaming=True needs max_steps > 0 (a stream has no length, so the "
                         "Trainer cannot count epochs); set MAX_STEPS, e.g. epochs x clips / "
                         "batch size.")
    rows, _ = training_rows(config, processor.tokenizer)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return stream_features(rows, processor, seed=config.seed,
                           shuffle_buffer=config.shuffle_buffer, num_shards=max(SHARDS, world),
                           timestamp_share=config.timestamp_share, pack=config.pack)
