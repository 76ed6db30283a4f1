"""helpers.footprint / helpers.model.architectures: parameter counts and adapter file sizes, offline.

The counts come from models built on the meta device; they are checked against the
recipe's published LoRA printout, the Hub's parameter counts, the packaged real models,
and real adapter files saved by helpers.model.adapters.save_adapter.
"""
import json
import os
import struct
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration

from helpers.footprint import __main__ as footprint_command
from helpers.footprint import count
from helpers.config import LoraSettings
from helpers.model.adapters import ADAPTER_WEIGHTS, add_lora, save_adapter
from helpers.model.architectures import (ARCHITECTURES, arch_from_config, arch_name, meta_model, whisper_config)

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parent.parent

# Parameter counts as the Hugging Face Hub shows them for openai/whisper-* (millions, rounded
# to the Hub's 3 significant digits).
HUB_MILLIONS = {"tiny": 37.8, "tiny.en": 37.8, "base": 72.6, "base.en": 72.6, "small": 242,
                "small.en": 242, "medium": 764, "medium.en": 764, "large": 1540,
                "large-v1": 1540, "large-v2": 1540, "large-v3": 1540, "large-v3-turbo": 809}


def run_cli(*args):
    """Run `python -m helpers.footprint ARGS` offline in a fresh process; its JSON."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "helpers.footprint", *args], cwd=REPO,
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.integration  # slower than the unit tier allows (make test-fast)
def test_cli_prints_the_recipe_lora_printout_offline():
    report = run_cli("--model", "openai/whisper-large-v2", "--preset", "blog")
    # PEFT's printout in the recipe: trainable params: 15728640 || all params: 1559033600
    # || trainable%: 1.0088711365810203
    assert report["trainable_params"] == 15728640
    assert report["total_params"] == 1559033600
    assert report["trainable_pct"] == pytest.approx(1.0088711365810203, rel=1e-12)
    assert report["adapted_modules"] == 192 and report["adapter_tensors"] == 384
    # 15728640 float32 values plus a header of 40 kB: about 63 MB, as the recipe's upload.
    assert 15728640 * 4 < report["adapter_bytes"] < 15728640 * 4 + 100_000
    assert 15728640 * 2 < report["adapter_bytes_fp16"] < 15728640 * 2 + 100_000
    assert "memory" not in report


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_table_matches_hub_parameter_counts(name):
    total = sum(p.numel() for p in meta_model(whisper_config(name)).parameters())
    digits = 3 - len(str(int(HUB_MILLIONS[name])))
    assert round(total / 1e6, digits) == pytest.approx(HUB_MILLIONS[name]), total


def test_table_differences_are_exact():
    count = {n: sum(p.numel() for p in meta_model(whisper_config(n)).parameters())
             for n in ("large-v2", "large-v3", "tiny", "tiny.en")}
    assert count["large-v2"] == 1559033600 - 15728640            # the recipe's printout
    assert count["tiny"] - count["tiny.en"] == 384                # one more vocabulary row
    # large-v3: 48 more mel bins into conv1 (kernel 3) and one more vocabulary row
    assert count["large-v3"] - count["large-v2"] == 48 * 3 * 1280 + 1280


@pytest.mark.parametrize("source, name", [("embedded", "tiny.en"), ("embedded-base", "base")])
def test_table_matches_the_packaged_models(source, name):
    from helpers.model import ct2
    from helpers.model.load import embedded_source

    src = embedded_source(source)  # both packages are in requirements-dev.txt
    config = ct2.whisper_config_from_ct2(ct2.read_model_bin(src.model_bin, dequantize=False))
    assert arch_from_config(config) == ARCHITECTURES[name]
    assert config.max_source_positions == 1500 and config.max_target_positions == 448


def test_model_names_and_aliases():
    assert arch_name("openai/whisper-large-v2") == "large-v2"
    assert arch_name("whisper-tiny.en") == "tiny.en"
    assert arch_name("embedded") == "tiny.en"
    assert arch_name("embedded-base") == "base"
    assert arch_name("turbo") == "large-v3-turbo"
    with pytest.raises(ValueError, match="Known: tiny, tiny.en"):
        arch_name("openai/whisper-huge")


def tiny_config_dir(path: Path) -> Path:
    """A folder holding only the config.json of a small random-weight Whisper."""
    config = WhisperConfig(vocab_size=51865, d_model=64, encoder_layers=2, decoder_layers=3,
                           encoder_attention_heads=2, decoder_attention_heads=2,
                           encoder_ffn_dim=256, decoder_ffn_dim=256, num_mel_bins=80,
                           max_source_positions=1500, max_target_positions=448)
    config.save_pretrained(path)
    return path


def saved_adapter(config_dir: Path, lora: LoraSettings, out: Path, half=False) -> Path:
    """Save a real adapter (helpers.model.adapters.save_adapter) of the model in config_dir."""
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(WhisperConfig.from_pretrained(config_dir))
    peft_model = add_lora(model, lora, gradient_checkpointing=False)
    if half:
        peft_model = peft_model.half()
    save_adapter(peft_model, out, base_source=str(config_dir))
    return out / ADAPTER_WEIGHTS


@pytest.mark.parametrize("lora", [
    LoraSettings(r=4),
    LoraSettings(r=3, alpha=6, target_modules=["k_proj", "out_proj", "fc1", "fc2"]),
], ids=["q_v", "k_out_fc"])
def test_adapter_bytes_equal_a_saved_adapter(tmp_path, lora):
    config_dir = tiny_config_dir(tmp_path / "config")
    report, _ = count.count_footprint(str(config_dir), lora)
    for half, key, dtype in ((False, "adapter_bytes", "fp32"),
                             (True, "adapter_bytes_fp16", "fp16")):
        path = saved_adapter(config_dir, lora, tmp_path / f"adapter-{dtype}", half=half)
        assert path.stat().st_size == report[key]
        # the header is byte for byte what safetensors wrote
        raw = path.read_bytes()
        (length,) = struct.unpack("<Q", raw[:8])
        shapes = {name: tuple(info["shape"])
                  for name, info in json.loads(raw[8:8 + length]).items() if name != "__metadata__"}
        assert raw[8:8 + length] == count.safetensors_header(shapes, dtype)[0]


def test_adapter_bytes_equal_an_embedded_adapter(tmp_path):
    from helpers.model.load import load_model

    lora = count.lora_settings("blog")
    model, _ = load_model("embedded", precision="fp32", device="cpu")
    peft_model = add_lora(model, lora, gradient_checkpointing=False)
    size = save_adapter(peft_model, tmp_path / "adapter", base_source="embedded")
    report, _ = count.count_footprint("embedded", lora)
    assert size == report["adapter_bytes"]
    assert report["trainable_params"] == sum(
        p.numel() for p in peft_model.parameters() if p.requires_grad)


def test_rank_and_target_overrides(capsys):
    report = footprint_command.main(["--model", "large-v2", "--preset", "blog", "--r", "8",
                             "--target-modules", "q_proj,k_proj,v_proj"])
    # q, k, v in 32 encoder self-attentions and 32 x 2 decoder attentions: 288 linears
    assert report["trainable_params"] == 288 * 2 * 8 * 1280
    assert report["lora"]["r"] == 8 and report["lora"]["alpha"] == 64
    assert json.loads(capsys.readouterr().out)["trainable_params"] == 288 * 2 * 8 * 1280


def test_preset_settings_and_errors():
    assert count.lora_settings("blog") == LoraSettings()
    assert count.lora_settings("embedded", r=4) == replace(LoraSettings(), r=4)
    with pytest.raises(ValueError, match="adapter dtype"):
        count.safetensors_bytes({"x": (2, 2)}, "int8")
    with pytest.raises(ValueError, match="unknown preset"):
        count.lora_settings("colab")
