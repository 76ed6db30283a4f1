"""Whisper inputs from a corpus: log-mel features and label ids, computed with datasets.map.

Input: a dataset with our schema ("audio" file path, "sentence"), usually the kept rows of
`helpers.data.filter_corpus`. Output columns: "input_features" (n_mels x 3000 float32 log-mel,
80 x 3000 for large-v2/tiny), "labels" (tokenizer ids incl. the prefix tokens and eos), and,
for display next to predictions later, "audio", "sentence" and "duration" when present.
Every other column is removed. Audio is decoded by `helpers.audio` (soundfile + soxr).
"""
import os

import numpy as np
from datasets import Array2D, Dataset, Features, List, Value

from helpers.audio import SAMPLE_RATE, load_audio

KEEP_COLUMNS = ("audio", "sentence", "duration")  # carried along for display, not training


def _feature_schema(dataset: Dataset, processor) -> Features:
    """Output features: kept columns, input_features as a fixed-size float32 Array2D, labels."""
    extractor = processor.feature_extractor
    schema = {name: dataset.features[name] for name in KEEP_COLUMNS if name in dataset.features}
    schema["input_features"] = Array2D(shape=(extractor.feature_size, extractor.nb_max_frames),
                                       dtype="float32")
    schema["labels"] = List(Value("int64"))
    return Features(schema)


def _check_batch(paths, arrays, labels, max_samples: int, max_label_tokens: int) -> None:
    """Raise ValueError naming the file when a clip or its labels would not fit the model."""
    for path, audio, ids in zip(paths, arrays, labels):
        if len(audio) > max_samples:
            raise ValueError(f"{path}: {len(audio) / SAMPLE_RATE:.2f} s of audio; Whisper's "
                             f"feature extractor would cut it at {max_samples / SAMPLE_RATE:g} s."
                             " Run helpers.data.filter_corpus first.")
        if len(ids) > max_label_tokens:
            raise ValueError(f"{path}: the sentence has {len(ids)} label tokens, more than "
                             f"{max_label_tokens}. Run helpers.data.filter_corpus first.")


def _features_batch(batch: dict, processor, max_label_tokens: int, parent_pid: int) -> dict:
    """datasets.map function: decode a batch of clips, return input_features and labels.

    In a forked worker (pid != `parent_pid`) torch runs single-threaded: the feature
    extractor uses torch, whose OpenMP pool inherited from a parent that already used it
    deadlocks after fork (why torch's DataLoader workers call torch.set_num_threads(1)).
    """
    if os.getpid() != parent_pid:
        import torch

        torch.set_num_threads(1)
    extractor = processor.feature_extractor
    arrays = [load_audio(path) for path in batch["audio"]]
    labels = processor.tokenizer(batch["sentence"]).input_ids
    _check_batch(batch["audio"], arrays, labels, extractor.n_samples, max_label_tokens)
    # One extractor call per clip, not one on the whole batch: the same values, but on CPU
    # about 2.4x faster and without the batch's large STFT buffers (measured in
    # benchmarks/bench_dataprep.py).
    features = np.stack([extractor(audio, sampling_rate=SAMPLE_RATE, return_tensors="np")
                         .input_features[0] for audio in arrays])
    return {"input_features": features.astype(np.float32), "labels": labels}


def prepare_features(dataset: Dataset, processor, batch_size: int = 16,
                     num_proc: int | None = None, max_label_tokens: int = 448,
                     cache_file_name: str | None = None) -> Dataset:
    """Add "input_features" and "labels" to `dataset` (columns "audio" path + "sentence").

    Runs a batched `datasets.map` with a progress bar ("log-mel features"); `num_proc`
    worker processes when given. Keeps "audio", "sentence" and "duration"; removes the other
    columns. Raises ValueError naming the file for a clip longer than 30 s or labels longer
    than `max_label_tokens` (filter_corpus drops those), AudioError for undecodable audio.
    `cache_file_name` makes map write to that file instead of memory (about 1 MB per clip).
    """
    missing = [c for c in ("audio", "sentence") if c not in dataset.column_names]
    if missing:
        raise ValueError(f"dataset lacks column(s) {missing} (has {dataset.column_names}); "
                         "load it with helpers.data.load_corpus.")
    remove = [c for c in dataset.column_names if c not in KEEP_COLUMNS]
    return dataset.map(
        _features_batch, batched=True, batch_size=batch_size, num_proc=num_proc,
        fn_kwargs={"processor": processor, "max_label_tokens": max_label_tokens,
                   "parent_pid": os.getpid()},
        remove_columns=remove, features=_feature_schema(dataset, processor),
        writer_batch_size=max(batch_size, 64),  # about 60 MB of features buffered at a time
        cache_file_name=cache_file_name, desc="log-mel features")
