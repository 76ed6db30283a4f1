"""The adapter merged into its base, saved as a plain Whisper model (`--to merged`).

The base is reloaded in full precision (fp32, never 8-bit: int8 weights cannot absorb the
LoRA update exactly), the adapter is added into the weights (`merge_and_unload`), and the
result is saved as model.safetensors, config.json, generation_config.json and the
processor files, plus the older preprocessor_config.json that CTranslate2 and
faster-whisper read. It loads with `WhisperForConditionalGeneration.from_pretrained` and
needs no PEFT. Base, language and task default to what the adapter's run recorded.
"""
from __future__ import annotations

import json
from pathlib import Path

from helpers.files import staging_dir

PREPROCESSOR_CONFIG = "preprocessor_config.json"  # the name CTranslate2/faster-whisper read


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
    from helpers.model.adapters import adapter_base_model, attach_adapter
    from helpers.model.load import load_model

    settings = run_settings(adapter_dir)
    source = model_source or adapter_base_model(adapter_dir)
    model, processor = load_model(source, precision="fp32", device="cpu",
                                  language=language or settings.get("language"),
                                  task=task or settings.get("task", "transcribe"))
    merged = attach_adapter(model, adapter_dir).merge_and_unload()
    merged.config.use_cache = True
    return merged.eval(), processor



def save_plain_model(model, processor, out_dir: str | Path) -> Path:
    """Save a Whisper model + processor (safetensors) to out_dir atomically; returns out_dir.

    Adds preprocessor_config.json (the feature extractor alone) for tools that look for it.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with staging_dir(out_dir) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        processor.save_pretrained(staging)
        processor.feature_extractor.to_json_file(str(staging / PREPROCESSOR_CONFIG))
    return out_dir


def export_merged(adapter_dir, out_dir, model_source=None, language=None, task=None) -> Path:
    """Merge the adapter into its fp32 base and save a plain Whisper model; returns out_dir."""
    model, processor = merged_model(adapter_dir, model_source, language, task)
    return save_plain_model(model, processor, out_dir)
