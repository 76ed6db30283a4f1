"""CTranslate2 `model.bin` reader/writer and conversion to/from Hugging Face Whisper.

Layout (binary versions 4-6 share it; all little-endian; see CTranslate2 `model.cc`):
u32 version; str spec name; u32 spec revision; u32 variable count; per variable: str name,
u8 rank, rank x u32 dims, u8 dtype, u32 byte count, raw bytes; u32 alias count and
(alias, target) str pairs. A str is a u16 length (including a trailing NUL), then the
bytes and the NUL.
"""
from __future__ import annotations

import math
import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from helpers.files import atomic_file

SUPPORTED_VERSIONS = (4, 5, 6)  # versions whose reading layout is identical
MAX_RANK = 8  # CTranslate2 stores at most 3-D tensors; numpy cannot hold more than 64 dims
WRITE_VERSION = 6
DTYPES = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16", 5: "bfloat16"}
DTYPE_IDS = {np.dtype(v): k for k, v in DTYPES.items() if v != "bfloat16"}


class Ct2FormatError(ValueError):
    """A CTranslate2 model.bin that is truncated, corrupt or of an unsupported layout."""


@dataclass
class Ct2Variable:
    """Header of one stored variable: shape, dtype name, and byte range in the file."""

    shape: tuple
    dtype: str
    offset: int
    nbytes: int


@dataclass
class Ct2Header:
    """Everything in a model.bin except the raw tensor bytes."""

    version: int
    spec: str
    revision: int
    variables: dict = field(default_factory=dict)  # name -> Ct2Variable
    aliases: dict = field(default_factory=dict)  # alias -> target name


class _Reader:
    """Bounds-checked sequential reader over one or more byte buffers (file parts)."""

    def __init__(self, buffers, label):
        self.buffers = list(buffers)
        self.starts = np.cumsum([0] + [len(b) for b in self.buffers]).tolist()
        self.size = self.starts[-1]
        self.label = label
        self.pos = 0

    def fail(self, what, offset=None):
        """Raise Ct2FormatError naming the file, the offset and what was expected."""
        offset = self.pos if offset is None else offset
        raise Ct2FormatError(
            f"{self.label}: at byte offset {offset} expected {what} "
            f"(file is {self.size} bytes); the file is truncated or not a CTranslate2 "
            "model.bin -- re-download or re-export it")

    def take(self, n, what):
        """Return the next n bytes (memoryview when they lie in one part)."""
        if n < 0 or self.pos + n > self.size:
            self.fail(f"{what} ({n} bytes, only {self.size - self.pos} left)")
        start, self.pos = self.pos, self.pos + n
        return self.view(start, n)

    def view(self, start, n):
        """Bytes [start, start+n) across parts, zero-copy where possible."""
        if n == 0:
            return memoryview(b"")
        i = int(np.searchsorted(self.starts, start, side="right")) - 1
        local = start - self.starts[i]
        if local + n <= len(self.buffers[i]):
            return memoryview(self.buffers[i])[local:local + n]
        out, j = bytearray(), i
        while len(out) < n:
            chunk = memoryview(self.buffers[j])[local:local + n - len(out)]
            out += chunk
            j, local = j + 1, 0
        return memoryview(bytes(out))

    def unpack(self, fmt, what):
        """Read one struct value (format like '<I')."""
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))[0]

    def string(self, what):
        """Read a u16-length, NUL-terminated UTF-8 string."""
        start = self.pos
        length = self.unpack("<H", f"length of {what}")
        if length == 0:
            self.fail(f"a non-empty {what} (length 0)", start)
        raw = bytes(self.take(length, what))
        if raw[-1] != 0 or 0 in raw[:-1]:
            self.fail(f"{what} ending in a single NUL byte", start)
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError:
            self.fail(f"{what} as UTF-8 text", start)


