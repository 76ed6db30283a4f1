"""helpers.footprint.estimate against real training steps on the CPU.

Two levels: the tensors a step keeps (counted by helpers.footprint.measure.LiveTensorBytes on a
small random Whisper, no calibration involved) and the peak RSS of the embedded tiny.en
training with LoRA on 8 bits at batch 2 and 8 (benchmarks/gpu_memory.py --device cpu).
"""
import functools
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration

from helpers.footprint import estimate as me
from helpers.footprint.measure import LiveTensorBytes
from helpers.footprint.count import count_footprint, lora_settings

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parent.parent
BENCHMARK = REPO / "benchmarks" / "gpu_memory.py"
RSS_BOUND = 0.35       # predicted vs measured peak RSS (allocator constants calibrated here)
FORWARD_BOUND = 0.10   # predicted vs counted tensor bytes kept by the forward pass (no calibration)
STEP_BOUND = 0.20      # predicted vs counted peak tensor bytes of a whole step (no calibration)
FRAMES = 1500          # encoder frames of the small random model (30 s of audio)


def load_benchmark():
    """benchmarks/gpu_memory.py as a module (its training-step code is what we measure)."""
    spec = importlib.util.spec_from_file_location("gpu_memory", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def random_dir(tmp_path_factory):
    """A small random-weight Whisper saved as safetensors (d_model 128, 2+2 layers)."""
    path = tmp_path_factory.mktemp("random-whisper")
    config = WhisperConfig(vocab_size=51865, d_model=128, encoder_layers=2, decoder_layers=2,
                           encoder_attention_heads=2, decoder_attention_heads=2,
                           encoder_ffn_dim=512, decoder_ffn_dim=512, num_mel_bins=80,
                           max_source_positions=FRAMES, max_target_positions=448)
    torch.manual_seed(0)
    WhisperForConditionalGeneration(config).save_pretrained(path, safe_serialization=True)
    return path


@functools.lru_cache(maxsize=None)
def counted_step(method, source, checkpointing, batch_size=1, label_length=32):
    """(tensor bytes alive after the forward pass, peak tensor bytes of the whole step)."""
    bench = load_benchmark()
    lora = lora_settings("blog")
    model = bench.load_for(method, str(source), "cpu", lora, checkpointing)
    optimizer = bench.make_optimizer(model)
    bench.train_step(model, optimizer, None,            # warm-up: AdamW state exists after it
                     bench.synthetic_batch(model, batch_size, label_length, "cpu"), "cpu")
    with LiveTensorBytes("cpu") as tracker:
        batch = bench.synthetic_batch(model, batch_size, label_length, "cpu")
        loss = model(**batch).loss
        after_forward = tracker.live()
        loss.backward()
        optimizer.step()
    return after_forward, tracker.peak


@functools.lru_cache(maxsize=None)
def footprint_of(source: str):
    """count_footprint of `source` with the blog LoRA (built once per source)."""
    return count_footprint(source, lora_settings("blog"))


def predicted(source, method, checkpointing, batch_size=1, label_length=32):
    """The estimator's prediction for the same step on the CPU."""
    lora = lora_settings("blog")
    report, counts = footprint_of(str(source))
    return me.estimate(report["config"], lora, counts, batch_size, device="cpu",
                       checkpointing=checkpointing, label_length=label_length, frames=FRAMES,
                       methods=(method,))["methods"][method]


@pytest.mark.parametrize("method, checkpointing", [
    ("full_fp16", "none"), ("full_fp16", "non-reentrant"), ("lora_8bit", "none"),
    ("lora_8bit", "non-reentrant"), ("lora_8bit", "reentrant"), ("lora_4bit", "non-reentrant"),
])
@pytest.mark.integration  # slower than the unit tier allows (make test-fast)
def test_tensor_model_matches_a_real_step(random_dir, method, checkpointing):
    forward, peak = counted_step(method, str(random_dir), checkpointing)
    guess = predicted(random_dir, method, checkpointing)
    forward_guess = guess["activations_bytes"] + guess["batch_bytes"]
    print(f"{method}/{checkpointing}: forward {forward / 1e6:.1f} MB (predicted "
          f"{forward_guess / 1e6:.1f}), step peak {peak / 1e6:.1f} MB (predicted "
          f"{guess['step_tensor_bytes'] / 1e6:.1f})")
    assert abs(forward_guess - forward) / forward < FORWARD_BOUND, (forward_guess, forward)
    assert abs(guess["step_tensor_bytes"] - peak) / peak < STEP_BOUND, (guess, peak)


def test_8bit_layers_defeat_non_reentrant_checkpointing(random_dir):
    """bitsandbytes keeps each 8-bit layer's input on its autograd context, out of reach of
    non-reentrant checkpointing; reentrant checkpointing builds no graph and keeps none."""
    kept = {kind: counted_step("lora_8bit", str(random_dir), kind)[0]
            for kind in ("non-reentrant", "reentrant")}
    guess = {kind: predicted(random_dir, "lora_8bit", kind)["activations_bytes"]
             for kind in kept}
    assert kept["non-reentrant"] > 1.5 * kept["reentrant"]
    assert guess["non-reentrant"] > 1.5 * guess["reentrant"]


@pytest.mark.integration  # slower than the unit tier allows (make test-fast)
def test_cpu_peak_rss_of_embedded_lora_8bit_training(tmp_path):
    """Predicted vs measured peak RSS of tiny.en (embedded), LoRA on 8 bits, batch 2 and 8."""
    out = tmp_path / "cpu.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, str(BENCHMARK), "--device", "cpu", "--model", "embedded",
         "--preset", "embedded", "--methods", "lora_8bit", "--batch-sizes", "2", "8",
         "--steps", "1", "--checkpointing", "non-reentrant", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())["results"]["lora_8bit/non-reentrant"]
    assert [row["batch_size"] for row in rows] == [2, 8], rows
    for row in rows:
        print(f"batch {row['batch_size']}: measured {row['peak_rss_bytes'] / 1e9:.2f} GB, "
              f"predicted {row['predicted_peak_rss_bytes'] / 1e9:.2f} GB, "
              f"error {row['error']:+.1%}")
        assert abs(row["error"]) <= RSS_BOUND, row


