"""large-v3 and large-v3-turbo: their footprint and memory estimate follow from their
architecture (32 encoder layers, 32 or 4 decoder layers, 128 mel bins, 51,866 tokens), and
the `blog-v3-turbo` preset (LoRA on an fp16 base) resolves and trains.

Counts here are written out by hand from Whisper's layer shapes, not read back from the
code under test.
"""
import math
import warnings

import pytest
import torch

from helpers.footprint import estimate as me
from helpers.model.architectures import ARCHITECTURES
from helpers.footprint.count import count_footprint, lora_settings
from helpers.footprint.__main__ import main

pytestmark = pytest.mark.unit

D, F = 1280, 5120                 # large-v2/v3/turbo width and feed-forward width
TEXT_POSITIONS, FRAMES = 448, 1500


def attention(d: int) -> int:
    """q, k, v, out: 4 d x d weights, biases on q, v and out (Whisper's k has none)."""
    return 4 * d * d + 3 * d


def mlp(d: int, f: int) -> int:
    """fc1 and fc2 with biases."""
    return 2 * d * f + f + d


def whisper_params(arch) -> int:
    """Parameters of WhisperForConditionalGeneration (the output projection is tied)."""
    d, f = arch.d_model, arch.ffn
    encoder = (arch.mel_bins * d * 3 + d) + (d * d * 3 + d) + FRAMES * d \
        + arch.encoder_layers * (attention(d) + mlp(d, f) + 2 * 2 * d) + 2 * d
    decoder = arch.vocab * d + TEXT_POSITIONS * d \
        + arch.decoder_layers * (2 * attention(d) + mlp(d, f) + 3 * 2 * d) + 2 * d
    return encoder + decoder


def lora_params(arch, r: int = 32) -> int:
    """The recipe's LoRA (q_proj, v_proj): encoder self-attention, decoder self- and cross-."""
    modules = 2 * arch.encoder_layers + 2 * 2 * arch.decoder_layers
    return modules * 2 * r * arch.d_model


@pytest.fixture(scope="module")
def footprints():
    """count_footprint with the blog LoRA for large-v2, large-v3 and large-v3-turbo."""
    lora = lora_settings("blog")
    return {name: count_footprint(name, lora) for name in ("large-v2", "large-v3", "large-v3-turbo")}


def test_the_table_holds_v3_and_turbo():
    v3, turbo = ARCHITECTURES["large-v3"], ARCHITECTURES["large-v3-turbo"]
    assert (v3.encoder_layers, v3.decoder_layers, v3.mel_bins, v3.vocab) == (32, 32, 128, 51866)
    assert (turbo.encoder_layers, turbo.decoder_layers, turbo.mel_bins, turbo.vocab) == \
        (32, 4, 128, 51866)


@pytest.mark.parametrize("name", ["large-v2", "large-v3", "large-v3-turbo"])
def test_counts_follow_from_the_architecture(footprints, name):
    report, counts = footprints[name]
    arch = ARCHITECTURES[name]
    assert report["trainable_params"] == lora_params(arch)
    assert report["total_params"] == whisper_params(arch) + lora_params(arch)
    assert report["full_model_bytes_fp32"] == 4 * whisper_params(arch)
    assert report["adapted_modules"] == 2 * arch.encoder_layers + 4 * arch.decoder_layers
    assert counts["quantized_weights"] == arch.encoder_layers * (4 * D * D + 2 * D * F) + \
        arch.decoder_layers * (8 * D * D + 2 * D * F)
    assert counts["vocab_x_d"] == arch.vocab * D


def test_v3_differs_from_v2_by_48_mel_rows_and_one_token(footprints):
    v2, v3, turbo = (footprints[n][0]["total_params"] - footprints[n][0]["trainable_params"]
                     for n in ("large-v2", "large-v3", "large-v3-turbo"))   # without LoRA
    assert v3 - v2 == 48 * 3 * D + D
    assert v3 - turbo == 28 * (2 * attention(D) + mlp(D, F) + 6 * D)   # 28 decoder layers fewer
    assert footprints["large-v3-turbo"][0]["trainable_params"] == 80 * 2 * 32 * D  # 6,553,600


def estimate(footprints, name, batch_size=8, checkpointing="reentrant", device="cuda"):
    """The estimator's methods for `name` with the blog LoRA (15 GB card)."""
    report, counts = footprints[name]
    return me.estimate(report["config"], lora_settings("blog"), counts, batch_size,
                       me.parse_bytes("15GB"), device=device, checkpointing=checkpointing,
                       label_length=64)["methods"]


