"""Merge a LoRA adapter into its base and export it: `python -m helpers.export`.

Usage:
    python -m helpers.export --adapter runs/demo/adapter --to merged --out exports/merged
    python -m helpers.export --adapter runs/demo/adapter --to ct2 --out exports/ct2 [--quantization int8]

`merged`: the base is reloaded in full precision (fp32, never 8-bit: int8 weights cannot
absorb the LoRA update exactly), the adapter is added into the weights
(`merge_and_unload`), and the result is saved as a plain Whisper model: model.safetensors,
config.json, generation_config.json and the processor files. It loads with
`WhisperForConditionalGeneration.from_pretrained` and needs no PEFT.

`ct2`: that merged model converted by the `ctranslate2` package for CTranslate2 /
faster-whisper. transformers 5 saves the feature extractor inside processor_config.json,
a name CTranslate2 and faster-whisper do not read, so the merged model also gets the
older preprocessor_config.json, and the tokenizer and feature-extractor files are copied
into the converted folder (where faster-whisper looks for them).

The base model, language and task default to what the adapter's run recorded (the
adapter's base_model_name_or_path, and the run's config.json beside the adapter folder).
Outputs are written to a temporary folder beside --out and renamed into place.
Prints one JSON object: {"to", "out", "bytes", "files"}.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

CT2_QUANTIZATIONS = ("float32", "float16", "int8", "int8_float16", "int8_float32", "bfloat16")
PREPROCESSOR_CONFIG = "preprocessor_config.json"  # the name CTranslate2/faster-whisper read
# CTranslate2's Whisper.generate writes at most max_length // 2 new tokens (as OpenAI's
# decoder, whose sample_len is n_text_ctx // 2 = 224 for max_length 448). Measured with
# ctranslate2 4.8 on a prompt of 2 tokens: max_length 10, 50, 130, 200, 448 gave 5, 25, 65,
# 100, 224 tokens. So max_length=2N for N new tokens.
CT2_LENGTH_FACTOR = 2
NOT_PROCESSOR_FILES = ("config.json", "generation_config.json", "model.safetensors")


def run_settings(adapter_dir: str | Path) -> dict:
    """language/task of the run an adapter belongs to (its folder's parent config.json), or {}."""
    config = Path(adapter_dir).resolve().parent / "config.json"
    if not config.is_file():
        return {}
    data = json.loads(config.read_text())
    return {key: data[key] for key in ("language", "task") if key in data}


def merged_model(adapter_dir: str | Path, model_source: str | None = None,
                 language: str | None = None, task: str | None = None):
    """(plain WhisperForConditionalGeneration in fp32 with the adapter merged in, processor).

    model_source: the base (default: the one recorded in the adapter); language/task
    default to the adapter's run settings.
    """
    from helpers.adapters import adapter_base_model, attach_adapter
    from helpers.models import load_model

    settings = run_settings(adapter_dir)
    source = model_source or adapter_base_model(adapter_dir)
    model, processor = load_model(source, precision="fp32", device="cpu",
                                  language=language or settings.get("language"),
                                  task=task or settings.get("task", "transcribe"))
    merged = attach_adapter(model, adapter_dir).merge_and_unload()
    merged.config.use_cache = True
    return merged.eval(), processor


def _publish(staging: Path, out_dir: Path) -> None:
    """Move a finished staging folder to out_dir, replacing what was there."""
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}-old")
        shutil.rmtree(old, ignore_errors=True)
        out_dir.rename(old)
        staging.rename(out_dir)
        shutil.rmtree(old)
    else:
        staging.rename(out_dir)


