"""The blog-claims table reads measured values and says what kind of memory they are."""
import pytest
from helpers.notebook.claims import claims_table, memory_line, samples_per_second

pytestmark = pytest.mark.unit


def test_claims_table_formats_measured_values():
    metrics = {"peak_memory_bytes": 2_500_000_000, "peak_memory_kind": "process_rss",
               "adapter_bytes": 2_400_000, "trainable_params": 589_824, "total_params": 38_350_080,
               "train_steps": 40, "train_seconds": 200.0}
    metrics["train_samples_per_second"] = samples_per_second(metrics, 8)
    table = claims_table(metrics, "embedded")
    column = table["this run (embedded)"]
    assert column["peak GPU memory, large-v2 LoRA 8-bit on a T4"] == "2.50 GB (process RSS on CPU, not comparable)"
    assert column["adapter checkpoint"] == "2.4 MB"
    assert column["trainable parameters"] == "589,824 of 38,350,080 (1.54%)"
    assert metrics["train_samples_per_second"] == 1.6


def test_missing_figures_say_so():
    table = claims_table({}, "openai/whisper-large-v2")
    assert set(table["this run (openai/whisper-large-v2)"]) == {"not measured in this run"}
    assert samples_per_second({}, 8) is None


def test_on_a_gpu_the_claim_is_compared_with_device_memory_and_allocated_shown_beside():
    metrics = {"peak_memory_bytes": 5_100_000_000, "peak_memory_kind": "gpu_allocated",
               "peak_gpu_allocated_bytes": 5_100_000_000, "peak_gpu_reserved_bytes": 5_900_000_000,
               "peak_gpu_device_bytes": 6_300_000_000}
    shown = claims_table(metrics, "openai/whisper-large-v2")["this run (openai/whisper-large-v2)"]
    assert shown["peak GPU memory, large-v2 LoRA 8-bit on a T4"] == (
        "6.30 GB on the GPU (reserved + CUDA context, as nvidia-smi shows); "
        "5.10 GB allocated by tensors")
    assert memory_line(metrics).startswith("peak memory: 6.30 GB on the GPU")
    older = {"peak_memory_bytes": 5_100_000_000, "peak_memory_kind": "gpu_allocated"}
    assert "claim describes, is higher" in memory_line(older)


def test_packed_runs_compare_the_blogs_samples_with_clips_per_second():
    # a packed step of 2 windows holds about 12 clips: steps x batch would undercount them
    metrics = {"train_steps": 30, "train_seconds": 60.0, "clips_per_second": 6.1}
    assert samples_per_second(metrics, 2) == 6.1
    assert samples_per_second({"train_steps": 30, "train_seconds": 60.0}, 2) == 1.0
