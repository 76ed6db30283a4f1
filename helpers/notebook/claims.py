"""The blog's claims (docs/recipe.md) side by side with what a run measured."""
from __future__ import annotations

# claim key -> (what the blog says, the metrics.json key that answers it)
BLOG_CLAIMS = {
    "peak GPU memory, large-v2 LoRA 8-bit on a T4": ("< 8 GB", "peak_memory_bytes"),
    "adapter checkpoint": ("about 60 MB (PEFT's upload: 63.1 MB)", "adapter_bytes"),
    "trainable parameters": ("15,728,640 of 1,559,033,600 (1.01%)", "trainable_params"),
    "training speed (T4, batch 8)": ("0.228 samples (clips)/s (100 steps in 3,516 s)", "train_samples_per_second"),
}


def _measured(metrics: dict, key: str) -> str:
    """A metrics value formatted for people, with what kind of memory it is."""
    value = metrics.get(key)
    if value is None:
        return "not measured in this run"
    if key == "peak_memory_bytes":
        return memory_figure(metrics)
    if key == "adapter_bytes":
        return f"{value / 1e6:.1f} MB"
    if key == "trainable_params":
        total = metrics.get("total_params")
        share = f" of {total:,} ({100 * value / total:.2f}%)" if total else ""
        return f"{value:,}{share}"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def memory_figure(metrics: dict) -> str:
    """Peak training memory as the blog's "< 8 GB" means it: on the GPU, device-level (what
    nvidia-smi shows: reserved + CUDA context), with the tensors' allocated peak beside it."""
    device, allocated = metrics.get("peak_gpu_device_bytes"), metrics.get("peak_gpu_allocated_bytes")
    if device is not None:
        beside = f"; {allocated / 1e9:.2f} GB allocated by tensors" if allocated is not None else ""
        return f"{device / 1e9:.2f} GB on the GPU (reserved + CUDA context, as nvidia-smi shows){beside}"
    value = metrics["peak_memory_bytes"]
    if metrics.get("peak_memory_kind") == "gpu_allocated":
        return (f"{value / 1e9:.2f} GB allocated by tensors (the GPU's own figure, which the "
                "claim describes, is higher: not recorded in this run)")
    return f"{value / 1e9:.2f} GB (process RSS on CPU, not comparable)"


def memory_line(summary: dict) -> str:
    """One line for notebook 04: this run's peak memory next to the blog's claim."""
    if summary.get("peak_memory_bytes") is None:
        return "peak memory: not measured in this run"
    return (f"peak memory: {memory_figure(summary)}   | blog's claim for large-v2 LoRA 8-bit on "
            "a T4: < 8 GB of GPU memory (as nvidia-smi shows it)")


def claims_table(metrics: dict, model: str):
    """DataFrame: each blog claim, the blog's figure, this run's figure (for `model`)."""
    import pandas as pd

    rows = [{"claim": claim, "blog (whisper-large-v2)": blog, f"this run ({model})": _measured(metrics, key)}
            for claim, (blog, key) in BLOG_CLAIMS.items()]
    return pd.DataFrame(rows).set_index("claim")


def samples_per_second(metrics: dict, batch_size: int) -> float | None:
    """Training throughput in the blog's samples, clips, per second (None if training did
    not run): the clips notebook 04 counted ("clips_per_second"; a packed sample holds
    several), else steps x batch / seconds."""
    if not metrics.get("train_seconds"):
        return None
    if metrics.get("clips_per_second") is not None:
        return metrics["clips_per_second"]
    return round(metrics["train_steps"] * batch_size / metrics["train_seconds"], 3)
