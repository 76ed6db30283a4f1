"""Batched transcription, and the command `python -m helpers.transcribe`.

Usage:
    python -m helpers.transcribe [--model SOURCE] [--adapter DIR_OR_HUB_ID] [--language L]
                                 [--precision P] [--batch-size N] [--no-fallback]
                                 [--timestamps] PATH...

PATH is an audio file or a folder (searched recursively for audio files), of any length.
One JSON object per file goes to stdout, `{"path": ..., "text": ...}` for a clip up to 30 s
(decoded in batches), `{"path", "text", "segments": [{"start", "end", "text"}, ...]}` for a
longer file (Whisper's sequential long-form decoding over 30 s windows streamed from the
file, `helpers.long_form.transcribe_long`) and, with --timestamps, for every file. A path
that is missing or not audio gets a one-line error on stderr naming it, the others are
still transcribed, and the exit status is 1. Decoding uses Whisper's temperature fallback
against repetition loops (`decoding_arguments`); --no-fallback decodes greedily only.
stderr shows the progress bar and errors, nothing else.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from helpers.audio import AUDIO_EXTENSIONS, SAMPLE_RATE, AudioError, load_audio
from helpers.models import dequantized_8bit_on_cpu
from helpers.quiet import quiet_libraries

MAX_NEW_TOKENS = 128  # the recipe's generation max length
MAX_SECONDS = 30  # Whisper's window: the feature extractor would silently cut longer audio

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
        audios, readable, failed = [], [], {}
        for path in batch:
            try:
                audios.append(_load_window(path))
                readable.append(path)
            except AudioError as error:
                failed[path] = str(error)
        texts = dict(zip(readable, transcribe_arrays(model, processor, audios,
                                                     fallback=fallback))) if audios else {}
        for path in batch:
            yield path, texts.get(path), failed.get(path)


def _load_window(path: Path) -> np.ndarray:
    """load_audio(path); AudioError naming the file when it is longer than MAX_SECONDS."""
    audio = load_audio(path)
    if len(audio) > MAX_SECONDS * SAMPLE_RATE:
        raise AudioError(f"{path}: {len(audio) / SAMPLE_RATE:.1f} s of audio; Whisper hears "
                         f"{MAX_SECONDS} s at a time and only the first {MAX_SECONDS} s would be "
                         "transcribed. Cut it into pieces under 30 s first.")
    return audio


def expand_paths(paths: Iterable[str]) -> tuple[list[Path], list[str]]:
    """Expand files and folders into audio files; returns (files, errors for bad paths)."""
    files, errors = [], []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
            if not found:
                errors.append(f"{path}: folder holds no audio files ({', '.join(AUDIO_EXTENSIONS)})")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            errors.append(f"{path}: no such file or folder")
    return files, errors


def load_for_transcription(model_source: str | None, adapter: str | None,
                           language: str | None, precision: str):
    """Load the model (and adapter, if given) the command line asked for.

    adapter: a folder, or a Hub id USER/NAME[@REVISION] (`helpers.adapters.resolve_adapter`:
    a folder that exists wins; the same checks either way). Returns (model, processor).
    """
    from helpers.adapters import adapter_base_model, attach_adapter, resolve_adapter
    from helpers.models import load_model

    adapter = resolve_adapter(adapter) if adapter else None
    source = model_source or (adapter_base_model(adapter) if adapter else "embedded")
    model, processor = load_model(source, precision=precision, language=language)
    if adapter:
        model = attach_adapter(model, adapter)
    model.eval()
    return model, processor


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments of `python -m helpers.transcribe`."""
    parser = argparse.ArgumentParser(prog="python -m helpers.transcribe",
                                     description="Transcribe audio files with Whisper (+ LoRA adapter).")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders")
    parser.add_argument("--model", help="model source: embedded, a Hub id, a local or CTranslate2 dir "
                                        "(default: the adapter's base model, else embedded)")
    parser.add_argument("--adapter", help="a LoRA adapter (PEFT format): a folder, or a Hub id "
                                          "USER/NAME[@REVISION]; a folder that exists wins")
    parser.add_argument("--language", help="spoken language, e.g. hindi (multilingual models)")
    parser.add_argument("--precision", default="fp32", help="8bit, 4bit, fp16 or fp32 (default fp32)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--no-fallback", action="store_true",
                        help="greedy decoding only, without Whisper's temperature fallback "
                             "against repetition loops (for comparison)")
    parser.add_argument("--timestamps", action="store_true",
                        help="segments with start/end times for every file (files over 30 s "
                             "always get them: Whisper's long-form decoding, helpers.long_form)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Transcribe the given paths; print JSON lines; return the exit status."""
    args = parse_args(argv)
    quiet_libraries()
    files, errors = expand_paths(args.paths)
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    if files:
        try:
            model, processor = load_for_transcription(args.model, args.adapter,
                                                      args.language, args.precision)
        except (ValueError, OSError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        from helpers.long_form import transcribe_any

        for path, result, error in transcribe_any(model, processor, files, args.batch_size,
                                                  fallback=not args.no_fallback,
                                                  timestamps=args.timestamps):
            if error:
                errors.append(error)
                tqdm.write(f"error: {error}", file=sys.stderr)  # on its own line, under the bar
            else:
                print(json.dumps(result, ensure_ascii=False), flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
