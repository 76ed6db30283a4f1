"""Benchmark 5 (forgetting): does LoRA "overcome catastrophic forgetting", as the blog says?
And what keeps the other language: routing by spoken language, replay, a lower learning rate?

The multilingual base (`embedded-base`, 74 M parameters) is trained on data/cv-mini/hi
train several ways, with the same batch, steps, data, data order and schedule (the
`embedded-hindi` preset's: 5 warmup steps, then constant): LoRA on an 8-bit base (the
recipe), LoRA on an fp32 base, full fine-tuning in fp32, and three variants of the recipe:
replay (REPLAY_SHARE 0.1 and 0.25 of the samples from data/cv-mini/en train, labelled
<|en|>, helpers.data.replay) and a learning rate of 1e-4 instead of 1e-3. Each trained
model is saved and loaded back before it is measured; the untouched fp32 base, the 8-bit
LoRA model with its adapter switched off, and the same model routed by spoken language
(helpers.transcribe.routing: the base identifies each clip, the adapter decodes only Hindi)
are measured too, on
- Hindi: WER, CER and script share (helpers.metrics.script_share) on the first N Hindi
  test clips, language="hindi";
- English: WER and CER on the first N test clips of data/cv-mini/en, language="english";
- language identification with no language forced (Whisper's detect_language): the share
  of those English clips detected as English, and of the Hindi clips detected as Hindi;
- routed: Hindi and English transcripts as routing decodes them (mixed, no language given),
  the share of each language's clips routed the right way (Hindi to the adapter, English to
  the base) and the seconds routing spent identifying them, beside the seconds decoding took.
Decoding is greedy (no temperature fallback, which would decode the base's Hindi loops up
to five more times), each transcript at most its clip's token cap
(`helpers.transcribe.decode.token_cap`), each model at the precision it was trained in.
The routed row reuses the 8-bit LoRA model and the transcripts it and the adapter-off model
already made of clips routed the same way (greedy decoding of one clip with one model and
language gives one transcript); only clips routed otherwise are decoded again.
Everything runs in this process, one model at a time: no memory is measured here.
With `cache`, trained models are kept there and reused by a later run with the same
settings (`--forgetting-cache DIR`: measure again without training again).

    python benchmarks/run.py --only forgetting            # about 80 minutes on 2 CPU cores (measured: docs/benchmarks.md)
    python benchmarks/run.py --only forgetting --quick    # 1 step, 1 clip: the code paths only
"""
from __future__ import annotations

import gc
import hashlib
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import loadavg, write_result  # noqa: E402
from helpers.files import EMBEDDED_CORPUS, EMBEDDED_HINDI_CORPUS  # noqa: E402

HINDI, ENGLISH = EMBEDDED_HINDI_CORPUS, EMBEDDED_CORPUS


@dataclass(frozen=True)
class Method:
    """One way of training: base precision, LoRA or every weight, learning rate, replay share."""
    precision: str
    lora: bool
    learning_rate: float
    replay_share: float = 0.0


METHODS = {
    "lora_8bit": Method("8bit", True, 1e-3),   # the recipe
    "lora_fp32": Method("fp32", True, 1e-3),   # the recipe's LoRA on an unquantized base
    # Full fine-tuning at 1e-5: the learning rate of Hugging Face's Whisper fine-tuning
    # blog, and of the training_methods benchmark. LoRA's 1e-3 suits adapters that start at
    # zero and hold 1.6% of the weights; on all 74 M pretrained weights it wrecks the model
    # within a few steps, and a wrecked model says nothing about forgetting.
    "full_fp32": Method("fp32", False, 1e-5),
    # The recipe with 10% / 25% of the samples English (cv-mini/en train, <|en|> labels)
    "lora_8bit_replay_10": Method("8bit", True, 1e-3, 0.1),
    "lora_8bit_replay_25": Method("8bit", True, 1e-3, 0.25),
    "lora_8bit_lr_1e-4": Method("8bit", True, 1e-4),   # the recipe, a tenth of its step size
}
ROWS = ("base_fp32", "lora_8bit", "lora_8bit_adapter_off", "lora_8bit_routed",
        "lora_8bit_replay_10", "lora_8bit_replay_25", "lora_8bit_lr_1e-4", "lora_fp32", "full_fp32")
