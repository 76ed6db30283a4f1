"""Whisper inputs from a corpus: log-mel features and label ids, computed with datasets.map.

Input: a dataset with our schema ("audio" file path, "sentence"), usually the kept rows of
`helpers.data.filter.filter_corpus`. Output columns: "mel_frames" and "mel_pad" (the clip's
log-mel features, stored compactly, see below), "labels" (tokenizer ids incl. the prefix
tokens and eos), and, for display next to predictions later, "audio", "sentence" and
"duration" when present. Every other column is removed. Audio is decoded by
`helpers.audio` (soundfile + soxr).

Compact storage: Whisper reads 3000 log-mel frames (30 s) per clip, and the feature
extractor pads every clip with zeros to 30 s, so every frame after the clip's end holds one
and the same value. "mel_frames" keeps the frames that see audio (frames x n_mels float32,
time first: about 500 x 80 for a 5 s clip) and "mel_pad" that value; `full_features`
rebuilds the n_mels x 3000 array, and the collator does so for every batch. The values
equal the extractor's to float32 rounding: the STFT and mel product run on other shapes,
so BLAS may round them otherwise (max difference measured: 0 on all 340 cv-mini train
clips on an Intel Xeon with AVX-512; 1.2e-7, one ulp, in a few of 240,000 values on an
AMD EPYC with AVX-512; the tests allow 1e-6).
A 5 s Common Voice clip takes about 160 KB on disk instead of 960 KB.
"""

import os
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np
from datasets import Array2D, Dataset, Features, List, Value

from helpers.audio import SAMPLE_RATE, load_audio
from helpers.data.replay import LANGUAGE_COLUMN, relabel_language

# with timestamp_share > 0 (helpers.data.timestamps): a bool column saying which rows got timestamp
# labels; kept so that a reader (and the tests) can see which ones did
TIMESTAMP_COLUMN = "timestamps"


# carried along for display, not training (each only when the dataset has it); with replay
# (helpers.data.replay) LANGUAGE_COLUMN names the language of each replayed row
KEEP_COLUMNS = ("audio", "sentence", "duration", TIMESTAMP_COLUMN, LANGUAGE_COLUMN)


def _feature_schema(dataset: Dataset, processor) -> Features:
    """Output features: kept columns, mel_frames (frames x n_mels float32), mel_pad, labels."""
    extractor = processor.feature_extractor
    schema = {name: dataset.features[name] for name in KEEP_COLUMNS
              if name in dataset.features}
    schema["mel_frames"] = Array2D(shape=(None, extractor.feature_size), dtype="float32")
    schema["mel_pad"] = Value("float32")
    schema["labels"] = List(Value("int64"))
    return Features(schema)


def _check_batch(paths, arrays, labels, max_samples: int, max_label_tokens: int) -> None:
    """Raise ValueError naming the file when a clip or its labels would not fit the model."""
    for path, audio, ids in zip(paths, arrays, labels):
        if len(audio) > max_samples:
            raise ValueError(f"{path}: {len(audio) / SAMPLE_RATE:.2f} s of audio; Whisper's "
                             f"feature extractor would cut it at {max_samples / SAMPLE_RATE:g} s."
                             " Run helpers.data.filter.filter_corpus first.")
        if len(ids) > max_label_tokens:
            raise ValueError(f"{path}: the sentence has {len(ids)} label tokens, more than "
                             f"{max_label_tokens}. Run helpers.data.filter.filter_corpus first.")


def mel_frames(audio: np.ndarray, extractor) -> tuple[np.ndarray, np.float32]:
    """The log-mel features of one 16 kHz clip, compactly: (frames, pad value).

    frames: (seen frames, n_mels) float32, time first; pad: the value of every later frame
    up to the extractor's 3000. `full_features(frames, pad)` equals
    `extractor(audio, sampling_rate=16000).input_features[0]` to float32 rounding (see the
    module docstring; tests/test_features.py), in a fraction of its time for clips under 30 s.

    How: the extractor pads the clip with zeros to 30 s and runs the STFT over all 3000
    frames; a frame whose window holds only padding has zero power, so log10(1e-10) before
    the final clamp (at the clip's maximum - 8) and scale. Here the STFT runs on the clip plus
    n_fft zeros: every frame that sees audio, and the reflect-padding at its end mirrors
    zeros, as in the 30 s signal. The clamp and scale then run as the extractor's do, with
    log10(1e-10) standing for the frames not computed. Clips of 30 s or more, and an
    extractor that dithers (adds noise to every frame, padding included), go through the
    extractor itself (all 3000 frames kept).
    """
    import torch

    audio = np.asarray(audio, dtype=np.float32)
    n_fft, hop = extractor.n_fft, extractor.hop_length
    if getattr(extractor, "dither", 0.0) or len(audio) + n_fft >= extractor.n_samples:
        full = extractor(audio, sampling_rate=SAMPLE_RATE, return_tensors="np").input_features[0]
        return np.ascontiguousarray(full.T, dtype=np.float32), np.float32(full.min())
    segment = np.zeros(len(audio) + n_fft, dtype=np.float32)
    segment[:len(audio)] = audio
    stft = torch.stft(torch.from_numpy(segment), n_fft, hop, window=torch.hann_window(n_fft),
                      return_complex=True)
    power = (stft.abs() ** 2).contiguous()                    # (n_fft // 2 + 1, seen frames)
    mel = torch.from_numpy(extractor.mel_filters).to(torch.float32).T @ power
    floor = torch.tensor(1e-10, dtype=torch.float32).log10()  # an all-padding frame
    log_spec = torch.clamp(mel, min=1e-10).log10()              # >= floor: it bounds the max
    clamp = log_spec.max() - 8.0
    frames = (torch.maximum(log_spec, clamp) + 4.0) / 4.0
    pad = (torch.maximum(floor, clamp) + 4.0) / 4.0
    return frames.T.contiguous().numpy(), np.float32(pad.item())


