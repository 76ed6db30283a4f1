"""Batched transcription, and the command `python -m helpers.transcribe`.

Usage:
    python -m helpers.transcribe [--model SOURCE] [--adapter DIR] [--language L]
                                 [--precision P] [--batch-size N] PATH...

PATH is an audio file or a folder (searched recursively for audio files). One JSON object
per file goes to stdout, `{"path": ..., "text": ...}`. A path that is missing or not audio
gets a one-line error on stderr naming it, the others are still transcribed, and the exit
status is 1.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from helpers.audio import AUDIO_EXTENSIONS, SAMPLE_RATE, AudioError, load_audio

MAX_NEW_TOKENS = 128  # the recipe's generation max length
MAX_SECONDS = 30  # Whisper's window: the feature extractor would silently cut longer audio


def transcribe_arrays(model, processor, audios: list[np.ndarray],
                      max_new_tokens: int = MAX_NEW_TOKENS) -> list[str]:
    """Transcribe 16 kHz mono float arrays in one batch; returns one string per array.

    Language and task come from `model.generation_config` (set by `load_model`), so the
    same call serves English-only and multilingual models.
    """
    inputs = processor.feature_extractor(audios, sampling_rate=SAMPLE_RATE,
                                         return_tensors="pt")
    features = inputs.input_features.to(model.device, dtype=_input_dtype(model))
    with torch.inference_mode():
        ids = model.generate(input_features=features, max_new_tokens=max_new_tokens)
    return [text.strip() for text in
            processor.tokenizer.batch_decode(ids, skip_special_tokens=True)]


def _input_dtype(model) -> torch.dtype:
    """The dtype the encoder's first convolution expects (fp16 models want fp16 input)."""
    encoder = model.get_encoder()
    return encoder.conv1.weight.dtype


def transcribe_paths(model, processor, paths: list[Path], batch_size: int = 8,
                     progress: bool = True) -> Iterator[tuple[Path, str | None, str | None]]:
    """Yield (path, text, error) for each path, in order; unreadable audio yields an error."""
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
        texts = dict(zip(readable, transcribe_arrays(model, processor, audios))) if audios else {}
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
    """Load the model (and adapter, if given) the command line asked for."""
    from helpers.adapters import adapter_base_model, attach_adapter
    from helpers.models import load_model

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
    parser.add_argument("--adapter", help="a LoRA adapter directory (PEFT format)")
    parser.add_argument("--language", help="spoken language, e.g. hindi (multilingual models)")
    parser.add_argument("--precision", default="fp32", help="8bit, 4bit, fp16 or fp32 (default fp32)")
    parser.add_argument("--batch-size", type=int, default=8)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Transcribe the given paths; print JSON lines; return the exit status."""
    args = parse_args(argv)
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
        for path, text, error in transcribe_paths(model, processor, files, args.batch_size):
            if error:
                errors.append(error)
                print(f"error: {error}", file=sys.stderr)
            else:
                print(json.dumps({"path": str(path), "text": text}, ensure_ascii=False), flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