def _read_variable_header(r: _Reader, index: int):
    """Read one variable header and skip its bytes; return (name, Ct2Variable)."""
    name = r.string(f"name of variable #{index}")
    at = r.pos
    rank = r.unpack("<B", f"rank of {name!r}")
    if rank > MAX_RANK:
        r.fail(f"rank of {name!r} at most {MAX_RANK} (got {rank})", at)
    shape = tuple(r.unpack("<I", f"dim {k} of {name!r}") for k in range(rank))
    at = r.pos
    dtype_id = r.unpack("<B", f"dtype id of {name!r}")
    if dtype_id not in DTYPES:
        r.fail(f"dtype id of {name!r} in {sorted(DTYPES)} (got {dtype_id})", at)
    dtype = DTYPES[dtype_id]
    itemsize = 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
    at = r.pos
    nbytes = r.unpack("<I", f"byte count of {name!r}")
    expected = math.prod(shape) * itemsize
    if nbytes != expected:
        r.fail(f"{expected} bytes for {name!r} {dtype}{list(shape)} (header says {nbytes})", at)
    offset = r.pos
    r.take(nbytes, f"data of {name!r}")
    return name, Ct2Variable(shape, dtype, offset, nbytes)


def _parse(r: _Reader) -> Ct2Header:
    """Parse a whole model.bin through reader r (data bytes are skipped, not copied)."""
    version = r.unpack("<I", "binary version (u32)")
    if version not in SUPPORTED_VERSIONS:
        r.fail(f"binary version in {SUPPORTED_VERSIONS} (got {version}; other versions "
               "have a different layout -- re-export with CTranslate2 >= 3)", 0)
    spec = r.string("spec name")
    revision = r.unpack("<I", "spec revision (u32)")
    header = Ct2Header(version, spec, revision)
    for i in range(r.unpack("<I", "variable count (u32)")):
        name, var = _read_variable_header(r, i)
        if name in header.variables:
            r.fail(f"unique variable names ({name!r} repeats)")
        header.variables[name] = var
    for i in range(r.unpack("<I", "alias count (u32)")):
        alias = r.string(f"alias #{i}")
        target = r.string(f"target of alias {alias!r}")
        if target not in header.variables:
            r.fail(f"alias {alias!r} to point at a stored variable (target {target!r})")
        header.aliases[alias] = target
    if r.pos != r.size:
        r.fail(f"end of file after the aliases ({r.size - r.pos} trailing bytes)")
    return header


def _open_parts(paths):
    """Map each part file read-only; return (buffers, label). Empty files map to b''."""
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    buffers = []
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"CTranslate2 model file not found: {p}")
        with open(p, "rb") as f:
            size = p.stat().st_size
            buffers.append(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b"")
    return buffers, " + ".join(str(p) for p in paths)


def read_header(paths) -> Ct2Header:
    """Parse the model.bin at `paths` (a path, or a list of parts to concatenate).

    Returns a Ct2Header (names, shapes, dtypes, aliases) without loading the tensors.
    Raises Ct2FormatError on any truncation or inconsistency.
    """
    buffers, label = _open_parts(paths)
    return _parse(_Reader(buffers, label))


def _to_array(raw, var: Ct2Variable) -> np.ndarray:
    """Copy raw bytes into a numpy array; bfloat16 becomes float32."""
    if var.dtype == "bfloat16":
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(var.shape)
    return np.frombuffer(raw, dtype=np.dtype(var.dtype).newbyteorder("<")).reshape(
        var.shape).astype(var.dtype)


def _dequantize(arrays: dict) -> dict:
    """Replace every int8/int16 `<name>` that has a `<name>_scale` by float32 weight/scale."""
    out = dict(arrays)
    for name, scale in arrays.items():
        base = name[: -len("_scale")]
        if not name.endswith("_scale") or base not in arrays:
            continue
        q = arrays[base]
        if q.dtype not in (np.int8, np.int16):
            continue
        if scale.ndim > q.ndim or q.shape[:scale.ndim] != scale.shape:
            raise Ct2FormatError(f"{name} has shape {list(scale.shape)}, which does not fit "
                                 f"{base} {list(q.shape)}: the model.bin is corrupt")
        s = scale.astype(np.float32)
        s = s.reshape(s.shape + (1,) * (q.ndim - s.ndim))
        out[base] = q.astype(np.float32) / s
        del out[name]
    return out


def read_model_bin(paths, dequantize=True) -> dict:
    """Load a CTranslate2 model.bin (path or list of parts) into {name: np.ndarray}.

    Aliases appear as extra names pointing at the same arrays. int8/int16 weights with a
    `<name>_scale` variable are dequantized to float32 when `dequantize` is true.
    """
    buffers, label = _open_parts(paths)
    reader = _Reader(buffers, label)
    header = _parse(reader)
    arrays = {n: _to_array(reader.view(v.offset, v.nbytes), v)
              for n, v in header.variables.items()}
    if dequantize:
        arrays = _dequantize(arrays)
    for alias, target in header.aliases.items():
        arrays[alias] = arrays[target]
        if target + "_scale" in arrays:
            arrays[alias + "_scale"] = arrays[target + "_scale"]
    return arrays


