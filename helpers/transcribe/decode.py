"""Batched transcription of clips up to 30 s: Whisper's generate with this project's rules.

Every path that decodes (the commands, notebooks 02, 05 and 06, WER during training, the
app, long-form windows) goes through `generate_ids`: Whisper's temperature fallback
against repetition loops, its sampling seeded (`DECODE_SEED`) so a run repeats exactly, a
token cap that grows with the audio's length (`token_cap`), fp16 autocast on a CUDA GPU as
in training (`decoding_autocast`), and on a CPU bitsandbytes' own fast path for 8-bit
layers.
"""
from __future__ import annotations

import copy
import math
from contextlib import nullcontext
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from helpers.audio import SAMPLE_RATE, WINDOW_SECONDS, AudioError, load_audio
from helpers.data.features import inference_features
from helpers.model.load import dequantized_8bit_on_cpu

# How many tokens a transcript may take (`token_cap`). Whisper's decoder has 448
# positions, and they hold the prompt too (<|startoftranscript|>, the language and task
# tokens, <|notimestamps|>): that is the hard limit, and the label filter of notebook 01
# keeps no label longer. OpenAI's decoder stops at 224 new tokens (sample_len =
# n_text_ctx // 2) because it keeps the other half for the previous window's text as a
# prompt; we never prompt with earlier text (helpers.transcribe.long_form), so a transcript
# may use every position the prompt leaves: 444 tokens for a multilingual model. The
# recipe's 128 (generation_max_length) cut Hindi, whose ~5 tokens per word make 221 tokens
# of a 16 s sentence (issue 22). Below that limit the cap grows with the audio's length,
# at MAX_SPEECH_TOKENS_PER_SECOND, so a repetition loop on a short clip stops early
# instead of running to the limit: a loop costs what its clip's speech could, not 444
# tokens, and the fallback decodes it again up to five times.
WHISPER_DECODER_POSITIONS = 448


# Faster than any speech we transcribe: 25 tokens/s is 5 Hindi words a second (espeak-ng
# Hindi speaks 14 to 16: 221 tokens in 16 s, data/long-sentence/hi's 385 in 25.6 s), so a
# transcript that reaches its cap is not speech but a loop, and counts as one
# (`Transcript.capped`).
MAX_SPEECH_TOKENS_PER_SECOND = 25


# Tokens allowed on top of the rate: a clip of a second or two may hold one long word
# (10 tokens of Devanagari), and a timestamped window adds two tokens per segment.
EXTRA_TOKENS = 32


def token_cap(seconds: float, prompt_tokens: int,
              positions: int = WHISPER_DECODER_POSITIONS) -> int:
    """The most new tokens a transcript of `seconds` of audio may take (the end-of-text
    token included) after a prompt of `prompt_tokens`, in a decoder of `positions`:
    MAX_SPEECH_TOKENS_PER_SECOND per second plus EXTRA_TOKENS, at most what the prompt
    leaves of the positions (see WHISPER_DECODER_POSITIONS for the choice)."""
    by_length = math.ceil(MAX_SPEECH_TOKENS_PER_SECOND * seconds) + EXTRA_TOKENS
    return max(1, min(by_length, positions - prompt_tokens))


def token_cap_rule() -> str:
    """`token_cap` in words, for model cards, benchmark settings and messages."""
    return (f"at most {MAX_SPEECH_TOKENS_PER_SECOND} tokens per second of audio + {EXTRA_TOKENS}, "
            f"within Whisper's {WHISPER_DECODER_POSITIONS} decoder positions (prompt included)")


def clip_token_caps(model, audios: list[np.ndarray], timestamps: bool = False,
                    limit: int | None = None) -> list[int]:
    """`token_cap` of each 16 kHz array for this model's prompt: <|startoftranscript|>, the
    language and task for a multilingual model, <|notimestamps|> unless `timestamps`.
    limit: a lower cap for every clip (tests on random weights, which never stop)."""
    multilingual = bool(getattr(model.generation_config, "is_multilingual", False))
    prompt = 1 + 2 * multilingual + (0 if timestamps else 1)
    positions = getattr(model.config, "max_target_positions", WHISPER_DECODER_POSITIONS)
    caps = [token_cap(len(audio) / SAMPLE_RATE, prompt, positions) for audio in audios]
    return [min(cap, limit) for cap in caps] if limit else caps


class Transcript(str):
    """A transcript (a str) that knows whether the decoder ran into its token cap
    (`capped`) instead of ending it: at MAX_SPEECH_TOKENS_PER_SECOND no speech gets there,
    so a capped transcript counts as a repetition loop (`helpers.metrics.is_loop`)."""

    capped: bool = False

    def __new__(cls, text: str, capped: bool = False):
        transcript = super().__new__(cls, text)
        transcript.capped = bool(capped)
        return transcript


