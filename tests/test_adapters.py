"""LoRA injection, parameter counts, adapter save/load, on tiny random Whisper models."""

import pytest
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration

from helpers.config import LoraSettings
from helpers.model.adapters import (ADAPTER_WEIGHTS, adapter_base_model, add_lora, attach_adapter,
                                    parameter_counts, save_adapter)

pytestmark = pytest.mark.unit


def tiny_whisper(d_model=64, layers=2, seed=0):
    torch.manual_seed(seed)
    config = WhisperConfig(vocab_size=51865, num_mel_bins=80, d_model=d_model,
                           encoder_layers=layers, decoder_layers=layers,
                           encoder_attention_heads=4, decoder_attention_heads=4,
                           encoder_ffn_dim=128, decoder_ffn_dim=128,
                           max_source_positions=1500, max_target_positions=448)
    return WhisperForConditionalGeneration(config).eval()


def test_trainable_count_matches_lora_formula():
    model = add_lora(tiny_whisper(), LoraSettings(r=8), gradient_checkpointing=False)
    trainable, total = parameter_counts(model)
    adapted = 2 * 2 + 2 * 2 * 2  # encoder self-attn q,v; decoder self- and cross-attn q,v
    assert trainable == adapted * 2 * 8 * 64
    assert total == trainable + sum(p.numel() for p in tiny_whisper().parameters())
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)


@pytest.mark.integration  # slower than the unit tier allows (make test-fast)
def test_saved_adapter_is_safetensors_only_and_reloads_identically(tmp_path):
    model = add_lora(tiny_whisper(), LoraSettings(r=4), gradient_checkpointing=False)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:  # B starts at zero; make the adapter change the output
            torch.nn.init.normal_(parameter, std=0.5)
    size = save_adapter(model, tmp_path / "adapter", base_source="embedded")
    files = sorted(p.name for p in (tmp_path / "adapter").iterdir())
    assert ADAPTER_WEIGHTS in files and not any(f.endswith((".bin", ".pt")) for f in files)
    assert size == (tmp_path / "adapter" / ADAPTER_WEIGHTS).stat().st_size
    assert adapter_base_model(tmp_path / "adapter") == "embedded"
    features = torch.randn(1, 80, 3000)
    decoder_ids = torch.tensor([[50258, 50259]])
    model.eval()
    with torch.no_grad():
        expected = model(input_features=features, decoder_input_ids=decoder_ids).logits
        reloaded = attach_adapter(tiny_whisper(), tmp_path / "adapter")
        got = reloaded(input_features=features, decoder_input_ids=decoder_ids).logits
        base = tiny_whisper()(input_features=features, decoder_input_ids=decoder_ids).logits
    assert torch.allclose(expected, got, atol=1e-5)
    assert not torch.allclose(base, got, atol=1e-3)


# An adapter for another base, and a pickle-only adapter: tests/test_bad_inputs.py.


def test_missing_adapter_dir_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        adapter_base_model(tmp_path / "nowhere")


@pytest.mark.integration  # slower than the unit tier allows (make test-fast)
@pytest.mark.parametrize("precision", ["fp32", "8bit"])
@pytest.mark.parametrize("kind", ["reentrant", "non-reentrant"])
def test_every_lora_weight_gets_a_gradient_under_checkpointing(tmp_path, precision, kind):
    from helpers.model.load import load_model
    from fixtures.tiny_runs import tiny_model_dir

    model, _ = load_model(str(tiny_model_dir(tmp_path / "tiny")), precision=precision)
    model = add_lora(model, LoraSettings(r=4), checkpointing=kind).train()
    for name, parameter in model.named_parameters():
        if "lora_B" in name:  # B starts at zero, which would zero lora_A's gradient
            torch.nn.init.normal_(parameter, std=0.1)
    loss = model(input_features=torch.randn(2, 80, 3000),
                 labels=torch.tensor([[50258, 50259, 220, 50257]] * 2)).loss
    loss.backward()
    lora = [(n, p) for n, p in model.named_parameters() if "lora_" in n]
    assert lora and all(p.grad is not None and p.grad.abs().sum() > 0 for _, p in lora)


def test_auto_checkpointing_is_reentrant_alone_and_non_reentrant_under_ddp(monkeypatch):
    from helpers.model.adapters import checkpointing_kind

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert checkpointing_kind() == "reentrant"
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert checkpointing_kind() == "non-reentrant"
    assert checkpointing_kind(enabled=False) == "none"
    with pytest.raises(ValueError, match="checkpointing must be one of"):
        checkpointing_kind(requested="sometimes")