# ---------------------------------------------------------------- writer


def _write_string(f, text: str):
    """Write a u16-length (incl. NUL), NUL-terminated UTF-8 string."""
    raw = text.encode("utf-8") + b"\0"
    if len(raw) > 0xFFFF:
        raise ValueError(f"name too long for model.bin ({len(raw)} bytes): {text[:60]}...")
    f.write(struct.pack("<H", len(raw)) + raw)


def _write_variable(f, name: str, array: np.ndarray):
    """Write one variable record (header + raw little-endian bytes)."""
    array = np.asarray(array)
    if array.dtype not in DTYPE_IDS:
        raise TypeError(f"{name}: dtype {array.dtype} cannot be stored in model.bin; "
                        f"use one of {sorted(str(d) for d in DTYPE_IDS)}")
    _write_string(f, name)
    f.write(struct.pack("<B", array.ndim))
    f.write(struct.pack(f"<{array.ndim}I", *array.shape))
    data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    f.write(struct.pack("<BI", DTYPE_IDS[array.dtype], len(data)))
    f.write(data)


def write_model_bin(path, variables: dict, aliases: dict | None = None,
                    spec="WhisperSpec", revision=3):
    """Write {name: array} and {alias: target} to `path` as a version-6 model.bin.

    Arrays keep their dtype (float32/float16/int8/int16/int32). The file is written to a
    temporary name and renamed, so a crash never leaves a half-written model.bin.
    """
    aliases = dict(aliases or {})
    missing = [t for t in aliases.values() if t not in variables]
    if missing:
        raise KeyError(f"aliases point at variables that are not written: {missing}")
    path = Path(path)
    with atomic_file(path, "wb") as f:  # a failed write leaves the old model.bin, no temp file
        f.write(struct.pack("<I", WRITE_VERSION))
        _write_string(f, spec)
        f.write(struct.pack("<II", revision, len(variables)))
        for name in sorted(variables):
            _write_variable(f, name, variables[name])
        f.write(struct.pack("<I", len(aliases)))
        for alias, target in aliases.items():
            _write_string(f, alias)
            _write_string(f, target)


# ---------------------------------------------------------------- Whisper name mapping

GELU = 3  # CTranslate2 ActivationType::GELU, what Whisper uses
PROJECTION_ALIAS = {"decoder/projection/weight": "decoder/embeddings/weight"}


def _layer_norm(ct2_prefix, hf_prefix):
    """(ct2 name, hf name) pairs of one layer norm."""
    return [(f"{ct2_prefix}/gamma", f"{hf_prefix}.weight"), (f"{ct2_prefix}/beta", f"{hf_prefix}.bias")]


def _linear(ct2_prefix, hf_prefix):
    """(ct2 name, hf name) pairs of one linear layer with bias."""
    return [(f"{ct2_prefix}/weight", f"{hf_prefix}.weight"), (f"{ct2_prefix}/bias", f"{hf_prefix}.bias")]


def _layer_pairs(side: str, i: int) -> list:
    """1:1 (ct2, hf) name pairs of layer i of "encoder" or "decoder" (fused qkv excluded)."""
    c, h = f"{side}/layer_{i}", f"model.{side}.layers.{i}"
    pairs = (_layer_norm(f"{c}/self_attention/layer_norm", f"{h}.self_attn_layer_norm")
             + _linear(f"{c}/self_attention/linear_1", f"{h}.self_attn.out_proj")
             + _layer_norm(f"{c}/ffn/layer_norm", f"{h}.final_layer_norm")
             + _linear(f"{c}/ffn/linear_0", f"{h}.fc1") + _linear(f"{c}/ffn/linear_1", f"{h}.fc2"))
    if side == "decoder":
        pairs += (_layer_norm(f"{c}/attention/layer_norm", f"{h}.encoder_attn_layer_norm")
                  + _linear(f"{c}/attention/linear_0", f"{h}.encoder_attn.q_proj")
                  + _linear(f"{c}/attention/linear_2", f"{h}.encoder_attn.out_proj"))
    return pairs