@pytest.mark.integration  # slower than the unit tier allows (make test-fast)
@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_benchmark_says_clearly_that_it_needs_cuda():
    proc = subprocess.run([sys.executable, str(BENCHMARK), "--model", "tiny.en"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "No CUDA GPU" in proc.stderr and "--device cpu" in proc.stderr


def large_v2(batch_size=8, memory="15GB", checkpointing="non-reentrant"):
    """The estimator's answer for the recipe (large-v2, blog LoRA) on a 15 GB T4."""
    lora = lora_settings("blog")
    report, counts = footprint_of("openai/whisper-large-v2")
    return me.estimate(report["config"], lora, counts, batch_size, me.parse_bytes(memory),
                       checkpointing=checkpointing)["methods"]


def test_recipe_static_memory_is_exact():
    methods = large_v2()
    params, lora = 1543304960, 15728640
    full = methods["full_fp16"]
    assert full["weights_bytes"] + full["gradients_bytes"] + full["optimizer_bytes"] == \
        4 * params + 12 * (params - 1500 * 1280)        # encoder positions are frozen
    assert full["fits"] is False and full["max_batch_size"] == 0   # > 24 GB before activations
    int8 = methods["lora_8bit"]
    quantized = 32 * (4 * 1280 * 1280 + 2 * 1280 * 5120) + 32 * (8 * 1280 * 1280 + 2 * 1280 * 5120)
    rows = 32 * (4 * 1280 + 5120 + 1280) + 32 * (8 * 1280 + 5120 + 1280)
    assert int8["weights_bytes"] == quantized + 4 * rows + 4 * (params - quantized) + 4 * lora
    assert int8["optimizer_bytes"] == 8 * lora


def test_max_batch_is_the_largest_that_fits():
    for name, result in large_v2(memory="15GB").items():
        if name == "full_fp16":
            continue
        best = result["max_batch_size"]
        assert best > 0
        assert large_v2(best)[name]["fits"] and not large_v2(best + 1)[name]["fits"]
    # reentrant checkpointing keeps no 8-bit layer inputs: larger batches fit
    assert large_v2(checkpointing="reentrant")["lora_8bit"]["max_batch_size"] > \
        large_v2()["lora_8bit"]["max_batch_size"]


def test_parse_bytes():
    assert me.parse_bytes("15GB") == 15e9
    assert me.parse_bytes("15GiB") == 15 * 2**30
    assert me.parse_bytes("800 MB") == 800e6
    assert me.parse_bytes("16000000000") == 16e9
    with pytest.raises(ValueError, match="15GB or 15GiB"):
        me.parse_bytes("lots")


def test_bad_settings_are_refused():
    lora = lora_settings("blog")
    report, counts = footprint_of("tiny.en")
    with pytest.raises(ValueError, match="checkpointing must be one of"):
        me.estimate(report["config"], lora, counts, 8, checkpointing="sometimes")
    with pytest.raises(ValueError, match="positive"):
        me.estimate(report["config"], lora, counts, 0)