@pytest.mark.parametrize("name", ["large-v3", "large-v3-turbo"])
def test_static_memory_is_exact(footprints, name):
    arch = ARCHITECTURES[name]
    total, lora = whisper_params(arch), lora_params(arch)
    methods = estimate(footprints, name)
    assert methods["lora_fp16"]["weights_bytes"] == 2 * total + 4 * lora
    quantized = arch.encoder_layers * (4 * D * D + 2 * D * F) + arch.decoder_layers * (8 * D * D + 2 * D * F)
    rows = arch.encoder_layers * (4 * D + F + D) + arch.decoder_layers * (8 * D + F + D)
    assert methods["lora_8bit"]["weights_bytes"] == quantized + 4 * rows + 4 * (total - quantized) + 4 * lora
    for method in ("lora_fp16", "lora_8bit", "lora_4bit"):
        assert methods[method]["optimizer_bytes"] == 8 * lora
        assert methods[method]["gradients_bytes"] == 4 * lora


@pytest.mark.parametrize("name, mels", [("large-v2", 80), ("large-v3", 128), ("large-v3-turbo", 128)])
def test_a_batch_holds_its_mel_bins(footprints, name, mels):
    """float32 log-mel (mels x 3000 frames) + labels and decoder ids (int64) per example."""
    for method, result in estimate(footprints, name, batch_size=8).items():
        assert result["batch_bytes"] == 8 * (4 * mels * 2 * FRAMES + 16 * 64), method


def test_turbo_needs_less_than_v3_and_v3_about_what_v2_needs(footprints):
    v2, v3, turbo = (estimate(footprints, n) for n in ("large-v2", "large-v3", "large-v3-turbo"))
    for method in me.METHODS:
        assert turbo[method]["peak_allocated_bytes"] < v3[method]["peak_allocated_bytes"]
        assert turbo[method]["max_batch_size"] >= v3[method]["max_batch_size"]
        # 48 more mel rows (8 x 48 x 3000 float32 = 4.6 MB of batch) and one more token
        assert 0 < v3[method]["peak_allocated_bytes"] - v2[method]["peak_allocated_bytes"] < 20e6
    # on a 15 GB T4, turbo's LoRA on an fp16 base (the blog-v3-turbo preset) fits batch 8
    assert turbo["lora_fp16"]["fits"] and turbo["lora_fp16"]["peak_allocated_bytes"] < 4e9


def test_cli_with_the_turbo_preset(capsys):
    report = main(["--preset", "blog-v3-turbo", "--batch-size", "8", "--gpu-memory", "15GB"])
    assert report["model"] == "openai/whisper-large-v3-turbo" and report["preset"] == "blog-v3-turbo"
    assert report["config"]["decoder_layers"] == 4 and report["config"]["mel_bins"] == 128
    assert report["trainable_params"] == lora_params(ARCHITECTURES["large-v3-turbo"])
    assert report["memory"]["checkpointing"] == "reentrant"
    assert report["memory"]["methods"]["lora_fp16"]["fits"]


# ---------------------------------------------------------------- the blog-v3-turbo preset


def test_blog_v3_turbo_is_the_recipe_on_turbo_with_an_fp16_base():
    from helpers.config import make_config

    turbo, blog = make_config("blog-v3-turbo"), make_config("blog")
    assert (turbo.model, turbo.precision, turbo.fp16) == ("openai/whisper-large-v3-turbo", "fp16", True)
    same = ("preset", "model", "precision")
    assert {k: v for k, v in vars(turbo).items() if k not in same} == \
        {k: v for k, v in vars(blog).items() if k not in same}


@pytest.mark.integration  # slower than the unit tier allows (make test-fast)
@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the fp16 base stays fp16 (test_gpu.py)")
def test_an_fp16_base_trains_in_fp32_on_a_cpu(tmp_path):
    """The preset's precision on a CPU: fp32 with a warning, and a LoRA step runs (a float16
    base would fail at its first convolution on float32 features)."""
    from fixtures.generations import tiny_generation_dir
    from helpers.train.collator import SpeechSeq2SeqCollator
    from helpers.config import make_config
    from helpers.train.trainer import check_training_config, load_training_model

    model_dir = tiny_generation_dir(tmp_path / "tiny-v3", "mel128", d_model=32, layers=1)
    config = make_config("blog-v3-turbo", model=str(model_dir), language="english")
    check_training_config(config)
    with pytest.warns(UserWarning, match="fp16.*CUDA GPU only.*fp32 instead"):
        model, processor = load_training_model(config)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    features = torch.zeros(16_000 * 2)
    rows = [{"input_features": processor.feature_extractor(features.numpy(), sampling_rate=16_000,
                                                           return_tensors="np").input_features[0],
             "labels": processor.tokenizer("a test").input_ids}] * 2
    batch = SpeechSeq2SeqCollator(processor, model.config.decoder_start_token_id)(rows)
    assert batch["input_features"].shape == (2, 128, 3000)
    loss = model.train()(**batch).loss
    loss.backward()
    assert math.isfinite(loss.item())
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for n, p in model.named_parameters() if "lora_B" in n)