def _fused_attention(side: str, i: int) -> list:
    """(ct2 prefix, hf attention prefix, fused projections) for the fused linears of layer i."""
    c, h = f"{side}/layer_{i}", f"model.{side}.layers.{i}"
    fused = [(f"{c}/self_attention/linear_0", f"{h}.self_attn", ("q", "k", "v"))]
    if side == "decoder":
        fused.append((f"{c}/attention/linear_1", f"{h}.encoder_attn", ("k", "v")))
    return fused


def _global_pairs() -> list:
    """1:1 (ct2, hf) pairs outside the layers."""
    return ([("encoder/conv1/weight", "model.encoder.conv1.weight"),
             ("encoder/conv1/bias", "model.encoder.conv1.bias"),
             ("encoder/conv2/weight", "model.encoder.conv2.weight"),
             ("encoder/conv2/bias", "model.encoder.conv2.bias"),
             ("encoder/position_encodings/encodings", "model.encoder.embed_positions.weight"),
             ("decoder/position_encodings/encodings", "model.decoder.embed_positions.weight"),
             ("decoder/embeddings/weight", "model.decoder.embed_tokens.weight")]
            + _layer_norm("encoder/layer_norm", "model.encoder.layer_norm")
            + _layer_norm("decoder/layer_norm", "model.decoder.layer_norm"))


def _count_layers(variables: dict, side: str) -> int:
    """Number of `<side>/layer_N/` blocks; they must be numbered 0..N-1."""
    found = {int(n.split("/")[1][len("layer_"):]) for n in variables
             if n.startswith(f"{side}/layer_") and n.split("/")[1][len("layer_"):].isdigit()}
    if found != set(range(len(found))) or not found:
        raise Ct2FormatError(f"{side} layers must be numbered 0..N-1, found {sorted(found)}")
    return len(found)


def _require(variables: dict, name: str, rank: int | None = None) -> np.ndarray:
    """variables[name] or a Ct2FormatError saying it is missing (or not of `rank` dims)."""
    if name not in variables:
        raise Ct2FormatError(f"variable {name!r} is missing: not a CTranslate2 Whisper model")
    value = variables[name]
    if rank is not None and np.ndim(value) != rank:
        raise Ct2FormatError(f"variable {name!r} has shape {list(np.shape(value))}, Whisper "
                             f"needs {rank} dimension(s): the model.bin is corrupt")
    return value


def _scalar(variables: dict, name: str) -> int:
    """The integer scalar variable `name` (Ct2FormatError if missing or not a scalar)."""
    value = _require(variables, name)
    if np.size(value) != 1 or not np.isfinite(value).all():
        raise Ct2FormatError(f"variable {name!r} should be one number, got shape "
                             f"{list(np.shape(value))}: the model.bin is corrupt")
    return int(np.asarray(value).reshape(()))


def _check_whisper_flags(variables: dict):
    """Refuse CTranslate2 decoder options that HF Whisper cannot express."""
    expected = {"decoder/activation": GELU, "decoder/pre_norm": 1, "decoder/alibi": 0,
                "decoder/scale_embeddings": 0, "decoder/start_from_zero_embedding": 0}
    for name, want in expected.items():
        if name in variables and _scalar(variables, name) != want:
            raise Ct2FormatError(f"{name} is {_scalar(variables, name)}, Whisper needs {want}")


def _special_ids(vocab_size: int) -> dict:
    """Default special token ids by vocabulary size (English-only vocab is 51864)."""
    eot = 50256 if vocab_size == 51864 else 50257
    return {"eos": eot, "pad": eot, "decoder_start": eot + 1, "bos": 50257}


