"""helpers.model.ct2: model.bin reader/writer, HF <-> CTranslate2 mapping, conversion of tiny.en."""
import json
import math
import struct
from pathlib import Path

import jiwer
import numpy as np
import pytest
from fixtures.data_files import cv_mini_test_rows
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import WhisperConfig, WhisperForConditionalGeneration
from transformers.models.whisper.english_normalizer import BasicTextNormalizer

from helpers.model import ct2
from helpers.audio import load_audio
from helpers.model.load import embedded_source

pytestmark = pytest.mark.unit

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
        # The same weights (equal above) through the same forward, but the read-back
        # tensors may be laid out differently in memory, and BLAS may round them otherwise.
        torch.testing.assert_close(back(features, decoder_input_ids=decoder_ids).logits,
                                   model(features, decoder_input_ids=decoder_ids).logits,
                                   rtol=1e-5, atol=1e-5)


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


@pytest.mark.integration  # slower than the unit tier allows (make test-fast)
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


@pytest.mark.integration  # slower than the unit tier allows (make test-fast)
def test_embedded_tiny_en_transcribes_common_voice(tiny_en_dir):
    from transformers import WhisperProcessor

    model = WhisperForConditionalGeneration.from_pretrained(
        tiny_en_dir, use_safetensors=True, dtype=torch.float32).eval()
    processor = WhisperProcessor.from_pretrained(tiny_en_dir)
    rows = cv_mini_test_rows(5)
    hypotheses = transcribe(model, processor, rows)
    wer = normalized_wer(rows, hypotheses)
    assert wer < 0.6, list(zip([r["sentence"] for r in rows], hypotheses))


# ---------------------------------------------------------------- structured fuzzing


def bin_with_fields(variables, aliases=()) -> tuple[bytes, list]:
    """Like bin_bytes, also returning (offset, size, kind) of every header field.

    kind is one of version, spec_len, count, name_len, rank, dim, dtype, nbytes, alias_count.
    """
    out, fields = bytearray(), []

    def put(raw, kind=None):
        if kind:
            fields.append((len(out), len(raw), kind))
        out.extend(raw)

    def string(text, kind):
        raw = text.encode() + b"\0"
        put(struct.pack("<H", len(raw)), kind)
        put(raw)

    put(struct.pack("<I", 6), "version")
    string("WhisperSpec", "spec_len")
    put(struct.pack("<I", 3))
    put(struct.pack("<I", len(variables)), "count")
    for name, shape, dtype_id, raw in variables:
        string(name, "name_len")
        put(struct.pack("<B", len(shape)), "rank")
        for dim in shape:
            put(struct.pack("<I", dim), "dim")
        put(struct.pack("<B", dtype_id), "dtype")
        put(struct.pack("<I", len(raw)), "nbytes")
        put(raw)
    put(struct.pack("<I", len(aliases)), "alias_count")
    for alias, target in aliases:
        string(alias, "name_len")
        string(target, "name_len")
    return bytes(out), fields


DTYPE_SIZES = {0: 4, 1: 1, 2: 2, 3: 4, 4: 2, 5: 2}
variable_strategy = st.tuples(
    st.text(alphabet="abcdefgh/_0123456789", min_size=1, max_size=12),
    st.lists(st.integers(0, 4), max_size=3).map(tuple),
    st.sampled_from(sorted(DTYPE_SIZES)))


def build(specs, with_scale=False):
    """Valid model.bin bytes + fields from (name, shape, dtype id) specs (names made unique)."""
    variables = []
    for k, (name, shape, dtype_id) in enumerate(specs):
        size = math.prod(shape) * DTYPE_SIZES[dtype_id]
        variables.append((f"{k}/{name}", shape, dtype_id, np.random.default_rng(k).bytes(size)))
    if with_scale:
        variables += [("q", (2, 3), 1, b"\x01" * 6), ("q_scale", (2,), 0, b"\0\0\x80\x3f" * 2)]
    aliases = [("alias/0", variables[0][0])] if variables else []
    return bin_with_fields(variables, aliases)


FIELD_KINDS = ("version", "spec_len", "count", "name_len", "rank", "dim", "dtype", "nbytes",
               "alias_count")


def read_or_format_error(path) -> dict | None:
    """read_model_bin(path), or None when it raises Ct2FormatError (anything else fails)."""
    try:
        return ct2.read_model_bin(path)
    except ct2.Ct2FormatError as err:
        assert str(path) in str(err)
        return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=st.lists(variable_strategy, min_size=1, max_size=4), with_scale=st.booleans(),
       kind=st.sampled_from(FIELD_KINDS), pick=st.integers(0, 10**6), bit=st.integers(0, 31))
