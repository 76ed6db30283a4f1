"""LoRA adapters: inject (PEFT), count what is trainable, save and load safely.

Only the adapter is ever saved (safetensors); the base model is recorded by its source
name in `adapter_config.json` so `load_model(adapter_base_model(dir))` rebuilds it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from helpers.config import LoraSettings
from helpers.files import staging_dir

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
# The language(s) an adapter was trained on, so that it is used only on speech in them
# (helpers.transcribe.routing): {"language": "hindi", "replay_languages": ["english"]}.
ADAPTER_LANGUAGE = "adapter_language.json"
PICKLE_WEIGHTS = ("adapter_model.bin", "adapter_model.pt", "adapter_model.pth")


def is_quantized(model) -> bool:
    """True if the model was loaded in 8-bit or 4-bit by bitsandbytes."""
    return bool(getattr(model, "is_loaded_in_8bit", False) or
                getattr(model, "is_loaded_in_4bit", False) or
                getattr(model, "is_quantized", False))


CHECKPOINTING_KINDS = ("auto", "reentrant", "non-reentrant", "none")


def checkpointing_kind(enabled: bool = True, requested: str = "auto") -> str:
    """Resolve the gradient checkpointing kind: "reentrant", "non-reentrant" or "none".

    "auto" picks reentrant in a single process and non-reentrant under DDP (WORLD_SIZE > 1).
    Reentrant is what the 2023 recipe ran with, and with an 8-bit base it matters: the
    bitsandbytes 8-bit matmul keeps each layer's input on its autograd context, which
    non-reentrant checkpointing cannot free (measured here on tiny.en, batch 8: 3.31 GB
    vs 2.15 GB peak RSS; predicted for large-v2 on a T4: 19.0 GB vs 5.6 GB). DDP with LoRA
    needs non-reentrant ("Expected to mark a variable ready only once" otherwise).
    """
    if requested not in CHECKPOINTING_KINDS:
        raise ValueError(f"checkpointing must be one of {CHECKPOINTING_KINDS}, got {requested!r}")
    if not enabled or requested == "none":
        return "none"
    if requested != "auto":
        return requested
    return "non-reentrant" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else "reentrant"


def add_lora(model, settings: LoraSettings | None = None, gradient_checkpointing: bool = True,
             checkpointing: str = "auto"):
    """Wrap a Whisper model with a fresh LoRA adapter; returns the PEFT model.

    A quantized base first goes through `prepare_model_for_kbit_training` (layer norms in
    fp32, input grads on). `checkpointing` picks the gradient checkpointing kind (see
    `checkpointing_kind`); `gradient_checkpointing=False` turns it off.
    """
    from peft import get_peft_model, prepare_model_for_kbit_training

    settings = settings or LoraSettings()
    kind = checkpointing_kind(gradient_checkpointing, checkpointing)
    enabled = kind != "none"
    kwargs = {"use_reentrant": kind == "reentrant"}
    if is_quantized(model):
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=enabled, gradient_checkpointing_kwargs=kwargs)
    elif enabled:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        model.enable_input_require_grads()  # reentrant blocks need an input that requires grad
    if enabled:
        # The encoder's first input (log-mel) never requires grad; without this hook the
        # checkpointed encoder blocks would get no gradient path to the LoRA weights.
        model.get_encoder().conv1.register_forward_hook(
            lambda module, inputs, output: output.requires_grad_(True))
    model.config.use_cache = False  # the cache is useless in training and warns with checkpointing
    return get_peft_model(model, settings.to_peft())


def parameter_counts(model) -> tuple[int, int]:
    """Return (trainable, total) parameter counts; 4-bit packed weights are counted unpacked."""
    if hasattr(model, "get_nb_trainable_parameters"):
        return tuple(int(n) for n in model.get_nb_trainable_parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def save_adapter(model, out_dir: str | Path, base_source: str, language: str | None = None,
                 replay_languages: list[str] | None = None) -> int:
    """Save only the adapter (safetensors) to out_dir, atomically; returns its weight bytes.

    `base_source` (e.g. "embedded" or "openai/whisper-large-v2") is written into the
    adapter config so the adapter can find its base model again. `language`: the Whisper
    language it was trained on ("hindi"; None: not recorded, e.g. an English-only base),
    with `replay_languages` (REPLAY_SHARE's corpus, "english"), written to ADAPTER_LANGUAGE.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for config in model.peft_config.values():
        config.base_model_name_or_path = base_source
    with staging_dir(out_dir) as staging:  # a failed save leaves the old adapter only
        model.save_pretrained(staging, safe_serialization=True, save_embedding_layers=False)
        if language:
            (Path(staging) / ADAPTER_LANGUAGE).write_text(json.dumps(
                {"language": language, "replay_languages": list(replay_languages or [])}))
    return (out_dir / ADAPTER_WEIGHTS).stat().st_size


def adapter_languages(adapter_dir: str | Path) -> list[str]:
    """The Whisper languages an adapter was trained on, its own first: ["hindi"], or
    ["hindi", "english"] with replay; [] when none is recorded.

    Read from ADAPTER_LANGUAGE; for an adapter saved before that file existed, from the
    `language:` of its model card (README.md, as published to the Hub) or from the run's
    config.json beside the folder (runs/<RUN_NAME>/adapter).
    """
    from helpers.model.load import canonical_language

    adapter_dir = Path(adapter_dir)
    recorded = adapter_dir / ADAPTER_LANGUAGE
    if recorded.is_file():
        data = json.loads(recorded.read_text())
        names = [data.get("language"), *data.get("replay_languages", [])]
    else:
        names = _card_languages(adapter_dir / "README.md") or [_run_language(adapter_dir)]
    return list(dict.fromkeys(canonical_language(name) for name in names if name))


def _card_languages(card: Path) -> list[str]:
    """The `language:` of a model card's front matter (a code or a list of codes), or []."""
    if not card.is_file():
        return []
    from huggingface_hub import ModelCard

    language = ModelCard.load(card).data.language
    return [language] if isinstance(language, str) else list(language or [])


def _run_language(adapter_dir: Path) -> str | None:
    """The language in the config.json of the run an adapter folder sits in, or None."""
    config = adapter_dir.resolve().parent / "config.json"
    return json.loads(config.read_text()).get("language") if config.is_file() else None


def read_adapter_config(adapter_dir: str | Path) -> dict:
    """Read adapter_config.json; clear errors for a missing dir or a pickle-only adapter."""
    adapter_dir = Path(adapter_dir)
    config_path = adapter_dir / ADAPTER_CONFIG
    if not config_path.is_file():
        raise FileNotFoundError(f"{adapter_dir}: not an adapter directory (no {ADAPTER_CONFIG}); "
                                "pass the folder that save_adapter or training wrote")
    if not (adapter_dir / ADAPTER_WEIGHTS).is_file():
        pickles = [name for name in PICKLE_WEIGHTS if (adapter_dir / name).is_file()]
        hint = (f" It holds {pickles[0]}, a pickle file, which can run code when loaded; "
                "convert it to safetensors with a tool you trust." if pickles else "")
        raise ValueError(f"{adapter_dir}: no {ADAPTER_WEIGHTS}.{hint}")
    return json.loads(config_path.read_text())


def adapter_base_model(adapter_dir: str | Path) -> str:
    """The base model source recorded in an adapter's config."""
    base = read_adapter_config(adapter_dir).get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{adapter_dir}/{ADAPTER_CONFIG} names no base model; pass --model")
    return base


def attach_adapter(model, adapter_dir: str | Path, trainable: bool = False):
    """Load a saved LoRA adapter onto a base model; returns the PEFT model.

    Raises ValueError naming the adapter if it was trained on a different architecture.
    """
    from peft import PeftModel

    read_adapter_config(adapter_dir)
    try:
        return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=trainable)
    except (RuntimeError, ValueError, KeyError) as error:
        raise ValueError(f"{adapter_dir}: this adapter does not fit the base model "
                         f"({type(error).__name__}: {str(error)[:300]}). Load the base model it "
                         f"was trained on: {adapter_base_model(adapter_dir)}") from error