def whisper_config_from_ct2(variables: dict, special_ids: dict | None = None):
    """WhisperConfig inferred from the variable shapes and the num_heads scalars.

    special_ids (keys eos, pad, decoder_start, bos) default to Whisper's ids for the
    vocabulary size. Returns transformers.WhisperConfig.
    """
    from transformers import WhisperConfig

    _check_whisper_flags(variables)
    embed = _require(variables, "decoder/embeddings/weight", 2)
    conv1 = _require(variables, "encoder/conv1/weight", 3)
    ids = {**_special_ids(embed.shape[0]), **(special_ids or {})}
    heads = {side: _scalar(variables, f"{side}/num_heads") for side in ("encoder", "decoder")}
    if min(heads.values()) < 1 or any(embed.shape[1] % n for n in heads.values()):
        raise Ct2FormatError(f"num_heads {heads} do not divide d_model {embed.shape[1]}: "
                             "the model.bin is corrupt")
    return WhisperConfig(
        vocab_size=int(embed.shape[0]), d_model=int(embed.shape[1]),
        num_mel_bins=int(conv1.shape[1]),
        encoder_layers=_count_layers(variables, "encoder"),
        decoder_layers=_count_layers(variables, "decoder"),
        encoder_attention_heads=heads["encoder"], decoder_attention_heads=heads["decoder"],
        encoder_ffn_dim=int(_require(variables, "encoder/layer_0/ffn/linear_0/weight", 2).shape[0]),
        decoder_ffn_dim=int(_require(variables, "decoder/layer_0/ffn/linear_0/weight", 2).shape[0]),
        max_source_positions=int(_require(variables, "encoder/position_encodings/encodings", 2).shape[0]),
        max_target_positions=int(_require(variables, "decoder/position_encodings/encodings", 2).shape[0]),
        eos_token_id=ids["eos"], pad_token_id=ids["pad"], bos_token_id=ids["bos"],
        decoder_start_token_id=ids["decoder_start"], tie_word_embeddings=True)


def _split_fused(variables, ct2_prefix, hf_prefix, parts, d_model) -> dict:
    """HF q/k/v tensors from one fused CTranslate2 linear (k has no bias in HF)."""
    w = _require(variables, f"{ct2_prefix}/weight")
    b = _require(variables, f"{ct2_prefix}/bias")
    if w.shape != (d_model * len(parts), d_model) or b.shape != (d_model * len(parts),):
        raise Ct2FormatError(f"{ct2_prefix}: expected weight {(d_model * len(parts), d_model)} "
                             f"and bias {(d_model * len(parts),)}, got {w.shape} and {b.shape}")
    out = {}
    for k, part in enumerate(parts):
        rows = slice(k * d_model, (k + 1) * d_model)
        out[f"{hf_prefix}.{part}_proj.weight"] = w[rows]
        if part != "k":  # the k bias cancels in softmax; CTranslate2 stores zeros
            out[f"{hf_prefix}.{part}_proj.bias"] = b[rows]
    return out


def _all_pairs(config) -> list:
    """Every 1:1 (ct2, hf) pair for a model of this WhisperConfig."""
    pairs = _global_pairs()
    for side, n in (("encoder", config.encoder_layers), ("decoder", config.decoder_layers)):
        for i in range(n):
            pairs += _layer_pairs(side, i)
    return pairs


def _all_fused(config) -> list:
    """Every fused-attention triple for a model of this WhisperConfig."""
    return [f for side, n in (("encoder", config.encoder_layers), ("decoder", config.decoder_layers))
            for i in range(n) for f in _fused_attention(side, i)]


def hf_state_dict_from_ct2(variables: dict, config) -> dict:
    """Map CTranslate2 Whisper variables to a WhisperForConditionalGeneration state dict.

    variables: {name: np.ndarray} from read_model_bin; config: WhisperConfig (e.g. from
    whisper_config_from_ct2). Returns {hf name: float32 torch.Tensor}; proj_out.weight is
    tied to the token embeddings. Unused non-scalar variables raise Ct2FormatError.
    """
    import torch

    arrays = {hf: _require(variables, c) for c, hf in _all_pairs(config)}
    for prefix, hf_prefix, parts in _all_fused(config):
        arrays.update(_split_fused(variables, prefix, hf_prefix, parts, config.d_model))
    used = {c for c, _ in _all_pairs(config)} | {f"{p}/{s}" for p, _, _ in _all_fused(config)
                                                  for s in ("weight", "bias")}
    unused = [n for n, v in variables.items()
              if n not in used and np.ndim(v) > 0 and n not in PROJECTION_ALIAS]
    if unused:
        raise Ct2FormatError(f"CTranslate2 variables with no Whisper counterpart: {unused[:8]}")
    state = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in arrays.items()}
    state["proj_out.weight"] = state["model.decoder.embed_tokens.weight"]
    return state


