"""Did fine-tuning on one language cost the model its English? (catastrophic forgetting)

A multilingual Whisper fine-tuned on Hindi may get worse at English. With LoRA the base
weights are untouched, so switching the adapter off gives the base model back exactly;
with the adapter on, English goes through the adapted weights too. Notebook 06 runs
`english_check` on a few English clips with the adapter on and off; the benchmark
`python benchmarks/run.py --only forgetting` compares LoRA with full fine-tuning
(benchmarks/bench_forgetting.py), using the pieces below.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch

from helpers.files import EMBEDDED_CORPUS


@contextmanager
def spoken_language(model, language: str | None):
    """Within the block, `generate` (helpers.transcribe) decodes `language` (a Whisper
    language name, "english"; None: the model detects it); the model's own language is
    restored afterwards. Works on a PEFT model too (same generation config object)."""
    gen = model.generation_config
    saved = gen.language
    gen.language = language
    try:
        yield model
    finally:
        gen.language = saved


def whisper_of(model):
    """The WhisperForConditionalGeneration inside a PEFT model (LoRA layers in place), or
    the model itself."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def detected_languages(model, processor, audios) -> list[str]:
    """Whisper's language identification of 16 kHz arrays, no language forced: the language
    token it gives the highest score right after <|startoftranscript|>
    (`WhisperForConditionalGeneration.detect_language`), as codes: ["en", "hi", ...].
    Uses the adapter if the model has one and it is enabled."""
    from helpers.audio import SAMPLE_RATE

    whisper = whisper_of(model)
    features = processor.feature_extractor(audios, sampling_rate=SAMPLE_RATE,
                                           return_tensors="pt").input_features
    features = features.to(whisper.device, dtype=whisper.get_encoder().conv1.weight.dtype)
    with torch.inference_mode():
        ids = whisper.detect_language(input_features=features)
    names = {token_id: token for token, token_id in whisper.generation_config.lang_to_id.items()}
    return [names[int(token_id)].strip("<|>") for token_id in ids]


def detected_share(model, processor, clips: list[dict], code: str, batch_size: int = 8) -> float:
    """Share of `clips` ({"path", ...}) whose detected language is `code` ("en")."""
    from helpers.audio import load_audio

    codes = []
    for start in range(0, len(clips), batch_size):
        audios = [load_audio(clip["path"]) for clip in clips[start:start + batch_size]]
        codes += detected_languages(model, processor, audios)
    return sum(found == code for found in codes) / len(codes)


def english_check_skip_reason(config, n_clips: int | None) -> str | None:
    """Why the English check does not apply to this run (one line), or None when it does."""
    from helpers.model.load import canonical_language, is_multilingual, load_processor

    if not n_clips:
        return "ENGLISH_CLIPS is 0"
    if not is_multilingual(load_processor(config.model)):
        return (f"{config.model} is an English-only model: it knows no other language, so "
                "there is no English to forget")
    if canonical_language(config.language) == "english":
        return "this run is in English: the scores above are the English check"
    return None


def english_check(config, run, n_clips: int = 8, corpus=EMBEDDED_CORPUS) -> dict | None:
    """English WER/CER of a multilingual run's model, adapter off (base) and on (fine-tuned).

    config/run: the run's RunConfig and RunDir (its adapter from notebook 04). Transcribes
    the first `n_clips` filtered clips of `corpus`'s test split with language="english",
    the run's precision, batch size and decoding, writes them to english_check.jsonl in the
    run and prints one line. Returns the metrics.json keys english_base_wer,
    english_finetuned_wer, english_base_cer, english_finetuned_cer, english_clips; or None,
    printing why, for an English-only model, an English run or n_clips 0.
    """
    from helpers.evaluate.scoring import load_test_clips, predict
    from helpers.metrics import error_rates
    from helpers.model.adapters import attach_adapter
    from helpers.model.load import load_model

    reason = english_check_skip_reason(config, n_clips)
    if reason:
        print(f"English check skipped: {reason}.")
        return None
    model, processor = load_model(config.model, precision=config.precision,
                                  language=config.language, task=config.task)
    model = attach_adapter(model, run.require("adapter", "notebook 04 (training)")).eval()
    clips, _ = load_test_clips(str(corpus), "test", processor.tokenizer, n_clips)
    texts = {}
    with spoken_language(model, "english"):
        with model.disable_adapter():
            texts["base"] = predict(model, processor, clips, config.eval_batch_size,
                                    progress=False, fallback=config.decode_fallback)
        texts["finetuned"] = predict(model, processor, clips, config.eval_batch_size,
                                     progress=False, fallback=config.decode_fallback)
    references = [clip["sentence"] for clip in clips]
    run.write_jsonl("english_check.jsonl", [
        {"path": clip["path"], "reference": ref, "base": base, "finetuned": tuned}
        for clip, ref, base, tuned in zip(clips, references, texts["base"], texts["finetuned"])])
    result = {"english_clips": len(clips)}
    for name, predicted in texts.items():
        rates = error_rates(references, predicted)
        result.update({f"english_{name}_wer": round(rates["wer"], 4),
                       f"english_{name}_cer": round(rates["cer"], 4)})
    print(f"English ({len(clips)} test clips of {corpus}, language='english'): WER "
          f"{result['english_base_wer']:.1%} with the adapter off, "
          f"{result['english_finetuned_wer']:.1%} with it on.")
    return result