def adapter_settings(adapter_dir: str | Path) -> dict:
    """The LoRA settings an adapter was trained with, as a dict (for reports)."""
    config = read_adapter_config(adapter_dir)
    return {key: config.get(key) for key in ("r", "lora_alpha", "lora_dropout", "target_modules")}


def trainable_dtype_summary(model) -> dict[str, int]:
    """Count trainable parameters per dtype (LoRA weights should be fp32)."""
    summary: dict[str, int] = {}
    for parameter in model.parameters():
        if parameter.requires_grad:
            key = str(parameter.dtype).replace("torch.", "")
            summary[key] = summary.get(key, 0) + parameter.numel()
    return summary


# ------------------------------------------------------------------ adapters on the Hub

# All a PEFT adapter on the Hub needs: its config, its weights and its card. Nothing else is
# downloaded, so a repo that also holds pickled weights (adapter_model.bin) never sends them.
HUB_ADAPTER_PATTERNS = [ADAPTER_CONFIG, "*.safetensors", "README.md", ADAPTER_LANGUAGE]


def split_hub_id(adapter: str | Path) -> tuple[str, str | None] | None:
    """"USER/NAME" or "USER/NAME@REVISION" -> (repo id, revision or None); None when the
    text is not shaped like a Hub model id (a path such as runs/demo/adapter or ./x)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    text = str(adapter).strip()
    repo_id, _, revision = text.partition("@")
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts) or text.startswith((".", "~", "/")):
        return None
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        return None
    return repo_id, revision or None


def resolve_adapter(adapter: str | Path) -> Path:
    """The local folder of an adapter given as a folder or as a Hub id USER/NAME[@REVISION].

    A folder that exists always wins. Otherwise a Hub id is fetched with snapshot_download,
    restricted to HUB_ADAPTER_PATTERNS, into the Hub cache ($HF_HUB_CACHE), or found there
    when offline (HF_HUB_OFFLINE=1); a private repo needs HF_TOKEN. The folder is then
    checked as a local one is (adapter_config.json and adapter_model.safetensors present).
    Raises FileNotFoundError or ValueError saying what was tried and what to do.
    """
    path = Path(adapter).expanduser()
    if path.is_dir():
        return path
    hub = split_hub_id(adapter)
    if hub is None:
        kind = "a file, not an adapter folder" if path.exists() else "no such folder"
        raise FileNotFoundError(f"{adapter}: {kind}. Pass the folder that training wrote "
                                "(runs/<RUN_NAME>/adapter) or a Hub id USER/NAME[@REVISION].")
    folder = _download_adapter(*hub)
    _check_hub_adapter(folder, str(adapter))
    return folder


def _download_adapter(repo_id: str, revision: str | None) -> Path:
    """snapshot_download of the adapter files of a Hub model repo; clear errors naming it."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from helpers.colab import load_colab_secret

    load_colab_secret("HF_TOKEN")  # Colab's secret store first: a replaced token works at once
    where = f"{repo_id}@{revision}" if revision else repo_id
    prefix = f"{where}: no such folder here, and"
    try:
        return Path(snapshot_download(repo_id, revision=revision,
                                      allow_patterns=HUB_ADAPTER_PATTERNS))
    except RevisionNotFoundError as error:
        raise FileNotFoundError(f"{prefix} the Hub repo {repo_id} has no revision "
                                f"{revision!r} (a branch, tag or commit)") from error
    except GatedRepoError as error:
        raise FileNotFoundError(f"{prefix} the Hub repo {repo_id} is gated: accept its terms on "
                                f"https://huggingface.co/{repo_id} and set HF_TOKEN") from error
    except RepositoryNotFoundError as error:
        raise FileNotFoundError(f"{prefix} there is no model repo {repo_id} on the Hub (or it is "
                                "private: set HF_TOKEN to a token that may read it)") from error
    except LocalEntryNotFoundError as error:
        reason = ("HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE
                  else "the Hub could not be reached")
        raise FileNotFoundError(f"{prefix} {reason} and the Hub cache ({constants.HF_HUB_CACHE}) "
                                f"holds no complete copy of {where}: download it once online, "
                                "or pass the adapter folder") from error
    except HfHubHTTPError as error:
        status = getattr(error.response, "status_code", "?")
        raise FileNotFoundError(f"{prefix} the Hub answered HTTP {status} for {where}: "
                                f"{str(error).splitlines()[0]}") from error