def ct2_variables_from_hf(model, dtype=None) -> dict:
    """CTranslate2 Whisper variables ({name: np.ndarray}) from a WhisperForConditionalGeneration.

    Floats are stored as `dtype` (numpy dtype; default: the model's). Write them with
    write_model_bin(path, variables, PROJECTION_ALIAS).
    """
    config, sd = model.config, {k: v.detach().cpu() for k, v in model.state_dict().items()}
    dtype = np.dtype(dtype or str(next(iter(sd.values())).dtype).replace("torch.", ""))

    def arr(name):
        return sd[name].float().numpy().astype(dtype)

    out = {c: arr(hf) for c, hf in _all_pairs(config)}
    for prefix, hf_prefix, parts in _all_fused(config):
        ws = [arr(f"{hf_prefix}.{p}_proj.weight") for p in parts]
        bs = [np.zeros(config.d_model, dtype) if p == "k" else arr(f"{hf_prefix}.{p}_proj.bias")
              for p in parts]
        out[f"{prefix}/weight"], out[f"{prefix}/bias"] = np.concatenate(ws), np.concatenate(bs)
    out.update(_scalars(config))
    return out


def _scalars(config) -> dict:
    """The scalar variables CTranslate2's Whisper spec stores (as its converter writes them)."""
    i8, i16 = np.int8, np.int16
    return {"decoder/activation": i8(GELU), "decoder/alibi": i8(0),
            "decoder/alignment_heads": i16(1), "decoder/alignment_layer": i16(-1),
            "decoder/num_heads": i16(config.decoder_attention_heads), "decoder/pre_norm": i8(1),
            "decoder/scale_embeddings": i8(0), "decoder/start_from_zero_embedding": i8(0),
            "encoder/num_heads": i16(config.encoder_attention_heads)}


# ---------------------------------------------------------------- processor + HF directory

TOKENIZER_FILE, CT2_CONFIG_FILE = "tokenizer.json", "config.json"


def tokenizer_from_json(tokenizer_json):
    """WhisperTokenizerFast from a CTranslate2 tokenizer.json, set up like HF's Whisper ones.

    Registers the <|...|> added tokens as extra special tokens (the timestamp arithmetic in
    the tokenizer relies on it), pad = <|endoftext|>, and appends the 1501 timestamp tokens
    <|0.00|> .. <|30.00|> (not special, as in HF's Whisper tokenizers) when absent.
    """
    import json

    from tokenizers import AddedToken
    from transformers import WhisperTokenizerFast

    data = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
    specials = [t["content"] for t in sorted(data["added_tokens"], key=lambda t: t["id"])
                if t.get("special") and t["content"] != "<|endoftext|>"]
    tok = WhisperTokenizerFast(tokenizer_file=str(tokenizer_json), extra_special_tokens=specials,
                               pad_token="<|endoftext|>", model_max_length=448)
    if tok.convert_tokens_to_ids("<|0.00|>") in (None, tok.unk_token_id):
        tok.add_tokens([AddedToken(f"<|{i * 0.02:.2f}|>", lstrip=False, rstrip=False,
                                   normalized=False, special=False) for i in range(1501)])
    return tok


def processor_from_ct2(data_dir, model_bin=None):
    """WhisperProcessor for a CTranslate2 Whisper dir: tokenizer.json + mel bins of model.bin.

    data_dir holds tokenizer.json; model_bin (path or parts) defaults to data_dir/model.bin.
    """
    from transformers import WhisperFeatureExtractor, WhisperProcessor

    tok_path = Path(data_dir) / TOKENIZER_FILE
    if not tok_path.is_file():
        raise FileNotFoundError(f"{tok_path} is missing: a CTranslate2 Whisper directory needs "
                                "the Hugging Face tokenizer.json next to model.bin")
    header = read_header(model_bin or Path(data_dir) / "model.bin")
    conv1 = header.variables.get("encoder/conv1/weight")
    if conv1 is None or len(conv1.shape) != 3:
        raise Ct2FormatError(f"{data_dir}: model.bin has no 3-D encoder/conv1/weight; "
                             "not a Whisper model")
    fe = WhisperFeatureExtractor(feature_size=int(conv1.shape[1]))
    return WhisperProcessor(feature_extractor=fe, tokenizer=tokenizer_from_json(tok_path))