def full_features(frames, pad, total_frames: int = 3000) -> np.ndarray:
    """(n_mels, total_frames) float32 log-mel array from `mel_frames`' (frames, pad)."""
    frames = np.asarray(frames, dtype=np.float32)
    out = np.full((frames.shape[1], total_frames), np.float32(pad), dtype=np.float32)
    out[:, :frames.shape[0]] = frames.T
    return out


# ------------------------------------------------------------------ padding conventions
# Whisper hears 3000 log-mel frames (30 s); a shorter clip is padded to that in one of two ways:
# - "silence": the audio is padded with zeros to 30 s before the log-mel, so every frame after
#   the clip holds the clip's floor value (mel_pad). transformers' WhisperFeatureExtractor and
#   whisper.cpp (its log-mel runs over the clip plus 30 s of zeros) pad this way.
# - "zeros": the log-mel of the clip alone, its frames (samples // hop, OpenAI's count) padded
#   with 0.0 to 3000 frames in log-mel space. OpenAI's `transcribe` and faster-whisper pad so,
#   and OpenAI's models were trained so: the base tiny.en is far better on this one.
# What training and our own inference use is decided here. Measured before (40 espeak sentences,
# CTranslate2 directly, greedy): the base tiny.en 64.7% WER with silence, 41.8% with zeros; an
# adapter trained on silence 14.2% / 17.4%. So decoding pads with zeros (as faster-whisper, the
# base's own convention) and training sees both, so that an adapter also serves whisper.cpp
# and transformers' pipeline. benchmarks/bench_padding.py measures every combination
# (`python benchmarks/run.py --only padding`, docs/benchmarks.md "Padding to 30 s"); run it
# again whenever training sees other padding (clips packed into 30 s windows, for one).
PADDINGS = ("silence", "zeros")


INFERENCE_PADDING = "zeros"  # our decoding pads as faster-whisper and OpenAI do


TRAIN_ZERO_SHARE = 0.5  # share of training examples padded with zeros, the rest with silence


STORED_EXTRA_FRAMES = 3  # mel_frames keeps 1 + (samples + n_fft) // hop frames; OpenAI's count is
                         # samples // hop, that minus 3 (or 2 for a clip ending past mid-hop)


def padded_features(frames, pad, padding: str, total_frames: int = 3000,
                    clip_frames: int | None = None) -> np.ndarray:
    """(n_mels, total_frames) float32 features from `mel_frames`' (frames, pad), padded the
    `padding` way ("silence" or "zeros", see PADDINGS).

    clip_frames: for "zeros", how many frames belong to the clip (samples // hop, as OpenAI
    counts; `inference_features` knows it); default: the stored frames less
    STORED_EXTRA_FRAMES (the same, or one frame of the clip's tail more). Features stored
    whole (a clip of 30 s or more) are not padded either way.
    """
    if padding == "silence":
        return full_features(frames, pad, total_frames)
    if padding != "zeros":
        raise ValueError(f"padding must be one of {PADDINGS}, not {padding!r}")
    frames = np.asarray(frames, dtype=np.float32)
    if len(frames) < total_frames:
        keep = len(frames) - STORED_EXTRA_FRAMES if clip_frames is None else clip_frames
        frames = frames[:max(0, min(keep, len(frames)))]
    return full_features(frames, 0.0, total_frames)


def training_padding(labels, seed: int, zero_share: float = TRAIN_ZERO_SHARE) -> str:
    """The padding one training example gets: "zeros" for a seeded `zero_share` of examples,
    else "silence". Decided by a hash of (seed, the example's label ids), so the same example
    gets the same padding in every epoch, worker process and resumed run."""
    import hashlib

    digest = hashlib.blake2b(f"{seed}:{','.join(map(str, labels))}".encode(), digest_size=8)
    return "zeros" if int.from_bytes(digest.digest(), "little") / 2**64 < zero_share else "silence"


_decoding_padding: ContextVar[str] = ContextVar("decoding_padding", default=INFERENCE_PADDING)


@contextmanager
def decoding_padding(padding: str):
    """Within the block, `inference_features` (so every decoding path: helpers.transcribe,
    helpers.evaluate, the app) pads the `padding` way; for measuring the other convention."""
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, not {padding!r}")
    token = _decoding_padding.set(padding)
    try:
        yield
    finally:
        _decoding_padding.reset(token)


