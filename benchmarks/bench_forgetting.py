"""Benchmark 5 (forgetting): does LoRA "overcome catastrophic forgetting", as the blog says?

The multilingual base (`embedded-base`, 74 M parameters) is trained on data/cv-mini/hi
train three ways, with the same batch, steps, data, data order and schedule (the
`embedded-hindi` preset's: 5 warmup steps, then constant): LoRA on an 8-bit base (the
recipe), LoRA on an fp32 base, and full fine-tuning in fp32. Then each trained model, the
untouched fp32 base, and the 8-bit LoRA model with its adapter switched off are measured on
- Hindi: WER, CER and script share (helpers.metrics.script_share) on the first N Hindi
  test clips, language="hindi";
- English: WER and CER on the first N test clips of data/cv-mini/en, language="english";
- language identification with no language forced (Whisper's detect_language): the share
  of those English clips detected as English, and of the Hindi clips detected as Hindi.
Decoding is greedy (no temperature fallback, which would decode the base's Hindi loops up
to five more times), each transcript at most its clip's token cap
(`helpers.transcribe.decode.token_cap`), each model at the precision it was trained in.
Everything runs in this process, one model at a time: no memory is measured here.

    python benchmarks/run.py --only forgetting            # 50 minutes measured on 2 shared CPU cores
    python benchmarks/run.py --only forgetting --quick    # 1 step, 1 clip: the code paths only
"""
from __future__ import annotations

import gc
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import loadavg, write_result  # noqa: E402
from helpers.files import EMBEDDED_CORPUS, EMBEDDED_HINDI_CORPUS  # noqa: E402

HINDI, ENGLISH = EMBEDDED_HINDI_CORPUS, EMBEDDED_CORPUS
METHODS = {  # name: (base precision, LoRA?, learning rate)
    "lora_8bit": ("8bit", True, 1e-3),   # the recipe
    "lora_fp32": ("fp32", True, 1e-3),   # the recipe's LoRA on an unquantized base
    # Full fine-tuning at 1e-5: the learning rate of Hugging Face's Whisper fine-tuning
    # blog, and of the training_methods benchmark. LoRA's 1e-3 suits adapters that start at
    # zero and hold 1.6% of the weights; on all 74 M pretrained weights it wrecks the model
    # within a few steps, and a wrecked model says nothing about forgetting.
    "full_fp32": ("fp32", False, 1e-5),
}
ROWS = ("base_fp32", "lora_8bit", "lora_8bit_adapter_off", "lora_fp32", "full_fp32")
SAMPLES = 3  # English transcripts kept per row, for a reader to see what changed


def corpus_clips(corpus: Path, count: int, split: str = "test") -> list[dict]:
    """The first `count` clips of a cv-mini split as {"path", "sentence"}."""
    from helpers.data.corpora import load_corpus

    rows = load_corpus(str(corpus), split=split).select(range(count))
    return [{"path": row["audio"], "sentence": row["sentence"]} for row in rows]


def hindi_features(processor, clips: int):
    """Features + labels (with the Hindi prompt) of the first `clips` Hindi train clips."""
    from helpers.data.corpora import load_corpus
    from helpers.data.features import prepare_features

    rows = load_corpus(str(HINDI), split="train").select(range(clips))
    return prepare_features(rows, processor, batch_size=16)


def load_for_method(source: str, method: str):
    """(model ready to train, processor): the base at the method's precision, prompted in
    Hindi; LoRA by helpers.model.adapters.add_lora, or every weight trainable."""
    from transformers import set_seed

    from helpers.model.adapters import add_lora
    from helpers.config import make_config
    from helpers.model.load import load_model
    from helpers.train.trainer import process_device

    precision, lora, _ = METHODS[method]
    model, processor = load_model(source, precision=precision, language="hindi",
                                  device=process_device())
    set_seed(42)  # LoRA's random A matrices start alike in both LoRA methods
    preset = make_config("embedded-hindi")  # its checkpointing choice, for all three methods
    if lora:
        return add_lora(model, preset.lora_settings(),
                        gradient_checkpointing=preset.gradient_checkpointing), processor
    if preset.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    return model, processor