def test_flipped_header_bits_raise_only_format_error(tmp_path, specs, with_scale, kind, pick, bit):
    """A bit flipped in a length, count, rank, dim, dtype or byte count: the reader parses
    (when the file is still consistent) or raises Ct2FormatError, and never holds more
    array bytes than the file has."""
    data, fields = build(specs, with_scale)
    candidates = [f for f in fields if f[2] == kind]
    if not candidates:
        return
    offset, size, _ = candidates[pick % len(candidates)]
    flipped = bytearray(data)
    value = int.from_bytes(flipped[offset:offset + size], "little") ^ (1 << (bit % (8 * size)))
    flipped[offset:offset + size] = value.to_bytes(size, "little")
    path = tmp_path / "flip.bin"
    path.write_bytes(bytes(flipped))
    arrays = read_or_format_error(path)
    if arrays is not None:
        unique = {id(a): a for a in arrays.values()}.values()
        assert sum(a.nbytes for a in unique) <= 4 * len(flipped)  # int8/16 dequantize to fp32


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=st.lists(variable_strategy, min_size=1, max_size=3), cut=st.floats(0, 1),
       tail=st.binary(max_size=64))
def test_cut_or_padded_files_raise_only_format_error(tmp_path, specs, cut, tail):
    """A valid file cut anywhere, or with bytes appended, is a Ct2FormatError."""
    data, _ = build(specs)
    path = tmp_path / "cut.bin"
    path.write_bytes(data[:int(cut * (len(data) - 1))] if not tail else data + tail)
    assert read_or_format_error(path) is None


@pytest.mark.parametrize("variables", [
    [("big", (32768, 32768), 1, b"")],  # 1 GiB of int8 declared, none present
    [("big", (65535, 65535), 0, b"")],  # 16 GiB: more than a u32 byte count can say
    [("big", (1 << 31, 2), 0, b"")],
])
def test_huge_declared_sizes_allocate_nothing(tmp_path, variables):
    import tracemalloc

    name, shape, dtype_id, _ = variables[0]
    nbytes = min(math.prod(shape) * DTYPE_SIZES[dtype_id], 0xFFFFFFFF)
    raw = bin_bytes(variables=[])[:-8] + struct.pack("<I", 1)  # one variable follows
    raw += struct.pack("<H", len(name) + 1) + name.encode() + b"\0"
    raw += struct.pack(f"<B{len(shape)}I", len(shape), *shape) + struct.pack("<BI", dtype_id, nbytes)
    path = tmp_path / "huge.bin"
    path.write_bytes(raw + b"\0" * 100)
    tracemalloc.start()
    with pytest.raises(ct2.Ct2FormatError, match="'big'"):
        ct2.read_model_bin(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1 << 20, peak


def test_huge_counts_fail_fast(tmp_path):
    import time

    for raw in (bin_bytes()[:-8] + struct.pack("<I", 0xFFFFFFFF),   # 4 billion variables
                bin_bytes()[:-4] + struct.pack("<I", 0xFFFFFFFF)):  # 4 billion aliases
        path = tmp_path / "count.bin"
        path.write_bytes(raw)
        started = time.perf_counter()
        with pytest.raises(ct2.Ct2FormatError):
            ct2.read_model_bin(path)
        assert time.perf_counter() - started < 1


def test_rank_and_scale_shapes_are_checked(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(bin_bytes(variables=[("deep", (1,) * 100, 1, b"\1")]))  # numpy: <= 64 dims
    with pytest.raises(ct2.Ct2FormatError, match="rank of 'deep' at most 8"):
        ct2.read_model_bin(path)
    path.write_bytes(bin_bytes(variables=[("q", (2, 3), 1, b"\1" * 6),
                                          ("q_scale", (3,), 0, b"\0" * 12)]))
    with pytest.raises(ct2.Ct2FormatError, match=r"q_scale has shape \[3\].*q \[2, 3\]"):
        ct2.read_model_bin(path)
    assert ct2.read_model_bin(path, dequantize=False)["q_scale"].shape == (3,)


def test_wrong_shapes_in_a_parseable_file_are_format_errors():
    variables = ct2.ct2_variables_from_hf(tiny_whisper())
    for name, value, match in (
            ("decoder/embeddings/weight", np.zeros(8, np.float32), r"shape \[8\], Whisper needs 2"),
            ("encoder/num_heads", np.array([4, 4], np.int16), "num_heads' should be one number"),
            ("encoder/num_heads", np.int16(5), "do not divide d_model 64"),
            ("decoder/activation", np.zeros((2, 2), np.int8), "activation' should be one number")):
        with pytest.raises(ct2.Ct2FormatError, match=match):
            ct2.whisper_config_from_ct2({**variables, name: value})
    variables["encoder/layer_0/self_attention/layer_norm/gamma"] = np.zeros(3, np.float32)
    config = ct2.whisper_config_from_ct2(variables)
    with pytest.raises(ct2.Ct2FormatError, match="do not fit a Whisper model"):
        ct2._model_from_state(config, ct2.hf_state_dict_from_ct2(variables, config))


def test_failed_write_keeps_the_old_model_bin(tmp_path):
    path = small_bin(tmp_path / "model.bin")
    before = path.read_bytes()
    with pytest.raises(TypeError, match="complex"):
        ct2.write_model_bin(path, {"a": np.ones(3, np.float32), "z": np.ones(2, np.complex64)})
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["model.bin"]