def inference_features(audios: list[np.ndarray], extractor, padding: str | None = None
                       ) -> np.ndarray:
    """(batch, n_mels, nb_max_frames) float32 features of 16 kHz clips for decoding, padded
    the `padding` way (default: INFERENCE_PADDING, or the one `decoding_padding` set);
    every decoding path goes through here."""
    padding = padding or _decoding_padding.get()
    total = extractor.nb_max_frames
    return np.stack([padded_features(*mel_frames(audio, extractor), padding, total,
                                     clip_frames=len(audio) // extractor.hop_length)
                     for audio in audios])


def log_mel(audio: np.ndarray, extractor) -> np.ndarray:
    """Whisper's (n_mels, 3000) float32 log-mel features of one 16 kHz clip (via mel_frames)."""
    return full_features(*mel_frames(audio, extractor), extractor.nb_max_frames)


def single_thread_if_forked(parent_pid: int) -> None:
    """In a forked datasets.map worker (pid != `parent_pid`) run torch single-threaded: the
    feature extractor uses torch, whose OpenMP pool inherited from a parent that already used
    it deadlocks after fork (why torch's DataLoader workers call torch.set_num_threads(1))."""
    if os.getpid() != parent_pid:
        import torch

        torch.set_num_threads(1)


def _features_batch(batch: dict, processor, max_label_tokens: int, parent_pid: int) -> dict:
    """datasets.map function: decode a batch of clips, return mel_frames, mel_pad, labels
    (single-threaded in a forked worker, see `single_thread_if_forked`)."""
    single_thread_if_forked(parent_pid)
    extractor = processor.feature_extractor
    arrays = [load_audio(path) for path in batch["audio"]]
    labels = _labels(processor.tokenizer, batch["sentence"], arrays, batch.get(TIMESTAMP_COLUMN))
    labels = relabel_language(labels, batch.get(LANGUAGE_COLUMN), processor.tokenizer)  # replay rows
    _check_batch(batch["audio"], arrays, labels, extractor.n_samples, max_label_tokens)
    # One clip at a time through mel_frames: the extractor's values, without the STFT of the
    # zero padding up to 30 s, nor storing it (benchmarks/bench_dataprep.py measures both ways).
    frames, pads = zip(*(mel_frames(audio, extractor) for audio in arrays))
    return {"mel_frames": list(frames), "mel_pad": list(pads), "labels": labels}


def _labels(tokenizer, sentences: list[str], arrays, timestamped: list[bool] | None) -> list:
    """Label ids of a batch: the recipe's (<|notimestamps|>), or for rows flagged in
    `timestamped` <|0.00|> text <|speech end|> (helpers.data.timestamps)."""
    labels = tokenizer(sentences).input_ids
    if not timestamped or not any(timestamped):
        return labels
    from helpers.data.timestamps import speech_end, timestamp_labels

    return [timestamp_labels(tokenizer, sentence, speech_end(audio, SAMPLE_RATE)) if flag else ids
            for sentence, audio, flag, ids in zip(sentences, arrays, timestamped, labels)]


def prepare_features(dataset: Dataset, processor, batch_size: int = 16,
                     num_proc: int | None = None, max_label_tokens: int = 448,
                     cache_file_name: str | None = None, timestamp_share: float = 0.0,
                     seed: int = 42) -> Dataset:
    """Add "mel_frames", "mel_pad" and "labels" to `dataset` ("audio" path + "sentence").

    timestamp_share: that share of the rows, chosen with `seed`, gets timestamp labels and
    a True in a "timestamps" column (helpers.data.timestamps); 0 (the recipe) changes nothing.

    Runs a batched `datasets.map` with a progress bar ("log-mel features"); `num_proc`
    worker processes when given. Keeps "audio", "sentence" and "duration"; removes the other
    columns. Raises ValueError naming the file for a clip longer than 30 s or labels longer
    than `max_label_tokens` (filter_corpus drops those), AudioError for undecodable audio.
    `cache_file_name` makes map write to that file instead of memory (about 32 KB per second
    of audio).
    """
    missing = [c for c in ("audio", "sentence") if c not in dataset.column_names]
    if missing:
        raise ValueError(f"dataset lacks column(s) {missing} (has {dataset.column_names}); "
                         "load it with helpers.data.corpora.load_corpus.")
    from helpers.data.timestamps import with_timestamp_flags

    dataset = with_timestamp_flags(dataset, timestamp_share, seed)
    remove = [c for c in dataset.column_names if c not in KEEP_COLUMNS]
    return dataset.map(
        _features_batch, batched=True, batch_size=batch_size, num_proc=num_proc,
        fn_kwargs={"processor": processor, "max_label_tokens": max_label_tokens,
                   "parent_pid": os.getpid()},
        remove_columns=remove, features=_feature_schema(dataset, processor),
        writer_batch_size=max(batch_size, 64),  # at most 60 MB of features buffered at a time
        cache_file_name=cache_file_name, desc="log-mel features")