def _check_hub_adapter(folder: Path, where: str) -> None:
    """The checks read_adapter_config makes on a folder, worded for a Hub repo `where`."""
    if not (folder / ADAPTER_CONFIG).is_file():
        raise FileNotFoundError(f"{where}: the Hub repo holds no {ADAPTER_CONFIG}, so it is not "
                                "a PEFT adapter (a full model goes in --model instead)")
    if not (folder / ADAPTER_WEIGHTS).is_file():
        raise ValueError(f"{where}: the Hub repo has no {ADAPTER_WEIGHTS}. Only safetensors "
                         "adapters are loaded: pickled weights (adapter_model.bin) can run code "
                         "when loaded, and are never downloaded.")


def load_for_transcription(model_source: str | None, adapter: str | None,
                           language: str | None, precision: str):
    """Load the model (and adapter, if given) the command line asked for.

    adapter: a folder, or a Hub id USER/NAME[@REVISION] (`helpers.model.adapters.resolve_adapter`:
    a folder that exists wins; the same checks either way). Returns (model, processor).
    """
    from helpers.model.load import load_model

    adapter = resolve_adapter(adapter) if adapter else None
    source = model_source or (adapter_base_model(adapter) if adapter else "embedded")
    model, processor = load_model(source, precision=precision, language=language)
    if adapter:
        model = attach_adapter(model, adapter)
    model.eval()
    return model, processor
