"""helpers.ct2: model.bin reader/writer, HF <-> CTranslate2 mapping, conversion of tiny.en."""
import csv
import json
import struct
from pathlib import Path

import jiwer
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import WhisperConfig, WhisperForConditionalGeneration
from transformers.models.whisper.english_normalizer import BasicTextNormalizer

from helpers import ct2
from helpers.audio import load_audio
from helpers.models import embedded_source

CV_MINI = Path(__file__).resolve().parents[1] / "data" / "cv-mini" / "en"


def tiny_whisper(vocab_size=51864, seed=0) -> WhisperForConditionalGeneration:
    """A random-weight Whisper small enough for unit tests (d_model 64, 2+2 layers)."""
    torch.manual_seed(seed)
    config = WhisperConfig(vocab_size=vocab_size, d_model=64, encoder_layers=2, decoder_layers=2,
                           encoder_attention_heads=4, decoder_attention_heads=4,
                           encoder_ffn_dim=128, decoder_ffn_dim=128, max_source_positions=1500,
                           max_target_positions=448)
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():  # HF initialises biases to zero; make them count in the round trip
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.normal_(0, 0.1)
    return model


def small_bin(path: Path) -> Path:
    """A small valid model.bin: floats of each dtype, scalars, an int8 weight + scale, alias."""
    rng = np.random.default_rng(0)
    variables = {
        "a/weight": rng.normal(size=(3, 4)).astype(np.float32),
        "a/bias": rng.normal(size=(3,)).astype(np.float16),
        "q/weight": np.array([[127, -64], [10, 0]], np.int8),
        "q/weight_scale": np.array([127.0, 10.0], np.float32),
        "n/num_heads": np.int16(6), "n/flag": np.int8(1), "n/big": np.int32(-7),
    }
    ct2.write_model_bin(path, variables, {"b/weight": "a/weight"})
    return path


def bin_bytes(version=6, variables=(), aliases=()) -> bytes:
    """Hand-built model.bin bytes: variables are (name, shape, dtype_id, raw bytes)."""
    def string(text):
        raw = text.encode() + b"\0"
        return struct.pack("<H", len(raw)) + raw

    out = struct.pack("<I", version) + string("WhisperSpec") + struct.pack("<II", 3, len(variables))
    for name, shape, dtype_id, raw in variables:
        out += string(name) + struct.pack(f"<B{len(shape)}I", len(shape), *shape)
        out += struct.pack("<BI", dtype_id, len(raw)) + raw
    out += struct.pack("<I", len(aliases))
    for alias, target in aliases:
        out += string(alias) + string(target)
    return out


# ---------------------------------------------------------------- round trip


def test_hf_ct2_hf_round_trip_is_exact(tmp_path):
    model = tiny_whisper()
    ct2.write_model_bin(tmp_path / "model.bin", ct2.ct2_variables_from_hf(model),
                        ct2.PROJECTION_ALIAS)
    variables = ct2.read_model_bin(tmp_path / "model.bin")
    config = ct2.whisper_config_from_ct2(variables)
    for key in ("d_model", "encoder_layers", "decoder_layers", "encoder_attention_heads",
                "decoder_attention_heads", "encoder_ffn_dim", "vocab_size", "num_mel_bins",
                "max_source_positions", "max_target_positions"):
        assert getattr(config, key) == getattr(model.config, key), key
    back = ct2._model_from_state(config, ct2.hf_state_dict_from_ct2(variables, config)).eval()
    before, after = model.state_dict(), back.state_dict()
    assert before.keys() == after.keys()
    for name in before:
        assert torch.equal(before[name], after[name]), name
    assert back.proj_out.weight.data_ptr() == back.model.decoder.embed_tokens.weight.data_ptr()
    features = torch.randn(2, 80, 3000)
    decoder_ids = torch.tensor([[50257, 50362, 400, 401], [50257, 50362, 7, 8]])
    with torch.no_grad():
        assert torch.equal(model(features, decoder_input_ids=decoder_ids).logits,
                           back(features, decoder_input_ids=decoder_ids).logits)


def test_fused_layout_matches_ctranslate2(tmp_path):
    model = tiny_whisper()
    variables = ct2.ct2_variables_from_hf(model)
    attn = model.model.encoder.layers[0].self_attn
    fused = variables["encoder/layer_0/self_attention/linear_0/weight"]
    np.testing.assert_array_equal(fused[:64], attn.q_proj.weight.detach().numpy())
    np.testing.assert_array_equal(fused[64:128], attn.k_proj.weight.detach().numpy())
    bias = variables["encoder/layer_0/self_attention/linear_0/bias"]
    assert not bias[64:128].any()  # k has no bias
    kv = variables["decoder/layer_1/attention/linear_1/weight"]
    cross = model.model.decoder.layers[1].encoder_attn
    np.testing.assert_array_equal(kv[64:], cross.v_proj.weight.detach().numpy())
    assert int(variables["decoder/num_heads"]) == 4 and variables["decoder/num_heads"].dtype == np.int16


