"""Memory footprint of Whisper + LoRA: measured by loading, or counted offline from shapes.

Measured: `measure_footprints` (weights at each precision, notebook 02),
`LiveTensorBytes` (tensor bytes alive during a training step, for checking estimates).
Counted: `python -m helpers.footprint --model openai/whisper-large-v2 --preset blog`
prints one JSON object: trainable/total parameters as PEFT prints them, trainable_pct,
`adapter_bytes` and `adapter_bytes_fp16` (both always: the exact size of
adapter_model.safetensors saved in float32, and in float16 for a half-precision
adapter), and with --batch-size/--gpu-memory the predicted peak memory of a training
step (helpers.memory_estimate). No weights are downloaded: the architectures are in
helpers.architectures and the model is built on the meta device.
"""
from __future__ import annotations

import gc
import time
import warnings

import torch


def measure_footprints(source: str, precisions=("fp32", "fp16", "8bit", "4bit"),
                       language: str | None = None) -> dict[str, dict]:
    """Load the model once per precision; returns {precision: {"bytes", "load_seconds"}}.

    "bytes" is `model.get_memory_footprint()`: every parameter and buffer as stored
    (8-bit weights count one byte each, 4-bit half a byte, plus their scales).
    """
    from helpers.models import load_model

    results = {}
    for precision in precisions:
        started = time.perf_counter()
        with warnings.catch_warnings():
            # load_model warns that fp16 runs slowly on a CPU; nothing runs here, the
            # weights are only loaded to be measured.
            warnings.filterwarnings("ignore", message=".*CPU float16 kernels are slow")
            model, _ = load_model(source, precision=precision, language=language)
        results[precision] = {"bytes": int(model.get_memory_footprint()),
                              "load_seconds": round(time.perf_counter() - started, 2)}
        del model
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return results


def linear_layer_kinds(model) -> dict[str, int]:
    """Count modules by class name among linear layers (shows what bitsandbytes replaced)."""
    counts: dict[str, int] = {}
    for module in model.modules():
        name = type(module).__name__
        if "Linear" in name:
            counts[name] = counts.get(name, 0) + 1
    return counts


class LiveTensorBytes:
    """Context manager measuring the bytes of tensor storages created inside it.

    `live()` is what is allocated now, `peak` the most at any moment, both counted from
    the storages of every op's outputs (a TorchDispatchMode), so allocator overhead is not
    included: it checks helpers.memory_estimate tensor by tensor. Slow; for tiny models.
    Views and in-place results (outputs sharing an input's storage) are not new memory.
    """

    def __init__(self, device: str = "cpu"):
        self.device, self.peak, self._live, self._refs = device, 0, 0, {}

    def __enter__(self):
        import torch
        from torch.multiprocessing.reductions import StorageWeakRef
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils._pytree import tree_flatten

        tracker = self

        class _Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                tracker.live()   # forget storages freed by now: their addresses may be reused
                inputs = {t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0]
                          if isinstance(t, torch.Tensor)}
                for t in tree_flatten(out)[0]:
                    if isinstance(t, torch.Tensor) and t.device.type == tracker.device:
                        storage = t.untyped_storage()
                        key = storage.data_ptr()
                        if key not in inputs and key not in tracker._refs:
                            tracker._refs[key] = (StorageWeakRef(storage), storage.nbytes())
                            tracker._live += storage.nbytes()
                tracker.peak = max(tracker.peak, tracker.live())
                return out

        self._mode = _Mode()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        self._mode.__exit__(*exc)

    def live(self) -> int:
        """Bytes of the tracked storages still alive."""
        dead = [key for key, (ref, _) in self._refs.items() if ref.expired()]
        for key in dead:
            self._live -= self._refs.pop(key)[1]
        return self._live


# ------------------------------------------------------------------ counts without weights
# `python -m helpers.footprint --model openai/whisper-large-v2 --preset blog` prints the LoRA
# printout and the adapter's file size from shapes alone (helpers.architectures builds the
# model on the meta device), and with --batch-size/--gpu-memory the predicted peak memory
# of a training step (helpers.memory_estimate).