def train(model, processor, source: str, method: str, features, steps: int, batch: int,
          workdir: Path) -> dict:
    """`steps` optimizer steps of batch `batch` on `features` with the project's Trainer;
    returns {"learning_rate", "train_seconds", "first_loss", "final_loss", "trainable_params"}."""
    from helpers.model.adapters import parameter_counts
    from helpers.config import make_config
    from helpers.run import RunDir
    from helpers.train.trainer import build_trainer

    config = make_config("embedded-hindi", model=source, precision=METHODS[method][0],
                         batch_size=batch, max_steps=steps, learning_rate=METHODS[method][2],
                         logging_steps=1, save_steps=10**6)  # the preset measures no WER while training
    trainer = build_trainer(model, processor, features, config, RunDir("forgetting", workdir))
    started = time.perf_counter()
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return {"learning_rate": config.learning_rate,
            "train_seconds": round(time.perf_counter() - started, 1),
            "first_loss": losses[0] if losses else None,
            "final_loss": losses[-1] if losses else None,
            "trainable_params": parameter_counts(model)[0]}


def transcribe(model, processor, clips: list[dict], language: str, batch: int,
               max_new_tokens: int | None = None) -> list[str]:
    """Greedy transcripts of `clips` in `language`, each at most its clip's token cap
    (`helpers.transcribe.decode.token_cap`), or `max_new_tokens` when that is lower."""
    from helpers.audio import load_audio
    from helpers.evaluate.forgetting import spoken_language
    from helpers.transcribe.decode import transcribe_arrays

    texts = []
    with spoken_language(model, language):
        for start in range(0, len(clips), batch):
            audios = [load_audio(clip["path"]) for clip in clips[start:start + batch]]
            texts += transcribe_arrays(model, processor, audios, max_new_tokens, fallback=False)
    return texts


def scored(clips: list[dict], texts: list[str]) -> dict:
    """helpers.evaluate.scoring.score plus the script share of the transcripts."""
    from helpers.evaluate.scoring import score
    from helpers.metrics import script_share

    share = script_share([clip["sentence"] for clip in clips], texts)
    return {**score(clips, texts), "script_share": None if share is None else round(share, 4)}


def measure(model, processor, hindi: list[dict], english: list[dict], batch: int = 8,
            max_new_tokens: int | None = None) -> dict:
    """Hindi and English scores and language identification of one model, as it stands."""
    from helpers.evaluate.forgetting import detected_share
    from helpers.train.trainer import generation_mode

    with generation_mode(model):
        hindi_texts = transcribe(model, processor, hindi, "hindi", batch, max_new_tokens)
        english_texts = transcribe(model, processor, english, "english", batch, max_new_tokens)
        return {"hindi": scored(hindi, hindi_texts), "english": scored(english, english_texts),
                "english_detected_as_english": round(
                    detected_share(model, processor, english, "en", batch), 4),
                "hindi_detected_as_hindi": round(
                    detected_share(model, processor, hindi, "hi", batch), 4),
                "english_samples": [{"reference": clip["sentence"], "text": text}
                                    for clip, text in zip(english[:SAMPLES], english_texts)]}


def base_row(source: str, hindi: list[dict], english: list[dict], max_new_tokens: int | None) -> dict:
    """The untouched fp32 base, measured."""
    from helpers.model.load import load_model

    model, processor = load_model(source, precision="fp32", language="hindi")
    return {"precision": "fp32",
            **measure(model, processor, hindi, english, max_new_tokens=max_new_tokens)}


def method_rows(source: str, method: str, features, steps: int, batch: int,
                hindi: list[dict], english: list[dict], max_new_tokens: int | None) -> dict:
    """Train one method and measure it; the 8-bit LoRA model also with its adapter off.
    Returns {row name: row}."""
    model, processor = load_for_method(source, method)
    print(f"[forgetting] {method}: {steps} steps of batch {batch} ...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-forgetting-") as tmp:
        training = train(model, processor, source, method, features, steps, batch, Path(tmp))
    scores = lambda: measure(model, processor, hindi, english, max_new_tokens=max_new_tokens)  # noqa: E731
    rows = {method: {"precision": METHODS[method][0], **training, **scores()}}
    if method == "lora_8bit":
        with model.disable_adapter():
            rows["lora_8bit_adapter_off"] = {"precision": "8bit", **scores()}
    del model
    gc.collect()
    return rows