def decoding_autocast(device: torch.device):
    """The autocast that decoding on `device` runs under: fp16 on a CUDA GPU, as the
    Trainer trains with fp16=True and as WER during training decodes; none elsewhere (on a
    CPU float32 is exact, and faster than emulated half precision)."""
    if torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return nullcontext()


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
                      max_new_tokens: int | None = None, fallback: bool = True) -> list[Transcript]:
    """Transcribe 16 kHz mono float arrays in one batch; returns one Transcript (a str) per
    array, `capped` when it ran into its clip's token cap.

    Language and task come from `model.generation_config` (set by `load_model`), so the
    same call serves English-only and multilingual models. Each clip gets its own cap
    (`clip_token_caps`; max_new_tokens: a lower one for all, None: none lower): the batch
    is decoded to the largest, and each row is cut back to its clip's own, so a clip's
    transcript does not depend on the clips batched with it. See `generate_ids`.
    """
    caps = clip_token_caps(model, audios, limit=max_new_tokens)
    ids = generate_ids(model, processor, audios, max(caps), fallback)
    stops = {processor.tokenizer.eos_token_id, processor.tokenizer.pad_token_id,
             model.generation_config.eos_token_id, model.generation_config.pad_token_id}
    return [Transcript(processor.tokenizer.decode(tokens, skip_special_tokens=True).strip(), capped)
            for tokens, capped in cut_at_caps(ids.tolist(), caps, stops)]


def cut_at_caps(rows: list[list[int]], caps: list[int], stops: set[int]) -> list[tuple[list[int], bool]]:
    """generate's new tokens, one row per clip (no end-of-text: shorter rows are padded with
    it, the batch's longest has none) -> per row (its tokens up to its end or its clip's cap,
    whether it ran into that cap instead of ending before it). stops: the end/pad token ids."""
    cut = []
    for row, cap in zip(rows, caps):
        length = next((i for i, token in enumerate(row) if token in stops), len(row))
        cut.append((row[:min(length, cap)], length >= cap))
    return cut


def generate_ids(model, processor, audios: list[np.ndarray],
                 max_new_tokens: int | None = None, fallback: bool = True,
                 **generate_kwargs) -> torch.Tensor:
    """Whisper's generate on a batch of 16 kHz arrays: (batch, tokens) ids of the new
    tokens (no prompt, no end-of-text; shorter rows padded), at most max_new_tokens of
    them (None: the cap of the longest clip, `clip_token_caps`).

    fallback=True decodes with Whisper's temperature fallback (`decoding_arguments`), its
    sampling seeded with DECODE_SEED without touching the caller's random state;
    False decodes greedily only. On a CUDA GPU it runs under `decoding_autocast`.
    generate_kwargs: more arguments for Whisper's generate (helpers.long_form passes
    return_timestamps=True, return_segments=True; it then returns what generate returns
    for them, a dict with "segments").
    """
    if max_new_tokens is None:
        timestamps = bool(generate_kwargs.get("return_timestamps"))
        max_new_tokens = max(clip_token_caps(model, audios, timestamps))
    # padded as faster-whisper and OpenAI pad (helpers.data.features.INFERENCE_PADDING)
    extractor = processor.feature_extractor
    features = torch.from_numpy(inference_features(audios, extractor))
    features = features.to(model.device, dtype=_input_dtype(model))
    # which frames hold the clip, as the feature extractor marks them (the encoder attends
    # to all 3000; generate asks for the mask of a batch)
    mask = torch.zeros(features.shape[0], features.shape[-1], dtype=torch.long)
    for row, audio in zip(mask, audios):
        row[:-(-len(audio) // extractor.hop_length)] = 1
    generation_config = copy.deepcopy(model.generation_config)
    # Whisper's generate adds the prompt's length (start, language, task tokens) to
    # max_length itself (and keeps the sum within the decoder's positions), so max_length =
    # max_new_tokens caps the new tokens at that; passing max_new_tokens beside the model's
    # max_length=448 instead draws a warning every call.
    generation_config.max_new_tokens, generation_config.max_length = None, max_new_tokens
    cuda = [model.device] if model.device.type == "cuda" else []
    with (torch.inference_mode(), torch.random.fork_rng(devices=cuda),
          decoding_autocast(model.device),
          dequantized_8bit_on_cpu(model)):  # 2-3x faster 8-bit decoding on a CPU
        torch.manual_seed(DECODE_SEED)
        ids = model.generate(input_features=features, generation_config=generation_config,
                             attention_mask=mask.to(model.device),
                             **decoding_arguments(fallback), **generate_kwargs)
    return ids


def _input_dtype(model) -> torch.dtype:
    """The dtype the encoder's first convolution expects (fp16 models want fp16 input)."""
    encoder = model.get_encoder()
    return encoder.conv1.weight.dtype


def transcribe_paths(model, processor, paths: list[Path], batch_size: int = 8,
                     progress: bool = True, fallback: bool = True
                     ) -> Iterator[tuple[Path, Transcript | None, str | None]]:
    """Yield (path, transcript, error) for each path, in order; unreadable audio yields an
    error. Each clip gets its own token cap (see `transcribe_arrays`).

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