def special_ids_from_tokenizer(tok) -> dict:
    """Whisper special token ids read from the tokenizer (HF's convention: bos_token_id is
    50257 in both vocabularies, i.e. <|endoftext|> multilingual, <|startoftranscript|> .en)."""
    eot = tok.convert_tokens_to_ids("<|endoftext|>")
    return {"eos": eot, "pad": eot, "bos": 50257,
            "decoder_start": tok.convert_tokens_to_ids("<|startoftranscript|>")}


def generation_config_for(tok, ct2_config: dict, config):
    """WhisperGenerationConfig for Whisper generate(), like openai/whisper-* on the Hub.

    tok: the Whisper tokenizer; ct2_config: CTranslate2 config.json (suppress_ids,
    suppress_ids_begin, alignment_heads); config: the WhisperConfig.
    """
    from transformers import GenerationConfig

    sot = tok.convert_tokens_to_ids("<|startoftranscript|>")
    translate = tok.convert_tokens_to_ids("<|translate|>")
    multilingual = sot == 50258
    gen = GenerationConfig(
        decoder_start_token_id=sot, bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id,
        max_length=config.max_target_positions, is_multilingual=multilingual,
        no_timestamps_token_id=tok.convert_tokens_to_ids("<|notimestamps|>"),
        prev_sot_token_id=tok.convert_tokens_to_ids("<|startofprev|>"),
        suppress_tokens=list(ct2_config.get("suppress_ids", [])),
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin", [])),
        alignment_heads=[list(h) for h in ct2_config.get("alignment_heads", [])],
        max_initial_timestamp_index=50, return_timestamps=False)
    if multilingual:
        gen.lang_to_id = {tok.convert_ids_to_tokens(i): i for i in range(sot + 1, translate)}
        gen.task_to_id = {"transcribe": tok.convert_tokens_to_ids("<|transcribe|>"),
                          "translate": translate}
    return gen


def _model_from_state(config, state: dict):
    """WhisperForConditionalGeneration built on the meta device and filled from `state`
    (fast: no random init). Every parameter and buffer must be in `state`."""
    import torch
    from transformers import WhisperForConditionalGeneration

    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as err:  # a tensor whose shape does not fit the inferred config
        raise Ct2FormatError(f"the weights do not fit a Whisper model: {str(err)[:300]}") from err
    model.tie_weights()
    left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if left:
        raise Ct2FormatError(f"no weights for {left[:5]} after conversion")
    return model


def load_ct2_whisper(data_dir, model_bin=None):
    """(WhisperForConditionalGeneration fp32, WhisperProcessor) from a CTranslate2 dir."""
    import json

    data_dir = Path(data_dir)
    model_bin = model_bin or data_dir / "model.bin"
    processor = processor_from_ct2(data_dir, model_bin)
    cfg_path = data_dir / CT2_CONFIG_FILE
    try:
        ct2_config = json.loads(cfg_path.read_text(encoding="utf-8")) if cfg_path.is_file() else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise Ct2FormatError(f"{cfg_path}: not valid JSON ({err}); re-download the model") from err
    if not isinstance(ct2_config, dict):
        raise Ct2FormatError(f"{cfg_path}: expected a JSON object, got {type(ct2_config).__name__}")
    variables = read_model_bin(model_bin)
    config = whisper_config_from_ct2(variables, special_ids_from_tokenizer(processor.tokenizer))
    config.suppress_tokens = list(ct2_config.get("suppress_ids", [])) or None
    config.begin_suppress_tokens = list(ct2_config.get("suppress_ids_begin", [])) or None
    model = _model_from_state(config, hf_state_dict_from_ct2(variables, config))
    model.generation_config = generation_config_for(processor.tokenizer, ct2_config, config)
    return model.eval(), processor


def convert_ct2_dir(ct2_dir, out_dir, model_bin=None) -> Path:
    """Write a Hugging Face Whisper dir (safetensors, config, generation_config, processor).

    ct2_dir holds model.bin (or pass model_bin: path or parts), config.json, tokenizer.json.
    Weights are saved as float16 when every float variable of model.bin was float16 (exact),
    else float32. Returns out_dir.
    """
    import torch

    model, processor = load_ct2_whisper(ct2_dir, model_bin)
    header = read_header(model_bin or Path(ct2_dir) / "model.bin")
    floats = {v.dtype for v in header.variables.values() if v.shape and "float" in v.dtype}
    if floats == {"float16"}:
        model = model.to(torch.float16)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    processor.save_pretrained(out_dir)
    return out_dir