SAMPLES = 3  # English transcripts kept per row, for a reader to see what changed
TRAINING_VERSION = 2  # bump when training here changes: cached models of older versions are not reused


def corpus_clips(corpus: Path, count: int, split: str = "test") -> list[dict]:
    """The first `count` clips of a cv-mini split as {"path", "sentence"}."""
    from helpers.data.corpora import load_corpus

    rows = load_corpus(str(corpus), split=split).select(range(count))
    return [{"path": row["audio"], "sentence": row["sentence"]} for row in rows]


def training_rows(clips: int):
    """The first `clips` Hindi train clips ({"audio", "sentence", ...} rows)."""
    from helpers.data.corpora import load_corpus

    return load_corpus(str(HINDI), split="train").select(range(clips))


def training_features(processor, rows, replay_share: float = 0.0):
    """Features + labels (with the Hindi prompt) of `rows`, plus with `replay_share` the
    English replay rows of the embedded-hindi preset (helpers.data.replay, labelled <|en|>).
    Returns (features, replayed clip paths)."""
    from helpers.config import make_config
    from helpers.data.features import prepare_features
    from helpers.data.replay import with_replay

    mixed, _ = with_replay(rows, make_config("embedded-hindi", replay_share=replay_share),
                           processor.tokenizer)
    replayed = [row["audio"] for row in mixed if row.get("language")]
    return prepare_features(mixed, processor, batch_size=16), replayed