def test_writer_keeps_dtypes_and_reader_dequantizes(tmp_path):
    path = small_bin(tmp_path / "model.bin")
    raw = ct2.read_model_bin(path, dequantize=False)
    assert raw["a/bias"].dtype == np.float16 and raw["q/weight"].dtype == np.int8
    assert raw["n/num_heads"].dtype == np.int16 and raw["n/big"] == -7
    loaded = ct2.read_model_bin(path)
    np.testing.assert_allclose(loaded["q/weight"], [[1.0, -64 / 127], [1.0, 0.0]], rtol=1e-6)
    assert "q/weight_scale" not in loaded
    assert loaded["b/weight"] is loaded["a/weight"]  # alias resolved
    header = ct2.read_header(path)
    assert header.version == 6 and header.spec == "WhisperSpec" and header.revision == 3
    assert header.aliases == {"b/weight": "a/weight"}


def test_bfloat16_is_read_as_float32(tmp_path):
    values = np.array([1.0, -2.5, 3.140625], np.float32)
    bf16 = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    path = tmp_path / "model.bin"
    path.write_bytes(bin_bytes(variables=[("x", (3,), 5, bf16)]))
    np.testing.assert_array_equal(ct2.read_model_bin(path)["x"], values)


def test_parts_are_read_as_one_file(tmp_path):
    data = small_bin(tmp_path / "model.bin").read_bytes()
    cut = len(data) // 2 + 3  # inside a variable
    (tmp_path / "p1").write_bytes(data[:cut])
    (tmp_path / "p2").write_bytes(data[cut:])
    whole, split = ct2.read_model_bin(tmp_path / "model.bin"), ct2.read_model_bin(
        [tmp_path / "p1", tmp_path / "p2"])
    assert whole.keys() == split.keys()
    for name in whole:
        np.testing.assert_array_equal(whole[name], split[name])


# ---------------------------------------------------------------- corrupt files


def test_truncations_name_file_offset_and_expectation(tmp_path):
    data = small_bin(tmp_path / "model.bin").read_bytes()
    for cut in (0, 2, 4, 7, 30, len(data) // 2, len(data) - 5, len(data) - 1):
        bad = tmp_path / f"cut{cut}.bin"
        bad.write_bytes(data[:cut])
        with pytest.raises(ct2.Ct2FormatError) as err:
            ct2.read_model_bin(bad)
        message = str(err.value)
        assert str(bad) in message and "offset" in message and "expected" in message


def test_trailing_garbage_and_wrong_versions_are_rejected(tmp_path):
    data = small_bin(tmp_path / "model.bin").read_bytes()
    (tmp_path / "trail.bin").write_bytes(data + b"\0")
    with pytest.raises(ct2.Ct2FormatError, match="trailing"):
        ct2.read_header(tmp_path / "trail.bin")
    for version in (1, 3, 7):
        (tmp_path / "v.bin").write_bytes(bin_bytes(version=version))
        with pytest.raises(ct2.Ct2FormatError, match=f"got {version}"):
            ct2.read_header(tmp_path / "v.bin")
    (tmp_path / "v5.bin").write_bytes(bin_bytes(version=5, variables=[("x", (), 1, b"\x01")]))
    assert ct2.read_model_bin(tmp_path / "v5.bin")["x"] == 1


@pytest.mark.parametrize("variables,aliases,match", [
    ([("x", (2,), 9, b"\0\0")], (), "dtype id"),
    ([("x", (2,), 0, b"\0" * 4)], (), "8 bytes"),  # byte count disagrees with shape
    ([("x", (), 1, b"\1"), ("x", (), 1, b"\1")], (), "repeats"),
    ([("x", (), 1, b"\1")], [("y", "nope")], "alias"),
])
def test_inconsistent_headers_are_rejected(tmp_path, variables, aliases, match):
    path = tmp_path / "model.bin"
    path.write_bytes(bin_bytes(variables=variables, aliases=aliases))
    with pytest.raises(ct2.Ct2FormatError, match=match):
        ct2.read_model_bin(path)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.bin"):
        ct2.read_header(tmp_path / "nothing.bin")


VALID = bin_bytes(variables=[("enc/w", (2, 3), 0, np.arange(6, dtype="<f4").tobytes()),
                             ("enc/n", (), 2, b"\x06\x00"), ("b", (2,), 4, b"\0" * 4)],
                  aliases=[("dec/w", "enc/w")])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=len(VALID) - 1))
