"""The merged model as one whisper.cpp model file (`python -m helpers.export --to ggml`).

The layout is the one whisper.cpp reads (its models/convert-h5-to-ggml.py writes it from a
transformers Whisper; src/whisper.cpp `whisper_model_load` reads it), written here from the
merged model in memory, little-endian:
- int32 magic 0x67676d6c ("ggml"); int32 hyperparameters n_vocab, n_audio_ctx,
  n_audio_state, n_audio_head, n_audio_layer, n_text_ctx, n_text_state, n_text_head,
  n_text_layer, n_mels, ftype (0 f32, 1 f16; quantized: 2000 + ggml's ftype);
- the mel filters: int32 n_mels, int32 n_fft // 2 + 1, float32 values (whisper.cpp computes
  its own log-mel with them);
- the vocabulary: int32 count, then per token (in id order) int32 length + its bytes; the
  special tokens (<|endoftext|> on) are left out, whisper.cpp names those itself;
- per tensor: int32 n_dims, int32 name length, int32 type (ggml_type), the dims innermost
  first, the name (OpenAI's names: encoder.blocks.0.attn.query.weight, ...), the data.
  proj_out is left out (tied to the token embedding).
Types, as whisper.cpp expects them: 1-d tensors, the conv biases (as [n, 1]) and the
positional embeddings float32; the conv weights float16 (float32 in an f32 file); every
other 2-d tensor f16, f32, or quantized. Quantized files (q8_0, q5_0, q5_1, q4_0) are what
whisper.cpp's own `quantize` tool would make of the f16 file: the same tensors quantized by
the same function, `ggml_quantize_chunk` of the ggml library that pywhispercpp ships
(requirements-engines.txt), called through ctypes.
"""
from __future__ import annotations

import ctypes
import struct
from pathlib import Path

import numpy as np

GGML_MAGIC = 0x67676D6C
GGML_QNT_VERSION = 2          # ggml.h: quantized files carry ftype + 1000 x this
F32, F16 = 0, 1               # ggml_type (and ftype) of the float files
QUANTIZATIONS = {"q4_0": (2, 2), "q5_0": (6, 8), "q5_1": (7, 9), "q8_0": (8, 7)}  # name: (ggml_type, ftype)
GGML_QUANTIZATIONS = ("f16", "f32", *QUANTIZATIONS)
KEEP_FLOAT32 = ("encoder.conv1.bias", "encoder.conv2.bias", "encoder.positional_embedding",
                "decoder.positional_embedding")  # whisper.cpp's quantize tool skips these too

# transformers' names -> OpenAI's (whisper.cpp's), after "model." and a layer's prefix
RENAMES = {
    "self_attn.k_proj": "attn.key", "self_attn.q_proj": "attn.query",
    "self_attn.v_proj": "attn.value", "self_attn.out_proj": "attn.out",
    "self_attn_layer_norm": "attn_ln", "encoder_attn.q_proj": "cross_attn.query",
    "encoder_attn.k_proj": "cross_attn.key", "encoder_attn.v_proj": "cross_attn.value",
    "encoder_attn.out_proj": "cross_attn.out", "encoder_attn_layer_norm": "cross_attn_ln",
    "fc1": "mlp.0", "fc2": "mlp.2", "final_layer_norm": "mlp_ln",
    "encoder.layer_norm": "encoder.ln_post", "decoder.layer_norm": "decoder.ln",
    "encoder.embed_positions.weight": "encoder.positional_embedding",
    "decoder.embed_positions.weight": "decoder.positional_embedding",
    "decoder.embed_tokens.weight": "decoder.token_embedding.weight",
}


def ggml_name(name: str) -> str | None:
    """whisper.cpp's name of a transformers state-dict key; None for proj_out (tied)."""
    if name.startswith("proj_out."):
        return None
    parts = name.removeprefix("model.").split(".")
    if len(parts) > 3 and parts[1] == "layers":
        module = ".".join(parts[3:-1])
        return ".".join([parts[0], "blocks", parts[2], RENAMES[module], parts[-1]])
    joined = ".".join(parts)
    if joined in RENAMES:
        return RENAMES[joined]
    module = ".".join(parts[:-1])
    return f"{RENAMES.get(module, module)}.{parts[-1]}"


def header(config, n_mels: int, ftype: int) -> bytes:
    """Magic and the eleven int32 hyperparameters."""
    values = (GGML_MAGIC, config.vocab_size, config.max_source_positions, config.d_model,
              config.encoder_attention_heads, config.encoder_layers,
              config.max_target_positions, config.d_model, config.decoder_attention_heads,
              config.decoder_layers, n_mels, ftype)
    return struct.pack("<12i", *values)


def mel_filter_bytes(extractor) -> bytes:
    """The extractor's mel filters as whisper.cpp reads them: (n_mels, n_fft // 2 + 1) float32."""
    filters = np.ascontiguousarray(np.asarray(extractor.mel_filters, dtype=np.float32).T)
    return struct.pack("<2i", *filters.shape) + filters.tobytes()


