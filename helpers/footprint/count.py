"""Parameters and adapter bytes counted offline from shapes: the model is built on the meta
device from `helpers.model.architectures`, so large-v2 is counted without a download."""
from __future__ import annotations

# ------------------------------------------------------------------ counts without weights
# `python -m helpers.footprint --model openai/whisper-large-v2 --preset blog` prints the LoRA
# printout and the adapter's file size from shapes alone (helpers.model.architectures builds the
# model on the meta device), and with --batch-size/--gpu-memory the predicted peak memory
# of a training step (helpers.footprint.estimate).

SAFETENSORS_DTYPES = {"fp32": ("F32", 4), "fp16": ("F16", 2), "bf16": ("BF16", 2)}
SAFETENSORS_METADATA = {"format": "pt"}   # what PEFT's save_pretrained writes


def lora_settings(preset: str = "embedded", r: int | None = None,
                  target_modules: list[str] | None = None):
    """The preset's LoRA settings (helpers.config), with optional rank/targets overrides."""
    from dataclasses import replace

    from helpers.config import LoraSettings, make_config

    settings = LoraSettings(**make_config(preset).lora)
    if r is not None:
        settings = replace(settings, r=int(r))
    if target_modules:
        settings = replace(settings, target_modules=list(target_modules))
    return settings


def adapter_shapes(peft_model) -> dict[str, tuple[int, ...]]:
    """{tensor name: shape} of the adapter file, named as PEFT saves them
    (e.g. base_model.model.model.encoder.layers.0.self_attn.q_proj.lora_A.weight)."""
    from peft import get_peft_model_state_dict

    state = get_peft_model_state_dict(peft_model, save_embedding_layers=False)
    return {name: tuple(tensor.shape) for name, tensor in state.items()}


def safetensors_header(shapes: dict[str, tuple[int, ...]], dtype: str = "fp32",
                       metadata: dict | None = SAFETENSORS_METADATA) -> tuple[bytes, int]:
    """(header bytes, tensor data bytes) of a safetensors file holding `shapes` in `dtype`.

    The format: 8-byte little-endian header length, a compact JSON header
    ({"__metadata__": ..., name: {"dtype", "shape", "data_offsets"}} with tensors laid out
    in name order), padded with spaces to a multiple of 8, then the raw tensor bytes.
    """
    import json
    import math

    if dtype not in SAFETENSORS_DTYPES:
        raise ValueError(f"adapter dtype must be one of {sorted(SAFETENSORS_DTYPES)}, "
                         f"got {dtype!r}")
    code, itemsize = SAFETENSORS_DTYPES[dtype]
    header, offset = ({"__metadata__": metadata} if metadata else {}), 0
    for name in sorted(shapes):
        size = math.prod(shapes[name]) * itemsize
        header[name] = {"dtype": code, "shape": list(shapes[name]),
                        "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return text + b" " * ((-len(text)) % 8), offset


def safetensors_bytes(shapes: dict[str, tuple[int, ...]], dtype: str = "fp32",
                      metadata: dict | None = SAFETENSORS_METADATA) -> int:
    """Exact size in bytes of the safetensors file holding `shapes`, all in `dtype`."""
    header, data = safetensors_header(shapes, dtype, metadata)
    return 8 + len(header) + data


def _arch_label(model: str) -> str:
    """Table name of `model`, or "config.json" for a local model directory."""
    from pathlib import Path

    from helpers.model.architectures import arch_name

    return "config.json" if (Path(str(model)).expanduser() / "config.json").is_file() \
        else arch_name(model)


def count_footprint(model: str = "embedded", lora=None) -> tuple[dict, dict]:
    """(report, param_counts) for `model` with LoRA `lora` (LoraSettings), on the meta device.

    report: trainable/total params as PEFT prints them, trainable_pct, the adapter file
    size in fp32 and fp16, the full model's fp32 weight bytes. param_counts feeds
    helpers.footprint.estimate.
    """
    from helpers.config import LoraSettings
    from helpers.footprint.estimate import param_counts
    from helpers.model.adapters import parameter_counts
    from helpers.model.architectures import arch_from_config, meta_model, meta_peft, whisper_config

    lora = lora or LoraSettings()
    config = whisper_config(model)
    base = meta_model(config)
    counts = param_counts(base, 0)
    peft_model = meta_peft(base, lora)
    trainable, total = parameter_counts(peft_model)
    counts["lora"] = trainable
    shapes = adapter_shapes(peft_model)
    report = {
        "model": str(model), "architecture": _arch_label(model),
        "config": arch_from_config(config).to_dict(), "lora": vars(lora).copy(),
        "trainable_params": trainable, "total_params": total,
        "trainable_pct": 100 * trainable / total,
        "adapted_modules": sum(".lora_A." in name for name in shapes),
        "adapter_tensors": len(shapes),
        "adapter_bytes": safetensors_bytes(shapes, "fp32"),
        "adapter_bytes_fp16": safetensors_bytes(shapes, "fp16"),
        "full_model_bytes_fp32": 4 * counts["total"],
    }
    return report, counts
