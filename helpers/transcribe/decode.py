"""Batched transcription of clips up to 30 s: Whisper's generate with this project's rules.

Every path that decodes (the commands, notebooks 02 and 05, WER during training, the
app, long-form windows) goes through `generate_ids`: Whisper's temperature fallback
against repetition loops, its sampling seeded (`DECODE_SEED`) so a run repeats exactly,
and on a CPU bitsandbytes' own fast path for 8-bit layers.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from helpers.audio import SAMPLE_RATE, WINDOW_SECONDS, AudioError, load_audio
from helpers.model.load import dequantized_8bit_on_cpu

MAX_NEW_TOKENS = 128  # the recipe's generation max length


# Whisper's own guard against repetition loops and garbage (OpenAI's decoder, paper
# section 4.5): decode greedily; when the result compresses too well (a loop) or its mean
# token log-probability is too low, decode again at the next temperature, by sampling.
# transformers 5.24 applies these rules to clips under 30 s as well (generation_whisper.py,
# generate_with_fallback). Its compression ratio is computed on token ids, where 1.35 is
# the value its documentation gives for OpenAI's 2.4 on text.
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


COMPRESSION_RATIO_THRESHOLD = 1.35


LOGPROB_THRESHOLD = -1.0


DECODE_SEED = 0  # the sampling at temperatures > 0 is seeded: a run is reproducible


def decoding_arguments(fallback: bool = True) -> dict:
    """generate() arguments: Whisper's temperature fallback, or plain greedy decoding."""
    if not fallback:
        return {"temperature": 0.0}
    return {"temperature": FALLBACK_TEMPERATURES,
            "compression_ratio_threshold": COMPRESSION_RATIO_THRESHOLD,
            "logprob_threshold": LOGPROB_THRESHOLD}


def transcribe_arrays(model, processor, audios: list[np.ndarray],
                      max_new_tokens: int = MAX_NEW_TOKENS, fallback: bool = True) -> list[str]:
    """Transcribe 16 kHz mono float arrays in one batch; returns one string per array.

    Language and task come from `model.generation_config` (set by `load_model`), so the
    same call serves English-only and multilingual models. See `generate_ids`.
    """
    ids = generate_ids(model, processor, audios, max_new_tokens, fallback)
    return [text.strip() for text in processor.tokenizer.batch_decode(ids, skip_special_tokens=True)]


def generate_ids(model, processor, audios: list[np.ndarray],
                 max_new_tokens: int = MAX_NEW_TOKENS, fallback: bool = True,
                 **generate_kwargs) -> torch.Tensor:
    """Whisper's generate on a batch of 16 kHz arrays: (batch, tokens) ids of the new
    tokens (no prompt), at most max_new_tokens of them.

    fallback=True decodes with Whisper's temperature fallback (`decoding_arguments`), its
    sampling seeded with DECODE_SEED without touching the caller's random state;
    False decodes greedily only. generate_kwargs: more arguments for Whisper's generate
    (helpers.long_form passes return_timestamps=True, return_segments=True; it then returns
    what generate returns for them, a dict with "segments").
    """
    inputs = processor.feature_extractor(audios, sampling_rate=SAMPLE_RATE, return_tensors="pt",
                                         return_attention_mask=True)
    features = inputs.input_features.to(model.device, dtype=_input_dtype(model))
    generation_config = copy.deepcopy(model.generation_config)
    # Whisper's generate adds the prompt's length (start, language, task tokens) to
    # max_length itself, so max_length = max_new_tokens caps the new tokens at that; passing
    # max_new_tokens beside the model's max_length=448 instead draws a warning every call.
    generation_config.max_new_tokens, generation_config.max_length = None, max_new_tokens
    cuda = [model.device] if model.device.type == "cuda" else []
    with (torch.inference_mode(), torch.random.fork_rng(devices=cuda),
          dequantized_8bit_on_cpu(model)):  # 2-3x faster 8-bit decoding on a CPU
        torch.manual_seed(DECODE_SEED)
        ids = model.generate(input_features=features, generation_config=generation_config,
                             attention_mask=inputs.attention_mask.to(model.device),
                             **decoding_arguments(fallback), **generate_kwargs)
    return ids


def _input_dtype(model) -> torch.dtype:
    """The dtype the encoder's first convolution expects (fp16 models want fp16 input)."""
    encoder = model.get_encoder()
    return encoder.conv1.weight.dtype


def transcribe_paths(model, processor, paths: list[Path], batch_size: int = 8,
                     progress: bool = True, fallback: bool = True
                     ) -> Iterator[tuple[Path, str | None, str | None]]:
    """Yield (path, text, error) for each path, in order; unreadable audio yields an error.

    fallback: Whisper's temperature fallback (see `decoding_arguments`), or greedy only.
    """
    for start in tqdm(range(0, len(paths), batch_size), desc="transcribing",
                      disable=not progress, unit="batch"):
        batch = paths[start:start + batch_size]
        audios, readable, failed = read_batch(batch)
        texts = dict(zip(readable, transcribe_arrays(model, processor, audios,
                                                     fallback=fallback))) if audios else {}
        for path in batch:
            yield path, texts.get(path), failed.get(path)


def read_batch(paths: list[Path]) -> tuple[list[np.ndarray], list[Path], dict[Path, str]]:
    """Load clips of up to 30 s: (16 kHz arrays, the paths they came from, {path: error}
    for each path that could not be read or is too long)."""
    audios, readable, failed = [], [], {}
    for path in paths:
        try:
            audios.append(_load_window(path))
            readable.append(path)
        except AudioError as error:
            failed[path] = str(error)
    return audios, readable, failed


def _load_window(path: Path) -> np.ndarray:
    """load_audio(path); AudioError naming the file when it is longer than WINDOW_SECONDS."""
    audio = load_audio(path)
    if len(audio) > WINDOW_SECONDS * SAMPLE_RATE:
        raise AudioError(f"{path}: {len(audio) / SAMPLE_RATE:.1f} s of audio; Whisper hears "
                         f"{WINDOW_SECONDS} s at a time and only the first {WINDOW_SECONDS} s would be "
                         "transcribed. Cut it into pieces under 30 s first.")
    return audio