def load_for_method(source: str, method: str):
    """(model ready to train, processor): the base at the method's precision, prompted in
    Hindi; LoRA by helpers.model.adapters.add_lora, or every weight trainable."""
    from transformers import set_seed

    from helpers.model.adapters import add_lora
    from helpers.config import make_config
    from helpers.model.load import load_model
    from helpers.train.trainer import process_device

    chosen = METHODS[method]
    model, processor = load_model(source, precision=chosen.precision, language="hindi",
                                  device=process_device())
    set_seed(42)  # LoRA's random A matrices start alike in every LoRA method
    preset = make_config("embedded-hindi")  # its checkpointing choice, for every method
    if chosen.lora:
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

    config = make_config("embedded-hindi", model=source, precision=METHODS[method].precision,
                         batch_size=batch, max_steps=steps,
                         learning_rate=METHODS[method].learning_rate,
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


# ------------------------------------------------------------------ trained models, kept
def fingerprint(source: str, method: str, steps: int, batch: int, clips: list[str]) -> str:
    """A hash of everything a trained model depends on here: base, method, steps, batch,
    the clips trained on (replay's too), the library versions and TRAINING_VERSION."""
    import peft
    import torch
    import transformers

    settings = {"source": source, "method": asdict(METHODS[method]), "steps": steps,
                "batch": batch, "clips": clips, "version": TRAINING_VERSION,
                "libraries": [torch.__version__, transformers.__version__, peft.__version__]}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def trained_model(source: str, method: str, rows, steps: int, batch: int, store: Path) -> dict:
    """Train `method` on `rows` (+ its replay) and save it in store/<method>-<fingerprint>/
    (the adapter, or the whole model for full fine-tuning, safetensors), unless that folder
    already holds it from an earlier run. Returns the training record (+ "folder", "reused")."""
    from helpers.model.adapters import save_adapter
    from helpers.model.load import load_processor

    processor = load_processor(source, language="hindi")
    features, replayed = training_features(processor, rows, METHODS[method].replay_share)
    folder = store / f"{method}-{fingerprint(source, method, steps, batch, [*rows['audio'], *replayed])}"
    record_file = folder / "training.json"
    if record_file.is_file():
        print(f"[forgetting] {method}: trained model reused from {folder}", file=sys.stderr, flush=True)
        return {**json.loads(record_file.read_text()), "folder": folder, "reused": True}
    model, processor = load_for_method(source, method)
    print(f"[forgetting] {method}: {steps} steps of batch {batch} ...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-forgetting-") as tmp:
        record = train(model, processor, source, method, features, steps, batch, Path(tmp))
    record["replay_clips"] = len(replayed)
    shutil.rmtree(folder, ignore_errors=True)
    if METHODS[method].lora:
        save_adapter(model, folder / "adapter", source, language="hindi",
                     replay_languages=["english"] if replayed else [])
    else:
        model.save_pretrained(folder / "model", safe_serialization=True)
        processor.save_pretrained(folder / "model")
    (folder / "training.json").write_text(json.dumps(record))
    del model
    gc.collect()
    return {**record, "folder": folder, "reused": False}


def load_trained(source: str, method: str, folder: Path):
    """(model, processor) of a model `trained_model` saved, at its training precision, eval mode."""
    from helpers.model.adapters import attach_adapter
    from helpers.model.load import load_model

    chosen = METHODS[method]
    if not chosen.lora:
        return load_model(str(folder / "model"), precision=chosen.precision, language="hindi")
    model, processor = load_model(source, precision=chosen.precision, language="hindi")
    return attach_adapter(model, folder / "adapter").eval(), processor


# ------------------------------------------------------------------ measuring
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
    """Hindi and English scores and language identification of one model, as it stands,
    with the seconds the transcription of each language took; the transcripts under
    "texts" (for the routed row; run() drops them before writing)."""
    from helpers.evaluate.forgetting import detected_share
    from helpers.train.trainer import generation_mode

    with generation_mode(model):
        started = time.perf_counter()
        hindi_texts = transcribe(model, processor, hindi, "hindi", batch, max_new_tokens)
        middle = time.perf_counter()
        english_texts = transcribe(model, processor, english, "english", batch, max_new_tokens)
        seconds = {"hindi": round(middle - started, 1),
                   "english": round(time.perf_counter() - middle, 1)}
        return {"hindi": scored(hindi, hindi_texts), "english": scored(english, english_texts),
                "english_detected_as_english": round(
                    detected_share(model, processor, english, "en", batch), 4),
                "hindi_detected_as_hindi": round(
                    detected_share(model, processor, hindi, "hi", batch), 4),
                "decode_seconds": seconds,
                "english_samples": [{"reference": clip["sentence"], "text": text}
                                    for clip, text in zip(english[:SAMPLES], english_texts)],
                "texts": {"hindi": hindi_texts, "english": english_texts}}


def routed(model, processor, clips: list[dict], known: dict, batch: int,
           max_new_tokens: int | None) -> tuple[list[str], list, object]:
    """Transcripts of `clips` as routing decodes them (helpers.transcribe.routing, the
    adapter's language "hindi", no language given), their Routes and the Router (its
    seconds and doubts). known: {Route: a transcript of every clip} already made."""
    from helpers.audio import load_audio
    from helpers.transcribe.routing import adapter_router, transcribe_routed

    router = adapter_router(["hindi"])
    texts, routes = [], []
    for start in range(0, len(clips), batch):
        audios = [load_audio(clip["path"]) for clip in clips[start:start + batch]]
        part = {route: known_texts[start:start + batch] for route, known_texts in known.items()}
        for text, route in transcribe_routed(model, processor, audios, router, known=part,
                                             max_new_tokens=max_new_tokens, fallback=False):
            texts.append(text)
            routes.append(route)
    return texts, routes, router


def routed_row(model, processor, hindi: list[dict], english: list[dict], on: dict, off: dict,
               batch: int, max_new_tokens: int | None) -> dict:
    """The 8-bit LoRA model routed by spoken language: scores, routing accuracy per language
    and the time language identification took. on/off: measure()'s rows of the same model
    with the adapter on and off, whose transcripts are reused for clips routed their way."""
    from helpers.transcribe.routing import Route

    results, routing = {}, {}
    for name, clips, right in (("hindi", hindi, True), ("english", english, False)):
        known = {Route("hi", True): on["texts"]["hindi"], Route("en", False): off["texts"]["english"]}
        texts, routes, router = routed(model, processor, clips, known, batch, max_new_tokens)
        seconds = router.detect_seconds + router.settle_seconds
        results[name] = scored(clips, texts)
        codes: dict[str, int] = {}
        for route in routes:
            key = f"{route.language}, adapter {'on' if route.adapter else 'off'}"
            codes[key] = codes.get(key, 0) + 1
        routing[name] = {"right_share": round(sum(r.adapter == right for r in routes) / len(routes), 4),
                         "routes": codes, "identified": dict(Counter(router.codes)),
                         "detect_seconds": round(seconds, 2),
                         "identify_seconds": round(router.detect_seconds, 2),
                         "settle_seconds": round(router.settle_seconds, 2),
                         "detect_seconds_per_clip": round(seconds / len(routes), 3),
                         "doubts": router.doubts}
        if name == "english":
            results["english_samples"] = [{"reference": clip["sentence"], "text": text}
                                          for clip, text in zip(clips[:SAMPLES], texts)]
    return {"precision": "8bit", **results, "routing": routing,
            "english_detected_as_english": off["english_detected_as_english"],
            "hindi_detected_as_hindi": off["hindi_detected_as_hindi"]}


def calibration(model, processor, clips: dict[str, list[dict]], max_new_tokens: int | None) -> dict:
    """How routing sees dev clips (the split its SETTLE_MARGIN was chosen on): per language
    ({"hindi": clips, "english": clips}), the share routed the right way and each doubtful
    clip's identified code and confidences (Router.doubts)."""
    found = {}
    for language, rows in clips.items():
        _, routes, router = routed(model, processor, rows, {}, 8, max_new_tokens)
        right = sum(route.adapter == (language == "hindi") for route in routes) / len(routes)
        found[language] = {"right_share": round(right, 4), "doubts": router.doubts}
    return found


def base_row(source: str, hindi: list[dict], english: list[dict], max_new_tokens: int | None) -> dict:
    """The untouched fp32 base, measured."""
    from helpers.model.load import load_model

    model, processor = load_model(source, precision="fp32", language="hindi")
    return {"precision": "fp32",
            **measure(model, processor, hindi, english, max_new_tokens=max_new_tokens)}


def method_rows(source: str, method: str, rows, steps: int, batch: int, hindi: list[dict],
                english: list[dict], max_new_tokens: int | None, store: Path) -> dict:
    """Train one method (or reuse it from `store`), load it back and measure it; the 8-bit
    LoRA model also with its adapter off and routed. Returns {row name: row}."""
    training = trained_model(source, method, rows, steps, batch, store)
    model, processor = load_trained(source, method, training.pop("folder"))
    scores = lambda: measure(model, processor, hindi, english, max_new_tokens=max_new_tokens)  # noqa: E731
    result = {method: {"precision": METHODS[method].precision, **training, **scores()}}
    if method == "lora_8bit":
        with model.disable_adapter():
            result["lora_8bit_adapter_off"] = {"precision": "8bit", **scores()}
        print("[forgetting] lora_8bit routed by spoken language ...", file=sys.stderr, flush=True)
        result["lora_8bit_routed"] = routed_row(model, processor, hindi, english, result[method],
                                                result["lora_8bit_adapter_off"], 8, max_new_tokens)
        dev = {"hindi": corpus_clips(HINDI, len(hindi), "dev"),
               "english": corpus_clips(ENGLISH, len(english), "dev")}
        print("[forgetting] routing's stage two on dev clips ...", file=sys.stderr, flush=True)
        result["lora_8bit_routed"]["calibration"] = calibration(model, processor, dev, max_new_tokens)
    del model
    gc.collect()
    return result


def run(out_dir: Path, steps: int = 30, batch: int = 8, hindi_clips: int = 24,
        english_clips: int = 24, model: str = "embedded-base",
        max_new_tokens: int | None = None, cache: Path | None = None) -> Path:
    """Benchmark 5: base, the trained models, the adapter switched off and routing ->
    out_dir/forgetting.json (and forgetting.png, forgetting_tradeoff.png); returns the
    JSON's path.

    model: a multilingual Whisper source (embedded-base; a tiny random one in the test,
    with a few max_new_tokens: a random model never stops before the limit). cache: a
    folder where trained models are kept and reused by later runs with the same settings
    (None: a temporary folder, deleted at the end).
    """
    started, load = time.perf_counter(), loadavg()
    hindi, english = corpus_clips(HINDI, hindi_clips), corpus_clips(ENGLISH, english_clips)
    rows = training_rows(steps * batch)
    print(f"[forgetting] untouched base ({model}) ...", file=sys.stderr, flush=True)
    results = {"base_fp32": base_row(model, hindi, english, max_new_tokens)}
    store = Path(cache) if cache else Path(tempfile.mkdtemp(prefix="bench-forgetting-models-"))
    try:
        for method in METHODS:
            results.update(method_rows(model, method, rows, steps, batch, hindi, english,
                                       max_new_tokens, store))
    finally:
        if cache is None:
            shutil.rmtree(store, ignore_errors=True)
    results = {name: {k: v for k, v in results[name].items() if k != "texts"} for name in ROWS}
    settings = {"model": model, "train_corpus": "data/cv-mini/hi train",
                "train_clips": steps * batch, "steps": steps, "batch_size": batch,
                "learning_rates": {m: chosen.learning_rate for m, chosen in METHODS.items()},
                "replay_shares": {m: chosen.replay_share for m, chosen in METHODS.items()
                                  if chosen.replay_share},
                "replay_corpus": "data/cv-mini/en train, labelled <|en|>",
                "warmup_steps": 5, "lr_scheduler": "constant_with_warmup",
                "hindi_clips": hindi_clips, "english_clips": english_clips,
                "hindi_test": "data/cv-mini/hi test", "english_test": "data/cv-mini/en test",
                "decoding": f"greedy, {decoding_length(max_new_tokens)}, each model at its "
                            "training precision",
                "language_id": "detect_language, no language forced",
                "routing": routing_settings()}
    path = write_result(out_dir, "forgetting", settings, results, started, load)
    forgetting_chart(path)
    tradeoff_chart(path)
    return path


def decoding_length(max_new_tokens: int | None) -> str:
    """The decoding length in words, for the result's settings."""
    from helpers.transcribe.decode import token_cap_rule

    return token_cap_rule() + (f", and at most {max_new_tokens} new tokens" if max_new_tokens else "")
def routing_settings() -> str:
    """How the routed row routes, in words (for the report)."""
    from helpers.transcribe.routing import describe_rule

    return describe_rule(["hindi"])


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
    figure, axes = plt.subplots(1, 2, figsize=(14, 4.2))
    for axis, (ylabel, series) in zip(axes, panels):
        width = 0.8 / len(series)
        for i, (label, value) in enumerate(series.items()):
            xs = [x + (i - (len(series) - 1) / 2) * width for x in range(len(rows))]
            axis.bar(xs, [100 * value(data[row]) for row in rows], width, label=label)
        axis.set_xticks(range(len(rows)), rows, rotation=30, ha="right", fontsize=7)
        axis.set_ylabel(ylabel)
        axis.legend(fontsize=8)
    axes[0].set_title("Hindi after training, and English (forgetting)", fontsize=10)
    axes[1].set_title("language identification, no language forced (routed: by the base)", fontsize=10)
    figure.tight_layout()
    figure.savefig(Path(path_json).with_suffix(".png"), dpi=110)
    plt.close(figure)


def tradeoff_chart(path_json: Path) -> None:
    """Hindi CER against English WER, one point per row (lower left is better): what each
    way of keeping English costs in Hindi -> forgetting_tradeoff.png beside the JSON."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(Path(path_json).read_text())["results"]
    figure, axis = plt.subplots(figsize=(7.5, 5))
    labelled: list[tuple[float, float]] = []
    for name in ROWS:
        if name not in data:
            continue
        x, y = 100 * data[name]["english"]["wer"], 100 * data[name]["hindi"]["cer"]
        axis.scatter([x], [y], s=40, zorder=3, marker="*" if name.endswith("routed") else "o")
        crowded = any(abs(x - a) < 2 and abs(y - b) < 4 for a, b in labelled)  # label below instead
        axis.annotate(name, (x, y), textcoords="offset points", xytext=(5, -11 if crowded else 4),
                      fontsize=8)
        labelled.append((x, y))
    axis.set_xlabel("English WER (%), language=\"english\" (routed: as routing decodes it)")
    axis.set_ylabel("Hindi CER (%)")
    axis.set_title("What keeping English costs in Hindi (lower left is better)", fontsize=10)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(Path(path_json).with_name("forgetting_tradeoff.png"), dpi=110)
    plt.close(figure)
