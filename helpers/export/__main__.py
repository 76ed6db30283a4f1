"""Merge a LoRA adapter into its base and export it: `python -m helpers.export`.

Usage:
    python -m helpers.export --adapter runs/demo/adapter --to merged --out exports/merged
    python -m helpers.export --adapter runs/demo/adapter --to ct2 --out exports/ct2 [--quantization int8]
    python -m helpers.export --adapter runs/demo/adapter --to ggml --out exports/ggml-model.bin [--quantization q8_0]

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

faster-whisper loads the `ct2` folder as it is: `WhisperModel("exports/ct2")`.

`ggml`: that merged model written as one whisper.cpp model file (helpers.export.ggml), f16
by default as whisper.cpp's own models; f32, or q8_0 / q5_0 / q5_1 / q4_0 quantized by
ggml's own quantizer (needs requirements-engines.txt). --out is the file.

The base model, language and task default to what the adapter's run recorded (the
adapter's base_model_name_or_path, and the run's config.json beside the adapter folder).
Outputs are written to a temporary folder beside --out and renamed into place.
Prints one JSON object: {"to", "out", "bytes", "files"}.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from helpers.export.ctranslate2 import CT2_QUANTIZATIONS, export_ct2
from helpers.export.ggml import GGML_QUANTIZATIONS, export_ggml
from helpers.export.merge import export_merged

TARGETS = ("merged", "ct2", "ggml")
DEFAULT_QUANTIZATION = {"ct2": "float16", "ggml": "f16"}  # as each engine's own models


def export(adapter_dir, to: str, out_dir, quantization: str | None = None, model_source=None,
           language=None, task=None) -> Path:
    """Export an adapter `to` "merged", "ct2" or "ggml" (see the module docstring); returns
    the folder (the file for ggml). quantization None: the target's default."""
    quantization = quantization or DEFAULT_QUANTIZATION.get(to)
    if to == "merged":
        return export_merged(adapter_dir, out_dir, model_source, language, task)
    if to == "ct2":
        return export_ct2(adapter_dir, out_dir, quantization, model_source, language, task)
    if to == "ggml":
        return export_ggml(adapter_dir, out_dir, quantization, model_source, language, task)
    raise ValueError(f"export to one of {TARGETS}, not {to!r}")


def folder_bytes(folder: Path) -> int:
    """Total size of the files in a folder (or of one file)."""
    folder = Path(folder)
    if folder.is_file():
        return folder.stat().st_size
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments of `python -m helpers.export`."""
    parser = argparse.ArgumentParser(prog="python -m helpers.export",
                                     description="Merge a LoRA adapter into its base; save it plain or for CTranslate2.")
    parser.add_argument("--adapter", required=True, help="the adapter folder (e.g. runs/demo/adapter)")
    parser.add_argument("--to", required=True, choices=TARGETS)
    parser.add_argument("--out", required=True, help="output folder, or file for ggml "
                                                     "(replaced if it exists)")
    parser.add_argument("--model", help="base model source (default: the one the adapter records)")
    parser.add_argument("--language", help="spoken language (multilingual models; default: the run's)")
    parser.add_argument("--task", help="transcribe or translate (default: the run's)")
    parser.add_argument("--quantization",
                        help=f"ct2: one of {', '.join(CT2_QUANTIZATIONS)} (default float16, as "
                             f"faster-whisper's models); ggml: one of {', '.join(GGML_QUANTIZATIONS)} "
                             "(default f16, as whisper.cpp's)")
    args = parser.parse_args(argv)
    allowed = {"ct2": CT2_QUANTIZATIONS, "ggml": GGML_QUANTIZATIONS}.get(args.to, ())
    if args.quantization and args.quantization not in allowed:
        parser.error(f"--quantization {args.quantization} does not apply to --to {args.to}"
                     + (f"; choose one of {', '.join(allowed)}" if allowed else ""))
    return args


def main(argv: list[str] | None = None) -> int:
    """Export; print a JSON summary; return the exit status (2 for a bad adapter/model)."""
    args = parse_args(argv)
    try:
        out = export(args.adapter, args.to, args.out, args.quantization, args.model,
                     args.language, args.task)
    except (OSError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    files = sorted(p.name for p in out.iterdir()) if out.is_dir() else [out.name]
    print(json.dumps({"to": args.to, "out": str(out), "bytes": folder_bytes(out), "files": files}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
