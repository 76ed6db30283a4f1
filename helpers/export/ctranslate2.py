"""The merged model converted for CTranslate2 / faster-whisper (`--to ct2`), and transcribed
with CTranslate2 directly (`ct2_transcribe`, for tests and benchmarks). The converter is
the `ctranslate2` package's; the tokenizer and feature-extractor files are copied along,
where faster-whisper looks for them."""
from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np

from helpers.export.merge import export_merged
from helpers.files import staging_dir

CT2_QUANTIZATIONS = ("float32", "float16", "int8", "int8_float16", "int8_float32", "bfloat16")


# CTranslate2's Whisper.generate writes at most max_length // 2 new tokens (as OpenAI's
# decoder, whose sample_len is n_text_ctx // 2 = 224 for max_length 448). Measured with
# ctranslate2 4.8 on a prompt of 2 tokens: max_length 10, 50, 130, 200, 448 gave 5, 25, 65,
# 100, 224 tokens. So max_length=2N for N new tokens.
CT2_LENGTH_FACTOR = 2
NOT_PROCESSOR_FILES = ("config.json", "generation_config.json", "model.safetensors")


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
    with staging_dir(out_dir) as staging:  # the converter writes into an existing folder (force)
        converter = TransformersConverter(str(merged_dir), copy_files=copy)
        converter.convert(str(staging), quantization=quantization, force=True)
    return out_dir


def export_ct2(adapter_dir, out_dir, quantization: str = "float16", model_source=None,
               language=None, task=None) -> Path:
    """Merge the adapter (see export_merged) and convert the result for CTranslate2.

    The `ctranslate2` package is checked first (on Colab installed, helpers.colab.require_package)."""
    from helpers.colab import require_package

    require_package("ctranslate2", "the CTranslate2 export")
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out_dir.name}-merged-", dir=out_dir.parent) as tmp:
        merged = export_merged(adapter_dir, Path(tmp) / "merged", model_source, language, task)
        return convert_to_ct2(merged, out_dir, quantization)


def ct2_transcribe(ct2_dir: str | Path, paths: list, compute_type: str = "int8",
                   language: str | None = None, task: str = "transcribe",
                   batch_size: int = 8, max_new_tokens: int | None = None) -> list[str]:
    """Transcribe audio files with a CTranslate2 Whisper folder (greedy, as `generate` does),
    their features padded as our decoding pads them (helpers.data.features.inference_features).

    Uses the folder's own processor files; `language`/`task` for multilingual models. Each
    transcript is cut at its clip's token cap as `helpers.transcribe.decode.transcribe_arrays`
    cuts it (`token_cap`; max_new_tokens: a lower cap for every clip).
    Returns one text per path, in order.
    """
    import ctranslate2
    from transformers import WhisperProcessor

    from helpers.audio import SAMPLE_RATE, load_audio
    from helpers.data.features import inference_features
    from helpers.transcribe.decode import token_cap

    model = ctranslate2.models.Whisper(str(ct2_dir), device="cpu", compute_type=compute_type)
    processor = WhisperProcessor.from_pretrained(str(ct2_dir))
    if model.is_multilingual:
        processor.tokenizer.set_prefix_tokens(language=language, task=task)
    prompt = processor.tokenizer.prefix_tokens
    texts = []
    for start in range(0, len(paths), batch_size):
        audios = [load_audio(path) for path in paths[start:start + batch_size]]
        caps = [min(token_cap(len(audio) / SAMPLE_RATE, len(prompt)), max_new_tokens or math.inf)
                for audio in audios]
        features = inference_features(audios, processor.feature_extractor)  # padded as ours
        storage = ctranslate2.StorageView.from_array(np.ascontiguousarray(features, dtype=np.float32))
        results = model.generate(storage, [prompt] * len(audios), beam_size=1,
                                 max_length=CT2_LENGTH_FACTOR * max(caps))
        ids = [result.sequences_ids[0][:cap] for result, cap in zip(results, caps)]
        texts += [text.strip() for text in processor.tokenizer.batch_decode(ids, skip_special_tokens=True)]
    return texts