def byte_characters() -> dict[int, str]:
    """GPT-2's byte-level BPE alphabet (Whisper's tokenizer uses it): byte -> the character
    that stands for it; printable bytes stand for themselves, the others for chr(256 + n)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    others = [byte for byte in range(256) if byte not in printable]
    return {**{byte: chr(byte) for byte in printable},
            **{byte: chr(256 + n) for n, byte in enumerate(others)}}


def vocabulary_bytes(tokenizer) -> bytes:
    """The ordinary tokens in id order, as bytes (byte-level BPE strings decoded)."""
    byte_of = {char: byte for byte, char in byte_characters().items()}
    special = set(tokenizer.added_tokens_decoder)
    by_id = {i: token for token, i in tokenizer.get_vocab().items() if i not in special}
    if sorted(by_id) != list(range(len(by_id))):
        raise ValueError("the tokenizer's ordinary tokens do not run 0..N-1; whisper.cpp "
                         "needs them so")
    out = [struct.pack("<i", len(by_id))]
    for i in range(len(by_id)):
        data = bytes(byte_of[char] for char in by_id[i])
        out.append(struct.pack("<i", len(data)) + data)
    return b"".join(out)


def tensor_type(name: str, array: np.ndarray, quantization: str) -> int:
    """The ggml_type whisper.cpp expects for a tensor of a file of `quantization`."""
    if quantization == "f32" or array.ndim < 2 or name in KEEP_FLOAT32:
        return F32
    if array.ndim == 2 and quantization in QUANTIZATIONS:
        return QUANTIZATIONS[quantization][0]
    return F16


def tensor_bytes(name: str, array: np.ndarray, kind: int, quantize) -> bytes:
    """One tensor's record: n_dims, name length, type, dims innermost first, name, data."""
    if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
        array = array.reshape(-1, 1)
    encoded = name.encode()
    head = struct.pack("<3i", array.ndim, len(encoded), kind)
    head += struct.pack(f"<{array.ndim}i", *reversed(array.shape)) + encoded
    if kind == F32:
        data = np.ascontiguousarray(array, dtype="<f4").tobytes()
    elif kind == F16:
        data = np.ascontiguousarray(array, dtype="<f2").tobytes()
    else:  # quantized from the float16 values, as whisper.cpp's quantize reads an f16 file
        data = quantize(kind, array.astype(np.float16).astype(np.float32))
    return head + data


def ggml_quantizer():
    """quantize(ggml_type, 2-d float32 array) -> bytes, by ggml's ggml_quantize_chunk from
    the ggml library pywhispercpp ships; RuntimeError saying how to install it when missing."""
    import importlib.util

    spec = importlib.util.find_spec("_pywhispercpp")
    libraries = sorted(Path(spec.origin).parent.glob("libggml-base.so*")) if spec else []
    if not libraries:
        raise RuntimeError("quantized whisper.cpp files are made by ggml's own quantizer, which "
                           "pywhispercpp ships: pip install -r requirements-engines.txt "
                           "(or `make engines`), or export with --quantization f16")
    library = ctypes.CDLL(str(libraries[0]))
    function = library.ggml_quantize_chunk
    function.restype = ctypes.c_size_t
    function.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                         ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]

    def quantize(kind: int, array: np.ndarray) -> bytes:
        source = np.ascontiguousarray(array, dtype=np.float32)
        rows, per_row = source.shape
        target = np.empty(source.nbytes, dtype=np.uint8)  # more than any quantized size
        size = function(kind, source.ctypes.data, target.ctypes.data, 0, rows, per_row, None)
        return target[:size].tobytes()

    return quantize


def write_ggml(model, processor, out_file, quantization: str = "f16") -> Path:
    """Write a Whisper model (transformers, e.g. the merged one) as a whisper.cpp file.

    quantization: f16 (whisper.cpp's usual), f32, or q8_0 / q5_0 / q5_1 / q4_0 (by ggml's own
    quantizer, `ggml_quantizer`). Written to a temporary name beside `out_file` and renamed.
    """
    from helpers.files import atomic_file

    if quantization not in GGML_QUANTIZATIONS:
        raise ValueError(f"ggml quantization must be one of {GGML_QUANTIZATIONS}, not {quantization!r}")
    quantize = ggml_quantizer() if quantization in QUANTIZATIONS else None
    ftype = {"f32": F32, "f16": F16}.get(quantization) or (
        GGML_QNT_VERSION * 1000 + QUANTIZATIONS[quantization][1])
    extractor = processor.feature_extractor
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out_file, "wb") as out:
        out.write(header(model.config, extractor.feature_size, ftype))
        out.write(mel_filter_bytes(extractor))
        out.write(vocabulary_bytes(processor.tokenizer))
        for key, tensor in model.state_dict().items():
            name = ggml_name(key)
            if name is not None:
                array = tensor.detach().float().cpu().numpy()
                out.write(tensor_bytes(name, array, tensor_type(name, array, quantization), quantize))
    return out_file


def export_ggml(adapter_dir, out_file, quantization: str = "f16", model_source=None,
                language=None, task=None) -> Path:
    """Merge the adapter into its fp32 base (helpers.export.merge) and write a whisper.cpp file."""
    from helpers.export.merge import merged_model

    model, processor = merged_model(adapter_dir, model_source, language, task)
    return write_ggml(model, processor, out_file, quantization)


# ------------------------------------------------------------------ run by whisper.cpp
def load_whisper_cpp(model_file, threads: int = 2):
    """pywhispercpp's Model on `model_file` (whisper.cpp's default decoding: greedy with its
    temperature fallback), its log lines kept off the terminal."""
    try:
        from pywhispercpp.model import Model
    except ImportError:
        raise RuntimeError("whisper.cpp is run through pywhispercpp, an optional dependency: "
                           "pip install -r requirements-engines.txt (or `make engines`)") from None
    return Model(str(model_file), n_threads=threads, print_progress=False,
                 print_realtime=False, redirect_whispercpp_logs_to=None)


def whisper_cpp_segments(model, audio) -> list[dict]:
    """whisper.cpp's segments of 16 kHz samples (any length): [{"start", "end" (s), "text"}]."""
    return [{"start": segment.t0 / 100, "end": segment.t1 / 100, "text": segment.text.strip()}
            for segment in model.transcribe(np.asarray(audio, dtype=np.float32))]