def run(out_dir: Path, steps: int = 30, batch: int = 8, hindi_clips: int = 24,
        english_clips: int = 24, model: str = "embedded-base",
        max_new_tokens: int | None = None) -> Path:
    """Benchmark 5: base, three trained models and the adapter switched off ->
    out_dir/forgetting.json (and forgetting.png); returns the JSON's path.

    model: a multilingual Whisper source (embedded-base; a tiny random one in the test,
    with a few max_new_tokens: a random model never stops before the limit).
    """
    from helpers.model.load import load_processor

    started, load = time.perf_counter(), loadavg()
    hindi, english = corpus_clips(HINDI, hindi_clips), corpus_clips(ENGLISH, english_clips)
    features = hindi_features(load_processor(model, language="hindi"), steps * batch)
    print(f"[forgetting] untouched base ({model}) ...", file=sys.stderr, flush=True)
    results = {"base_fp32": base_row(model, hindi, english, max_new_tokens)}
    for method in METHODS:
        results.update(method_rows(model, method, features, steps, batch, hindi, english,
                                   max_new_tokens))
    results = {name: results[name] for name in ROWS}
    settings = {"model": model, "train_corpus": "data/cv-mini/hi train",
                "train_clips": steps * batch, "steps": steps, "batch_size": batch,
                "learning_rates": {m: lr for m, (_, _, lr) in METHODS.items()},
                "warmup_steps": 5, "lr_scheduler": "constant_with_warmup",
                "hindi_clips": hindi_clips, "english_clips": english_clips,
                "hindi_test": "data/cv-mini/hi test", "english_test": "data/cv-mini/en test",
                "decoding": f"greedy, {decoding_length(max_new_tokens)}, each model at its "
                            "training precision",
                "language_id": "detect_language, no language forced"}
    path = write_result(out_dir, "forgetting", settings, results, started, load)
    forgetting_chart(path)
    return path


def decoding_length(max_new_tokens: int | None) -> str:
    """The decoding length in words, for the result's settings."""
    from helpers.transcribe.decode import token_cap_rule

    return token_cap_rule() + (f", and at most {max_new_tokens} new tokens" if max_new_tokens else "")


def forgetting_chart(path_json: Path) -> None:
    """Bars per row: Hindi WER/CER and English WER; and the language-identification shares
    -> forgetting.png beside the JSON."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(Path(path_json).read_text())["results"]
    rows = [row for row in ROWS if row in data]
    panels = [("error rate (%)", {"Hindi WER": lambda r: r["hindi"]["wer"],
                                  "Hindi CER": lambda r: r["hindi"]["cer"],
                                  "English WER": lambda r: r["english"]["wer"]}),
              ("identified correctly (%)", {"English clips": lambda r: r["english_detected_as_english"],
                                            "Hindi clips": lambda r: r["hindi_detected_as_hindi"]})]
    figure, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    for axis, (ylabel, series) in zip(axes, panels):
        width = 0.8 / len(series)
        for i, (label, value) in enumerate(series.items()):
            xs = [x + (i - (len(series) - 1) / 2) * width for x in range(len(rows))]
            axis.bar(xs, [100 * value(data[row]) for row in rows], width, label=label)
        axis.set_xticks(range(len(rows)), rows, rotation=15, fontsize=8)
        axis.set_ylabel(ylabel)
        axis.legend(fontsize=8)
    axes[0].set_title("Hindi after training, and English (forgetting)", fontsize=10)
    axes[1].set_title("language identification, no language forced", fontsize=10)
    figure.tight_layout()
    figure.savefig(Path(path_json).with_suffix(".png"), dpi=110)
    plt.close(figure)