def test_any_truncation_raises_only_format_error(tmp_path, cut):
    path = tmp_path / "t.bin"
    path.write_bytes(VALID[:cut])
    with pytest.raises(ct2.Ct2FormatError):
        ct2.read_model_bin(path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300))
def test_random_bytes_raise_only_format_error(tmp_path, data):
    path = tmp_path / "r.bin"
    path.write_bytes(data)
    with pytest.raises(ct2.Ct2FormatError):
        ct2.read_model_bin(path)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pos=st.integers(min_value=0, max_value=len(VALID) - 1), byte=st.integers(0, 255))
def test_corrupted_byte_parses_or_raises_format_error(tmp_path, pos, byte):
    data = bytearray(VALID)
    data[pos] = byte
    path = tmp_path / "c.bin"
    path.write_bytes(bytes(data))
    try:
        ct2.read_model_bin(path)
    except ct2.Ct2FormatError:
        pass


def test_unknown_ct2_variables_are_not_dropped_silently():
    variables = ct2.ct2_variables_from_hf(tiny_whisper())
    variables["decoder/layer_0/extra/weight"] = np.zeros((2, 2), np.float32)
    config = ct2.whisper_config_from_ct2(variables)
    with pytest.raises(ct2.Ct2FormatError, match="extra"):
        ct2.hf_state_dict_from_ct2(variables, config)
    variables = ct2.ct2_variables_from_hf(tiny_whisper())
    variables["decoder/activation"] = np.int8(1)
    with pytest.raises(ct2.Ct2FormatError, match="activation"):
        ct2.whisper_config_from_ct2(variables)


# ---------------------------------------------------------------- the embedded tiny.en


@pytest.fixture(scope="module")
def tiny_en_dir(tmp_path_factory):
    """The embedded tiny.en converted to a Hugging Face directory (about 3 s)."""
    src = embedded_source("embedded")
    return ct2.convert_ct2_dir(src.data_dir, tmp_path_factory.mktemp("tiny_en"))


def cv_test_rows(n: int) -> list:
    """First n rows of data/cv-mini/en/test.tsv (the Common Voice-format mini corpus)."""
    tsv = CV_MINI / "test.tsv"
    assert tsv.is_file(), f"{tsv} is missing: build it with scripts/make_cv_mini.py"
    with open(tsv, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[:n]
    assert len(rows) == n, f"{tsv} has fewer than {n} rows"
    return rows


def transcribe(model, processor, rows) -> list:
    """Greedy transcripts of cv-mini rows."""
    audio = [load_audio(CV_MINI / "clips" / r["path"]) for r in rows]
    features = processor(audio, sampling_rate=16_000, return_tensors="pt").input_features
    with torch.no_grad():
        ids = model.generate(features.to(model.device, model.dtype), max_new_tokens=120)
    return processor.batch_decode(ids, skip_special_tokens=True)


def normalized_wer(rows, hypotheses) -> float:
    """Corpus WER after Whisper's basic normalizer."""
    norm = BasicTextNormalizer()
    return jiwer.wer([norm(r["sentence"]) for r in rows], [norm(h) for h in hypotheses])


def test_embedded_tiny_en_converts_to_the_expected_files(tiny_en_dir):
    names = {p.name for p in tiny_en_dir.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json",
            "processor_config.json"} <= names and not any(n.endswith(".bin") for n in names)
    config = json.loads((tiny_en_dir / "config.json").read_text())
    assert (config["d_model"], config["encoder_layers"], config["decoder_layers"],
            config["encoder_attention_heads"], config["vocab_size"]) == (384, 4, 4, 6, 51864)
    gen = json.loads((tiny_en_dir / "generation_config.json").read_text())
    ct2_config = json.loads((embedded_source("embedded").data_dir / "config.json").read_text())
    assert gen["decoder_start_token_id"] == 50257 and gen["eos_token_id"] == 50256
    assert gen["pad_token_id"] == 50256 and gen["no_timestamps_token_id"] == 50362
    assert gen["suppress_tokens"] == ct2_config["suppress_ids"]
    assert gen["begin_suppress_tokens"] == [220, 50256] and gen["max_length"] == 448
    assert gen["alignment_heads"] == ct2_config["alignment_heads"]
    assert gen["is_multilingual"] is False and "lang_to_id" not in gen


def test_embedded_tiny_en_transcribes_common_voice(tiny_en_dir):
    from transformers import WhisperProcessor

    model = WhisperForConditionalGeneration.from_pretrained(
        tiny_en_dir, use_safetensors=True, dtype=torch.float32).eval()
    processor = WhisperProcessor.from_pretrained(tiny_en_dir)
    rows = cv_test_rows(5)
    hypotheses = transcribe(model, processor, rows)
    wer = normalized_wer(rows, hypotheses)
    assert wer < 0.6, list(zip([r["sentence"] for r in rows], hypotheses))