def save_plain_model(model, processor, out_dir: str | Path) -> Path:
    """Save a Whisper model + processor (safetensors) to out_dir atomically; returns out_dir.

    Adds preprocessor_config.json (the feature extractor alone) for tools that look for it.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        processor.save_pretrained(staging)
        processor.feature_extractor.to_json_file(str(staging / PREPROCESSOR_CONFIG))
        _publish(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def export_merged(adapter_dir, out_dir, model_source=None, language=None, task=None) -> Path:
    """Merge the adapter into its fp32 base and save a plain Whisper model; returns out_dir."""
    model, processor = merged_model(adapter_dir, model_source, language, task)
    return save_plain_model(model, processor, out_dir)


def convert_to_ct2(merged_dir: str | Path, out_dir: str | Path, quantization: str = "float16") -> Path:
    """Convert a saved plain Whisper model folder with ctranslate2's converter; returns out_dir.

    The processor files (tokenizer, preprocessor_config.json, ...) are copied along.
    """
    from ctranslate2.converters import TransformersConverter

    if quantization not in CT2_QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {CT2_QUANTIZATIONS}, got {quantization!r}")
    merged_dir, out_dir = Path(merged_dir), Path(out_dir)
    copy = sorted(p.name for p in merged_dir.glob("*.json") if p.name not in NOT_PROCESSOR_FILES)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        converter = TransformersConverter(str(merged_dir), copy_files=copy)
        converter.convert(str(staging / "model"), quantization=quantization, force=True)
        _publish(staging / "model", out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def export_ct2(adapter_dir, out_dir, quantization: str = "float16", model_source=None,
               language=None, task=None) -> Path:
    """Merge the adapter (see export_merged) and convert the result for CTranslate2."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out_dir.name}-merged-", dir=out_dir.parent) as tmp:
        merged = export_merged(adapter_dir, Path(tmp) / "merged", model_source, language, task)
        return convert_to_ct2(merged, out_dir, quantization)


def export(adapter_dir, to: str, out_dir, quantization: str = "float16", model_source=None,
           language=None, task=None) -> Path:
    """Export an adapter `to` "merged" or "ct2" (see the module docstring); returns out_dir."""
    if to == "merged":
        return export_merged(adapter_dir, out_dir, model_source, language, task)
    if to == "ct2":
        return export_ct2(adapter_dir, out_dir, quantization, model_source, language, task)
    raise ValueError(f'export to "merged" or "ct2", not {to!r}')


def ct2_transcribe(ct2_dir: str | Path, paths: list, compute_type: str = "int8",
                   language: str | None = None, task: str = "transcribe",
                   batch_size: int = 8, max_length: int = 128) -> list[str]:
    """Transcribe audio files with a CTranslate2 Whisper folder (greedy, as `generate` does).

    Uses the folder's own processor files; `language`/`task` for multilingual models.
    Returns one text per path, in order.
    """
    import ctranslate2
    from transformers import WhisperProcessor

    from helpers.audio import SAMPLE_RATE, load_audio

    model = ctranslate2.models.Whisper(str(ct2_dir), device="cpu", compute_type=compute_type)
    processor = WhisperProcessor.from_pretrained(str(ct2_dir))
    if model.is_multilingual:
        processor.tokenizer.set_prefix_tokens(language=language, task=task)
    prompt = processor.tokenizer.prefix_tokens
    texts = []
    for start in range(0, len(paths), batch_size):
        audios = [load_audio(path) for path in paths[start:start + batch_size]]
        features = processor.feature_extractor(audios, sampling_rate=SAMPLE_RATE,
                                               return_tensors="np").input_features
        storage = ctranslate2.StorageView.from_array(np.ascontiguousarray(features, dtype=np.float32))
        results = model.generate(storage, [prompt] * len(audios), beam_size=1,
                                 max_length=CT2_LENGTH_FACTOR * max_length)
        ids = [result.sequences_ids[0] for result in results]
        texts += [text.strip() for text in processor.tokenizer.batch_decode(ids, skip_special_tokens=True)]
    return texts


def folder_bytes(folder: Path) -> int:
    """Total size of the files in a folder."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments of `python -m helpers.export`."""
    parser = argparse.ArgumentParser(prog="python -m helpers.export",
                                     description="Merge a LoRA adapter into its base; save it plain or for CTranslate2.")
    parser.add_argument("--adapter", required=True, help="the adapter folder (e.g. runs/demo/adapter)")
    parser.add_argument("--to", required=True, choices=("merged", "ct2"))
    parser.add_argument("--out", required=True, help="output folder (replaced if it exists)")
    parser.add_argument("--model", help="base model source (default: the one the adapter records)")
    parser.add_argument("--language", help="spoken language (multilingual models; default: the run's)")
    parser.add_argument("--task", help="transcribe or translate (default: the run's)")
    parser.add_argument("--quantization", default="float16", choices=CT2_QUANTIZATIONS,
                        help="ct2 weight type (default float16, as faster-whisper's models)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Export; print a JSON summary; return the exit status (2 for a bad adapter/model)."""
    args = parse_args(argv)
    try:
        out = export(args.adapter, args.to, args.out, args.quantization, args.model,
                     args.language, args.task)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps({"to": args.to, "out": str(out), "bytes": folder_bytes(out),
                      "files": sorted(p.name for p in out.iterdir())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