SAFETENSORS_DTYPES = {"fp32": ("F32", 4), "fp16": ("F16", 2), "bf16": ("BF16", 2)}
SAFETENSORS_METADATA = {"format": "pt"}   # what PEFT's save_pretrained writes


def lora_settings(preset: str = "embedded", r: int | None = None,
                  target_modules: list[str] | None = None):
    """The preset's LoRA settings (helpers.config), with optional rank/targets overrides."""
    from dataclasses import replace

    from helpers.adapters import LoraSettings
    from helpers.config import make_config

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

    from helpers.architectures import arch_name

    return "config.json" if (Path(str(model)).expanduser() / "config.json").is_file() \
        else arch_name(model)


def count_footprint(model: str = "embedded", lora=None) -> tuple[dict, dict]:
    """(report, param_counts) for `model` with LoRA `lora` (LoraSettings), on the meta device.

    report: trainable/total params as PEFT prints them, trainable_pct, the adapter file
    size in fp32 and fp16, the full model's fp32 weight bytes. param_counts feeds
    helpers.memory_estimate.
    """
    from helpers.adapters import LoraSettings, parameter_counts
    from helpers.architectures import arch_from_config, meta_model, meta_peft, whisper_config
    from helpers.memory_estimate import param_counts

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


def _parser():
    """Command-line arguments of `python -m helpers.footprint`."""
    import argparse

    from helpers.config import PRESETS
    from helpers.memory_estimate import CHECKPOINTING, DEVICES, LABEL_LENGTH

    p = argparse.ArgumentParser(
        prog="python -m helpers.footprint",
        description="Parameter counts, adapter file size and predicted training memory of a "
                    "Whisper model with LoRA, computed offline from its architecture.")
    p.add_argument("--model", help="tiny ... large-v3-turbo, openai/whisper-<name>, embedded, "
                   "embedded-base, or a local dir with config.json (default: the preset's)")
    p.add_argument("--preset", default="embedded", choices=sorted(PRESETS),
                   help="LoRA settings (and default model/batch/checkpointing) from this preset")
    p.add_argument("--r", type=int, help="override the LoRA rank")
    p.add_argument("--target-modules", help="override LoRA targets, comma-separated: q_proj,v_proj")
    p.add_argument("--batch-size", type=int, help="predict peak memory at this batch size")
    p.add_argument("--gpu-memory", "--memory", dest="memory",
                   help="memory to fit in, e.g. 15GB (1e9) or 15GiB (2**30); adds max_batch_size")
    p.add_argument("--device", default="cuda", choices=DEVICES,
                   help="cuda: GPU memory, fp16 autocast; cpu: peak process RSS, float32")
    p.add_argument("--checkpointing", choices=CHECKPOINTING,
                   help="gradient checkpointing kind (default: the preset's, as add_lora does it in one process: "
                        "reentrant; non-reentrant under DDP)")
    p.add_argument("--label-length", type=int, default=LABEL_LENGTH,
                   help="label tokens per example (decoder length)")
    p.add_argument("--frames", type=int, default=1500, help="encoder frames (1500 = 30 s)")
    return p


def main(argv=None) -> dict:
    """Print one JSON object: counts and adapter bytes, plus "memory" when asked."""
    import json
    import warnings

    from helpers.config import make_config
    from helpers.memory_estimate import estimate, parse_bytes

    parser = _parser()
    args = parser.parse_args(argv)
    config = make_config(args.preset)
    targets = [t.strip() for t in args.target_modules.split(",") if t.strip()] \
        if args.target_modules else None
    lora = lora_settings(args.preset, r=args.r, target_modules=targets)
    model = args.model or config.model
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # PEFT asks a deprecated flag
            report, counts = count_footprint(model, lora)
        report["preset"] = args.preset
        if args.batch_size is not None or args.memory is not None:
            from helpers.adapters import checkpointing_kind

            checkpointing = args.checkpointing or checkpointing_kind(config.gradient_checkpointing)
            report["memory"] = estimate(
                report["config"], lora, counts, args.batch_size or config.batch_size,
                parse_bytes(args.memory) if args.memory else None, device=args.device,
                checkpointing=checkpointing, label_length=args.label_length, frames=args.frames)
    except ValueError as error:
        parser.error(str(error))
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
