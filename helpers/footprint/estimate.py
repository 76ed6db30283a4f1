"""Predict the peak memory of one Whisper training step, before buying or renting the GPU.

Four methods: full fine-tuning (fp16 mixed precision + AdamW), LoRA on an fp16 base, LoRA on
an 8-bit base and LoRA on a 4-bit (NF4) base, on "cuda" (fp16 autocast, as the Trainer runs with fp16=True)
or "cpu" (float32, as the Trainer runs there). Batch B, encoder frames Te (1500 for 30 s),
label tokens Td (default 64), width d, feed-forward width f, heads h, vocabulary V, LoRA
rank r. Every term below is a tensor that autograd keeps for the backward pass; it was
listed by reading the code of transformers 5 (Whisper), PEFT 0.21 and bitsandbytes 0.50,
then checked tensor by tensor on the CPU (tests/test_memory_estimate.py).

Peak = static + activations at the worst moment:

static
  weights     full: 4 bytes/param. fp16 base: 2 bytes/param (every weight). 8-bit: 1 byte per
              Linear weight in the layers + a float32 scale per output row; 4-bit: 0.5 byte
              + 1/64 (8-bit block absmax, block 64) + 4/(64*256) (its float32 absmax, double
              quantization); everything else (embeddings, convs, layer norms, biases,
              positions) float32 on the quantized bases.
  training    full: gradients 4 + AdamW moments 8 bytes per trainable param (fused AdamW,
              no extra copies). LoRA: 16 bytes per adapter param (weight, grad, 2 moments).
  casts       cuda, full: autocast's float16 copy of every Linear/Conv weight (2 bytes each),
              kept until the backward pass. cuda, LoRA on 8/4 bits: the float16 copy of the
              (tied, frozen) output projection V x d, kept for the backward pass (an fp16
              base needs no copy).
activations, per sample (x B)
  encoder layer, per frame (Te):  4d layer input + 16 (layer-norm statistics)
      + 3a*d q,k,v + a*d attention output + 4h log-sum-exp (SDPA, no T x T matrix)
      + 4d second residual + g*f fc1 output (kept by GELU)
      + base-linear inputs (below) + per LoRA module: m*d_in mask + a*d_in dropout
        output + a*r lora_A output
  decoder layer, per token (Td): the same self-attention and MLP terms, plus the
      cross-attention query side (q, output, residual, layer norm); per frame (Te):
      2a*d cross-attention k and v (+ 4d for the two float16 casts of the encoder
      output under full fine-tuning on cuda) + the LoRA terms of cross-attention k/v.
  base-linear inputs, per frame/token of an encoder layer
      full, cuda: 6d (q/k/v each cast to fp16) + 2d (fc1 cast) + 2f (fc2 input, fp16)
      full, cpu:  4d (q/k/v input) + 4d (out_proj input) + 4d (fc1 input) + 4f (fc2 input)
      8-bit:      the same as full cpu (bitsandbytes keeps each int8 Linear's input, in
                  float32, inside its autograd context; on cuda out_proj's input is the
                  attention output itself)
      4-bit:      nothing (bitsandbytes keeps only the weight)
      fp16 base:  nothing (a frozen Linear needs only its weight for the input gradient)
  a (activation bytes) = 2 on cuda (autocast float16) and for an fp16 base, 4 on cpu; m
  (dropout mask bytes) = 1 on cuda (bool), a on cpu; g = a for full fine-tuning and an fp16
  base, 4 for LoRA on 8/4 bits (the frozen bitsandbytes layers return float32). The
  residual stream (layer inputs, the "4d" terms) is float32, float16 (2d) on an fp16 base.
  plus: the conv front end (5 a*d per frame when it is part of the graph), the encoder
  output, the final layer norms, the float32 log-softmax 4V per label token (the logits
  are dropped with the model outputs, as the Trainer does).

gradient checkpointing ("reentrant", what helpers.model.adapters.add_lora uses in one process,
  or "non-reentrant", what it uses under DDP): a layer keeps only its input (4d per frame/token); in the backward pass one
  layer at a time is recomputed. Exception measured here: with non-reentrant
  checkpointing bitsandbytes' 8-bit layers still keep their inputs (they store them on
  the autograd context, which checkpointing cannot see), so "base-linear inputs" stay for
  every 8-bit layer; reentrant checkpointing runs the forward without a graph and keeps
  none.

worst moment
  LoRA: the end of the forward pass plus the loss gradient (10V per label token on cuda:
  float32 gradients of the log-softmax and the logits + the fp16 one; 8V on cpu); with
  checkpointing, plus the larger of (a recomputed decoder layer) and (a recomputed
  encoder layer + its gradient buffers, a*f + 4d per frame, - the freed log-softmax).
  Full fine-tuning: the largest of (that + the output projection's gradient, 4Vd, 6Vd on
  cuda, + the fp16 weight copies), (the decoder's and embeddings' gradients + the encoder
  side's activations + 2 x 4Vd: the tied embedding's second gradient and their sum) and
  (every gradient, at the end of the backward pass).
  LoRA without checkpointing: the first encoder layer keeps a little less than counted
  (nothing before it needs a gradient); the estimate is that much high.

Assumptions (not measured on a GPU yet: benchmarks/gpu_check.py measures them):
  SDPA uses a flash or memory-efficient kernel on cuda (true for T4 and newer) and its
  output needs no copy before out_proj; the CUDA allocator reserves RESERVED_FACTOR x the
  allocated peak; the CUDA context takes CUDA_CONTEXT_BYTES outside PyTorch's counters;
  outlier columns of LLM.int8 are few (their copies are ignored).
On cpu the process adds CPU_RUNTIME_BYTES (Python, torch, transformers, peft, bitsandbytes,
the processor) and glibc malloc keeps freed blocks, so a step grows the RSS by
CPU_ALLOCATOR_FACTOR x the tensor bytes it allocates: both constants come from this
project's 2-core CPU machines (the factor is fitted, and varies from 1.3 to 3.9 between
methods; with MALLOC_MMAP_THRESHOLD_=65536 the RSS follows the tensors within 5%).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

METHODS = ("full_fp16", "lora_fp16", "lora_8bit", "lora_4bit")
CHECKPOINTING = ("none", "non-reentrant", "reentrant")
DEVICES = ("cuda", "cpu")
LABEL_LENGTH = 64            # typical label tokens of a Common Voice sentence (prefix + text + eos)


# Assumptions and calibration constants (see the module docstring).
RESERVED_FACTOR = 1.10       # assumption: CUDA caching allocator, reserved / allocated at the peak
CUDA_CONTEXT_BYTES = 400e6   # assumption: CUDA context + cuBLAS workspace, outside torch's counters
CPU_RUNTIME_BYTES = 500e6    # measured here: RSS after imports + load_model("embedded", "8bit")


                             # (604 MB) - its weights (104 MB)
CPU_ALLOCATOR_FACTOR = 2.3   # fitted here: RSS growth / tensor bytes of a step over the 12 runs of


                             # benchmarks/results/cpu_memory_embedded.json (1.3 to 3.9)
BYTES_PER_4BIT_WEIGHT = 0.5 + 1 / 64 + 4 / (64 * 256)


@dataclass(frozen=True)
class Setup:
    """What one estimate is about: architecture sizes, LoRA, method, device, checkpointing."""
    d: int                       # d_model
    f: int                       # feed-forward width
    heads: int
    vocab: int
    mel: int
    enc_layers: int
    dec_layers: int
    r: int                       # LoRA rank
    targets: tuple               # LoRA target module names (q_proj, v_proj, ...)
    lora_dropout: float
    method: str = "lora_8bit"
    device: str = "cuda"
    checkpointing: str = "non-reentrant"
    frames: int = 1500           # encoder frames (Te): max_source_positions, 1500 in every Whisper
    label_length: int = LABEL_LENGTH  # label tokens (Td)

    @property
    def a(self) -> int:
        """Bytes of an autocast activation: fp16 on cuda (and for an fp16 base), fp32 on cpu."""
        return 2 if self.device == "cuda" or self.method == "lora_fp16" else 4

    @property
    def h(self) -> int:
        """Bytes of one residual-stream element (layer inputs): fp16 for an fp16 base, else fp32."""
        return 2 if self.method == "lora_fp16" else 4

    @property
    def mask(self) -> int:
        """Bytes of one dropout-mask element (bool on cuda, as the input on cpu); 0 without dropout."""
        return 0 if not self.lora_dropout else (1 if self.device == "cuda" else self.a)

    @property
    def gelu_in(self) -> int:
        """Bytes per fc1 output element kept by GELU: float32 from a bitsandbytes layer."""
        return 4 if self.method in ("lora_8bit", "lora_4bit") else self.a

    @property
    def lora(self) -> bool:
        """True for the LoRA methods."""
        return self.method != "full_fp16"


def _lora_terms(s: Setup, names, d_in: dict) -> float:
    """Bytes per position kept by the LoRA branches of the named modules."""
    if not s.lora:
        return 0
    return sum(s.mask * d_in[n] + s.a * d_in[n] + s.a * s.r for n in names if n in s.targets)


def base_input_bytes(s: Setup, block: str) -> float:
    """Bytes per position of the frozen/trained Linear inputs kept for backward.

    block: "attn" (q/k/v + out_proj of a self-attention), "cross_q" (query + out_proj of a
    cross-attention), "mlp" (fc1 + fc2).
    """
    d, f, full_cuda = s.d, s.f, s.method == "full_fp16" and s.device == "cuda"
    if s.method in ("lora_4bit", "lora_fp16"):
        return 0
    if block == "mlp":
        return 2 * d + 2 * f if full_cuda else 4 * d + 4 * f
    inputs = 3 if block == "attn" else 1          # q,k,v casts (or one shared input) / query
    if full_cuda:
        return 2 * d * inputs                     # out_proj input is the SDPA output itself
    out_proj = 0 if s.device == "cuda" else 4 * d  # cpu: transpose copy of the SDPA output
    return 4 * d + out_proj


def leak_bytes(s: Setup, block: str) -> float:
    """Bytes per position that 8-bit layers keep under non-reentrant checkpointing."""
    if not (s.method == "lora_8bit" and s.checkpointing == "non-reentrant"):
        return 0
    held_output = s.a * s.d if s.device == "cuda" else 0   # out_proj holds the SDPA output
    return base_input_bytes(s, block) + (held_output if block != "mlp" else 0)


def encoder_layer_bytes(s: Setup) -> float:
    """Bytes per frame one encoder layer keeps without checkpointing (excluding its input)."""
    d, f, a = s.d, s.f, s.a
    gelu_in = s.gelu_in * f
    d_in = {"q_proj": d, "k_proj": d, "v_proj": d, "out_proj": d, "fc1": d, "fc2": f}
    return (16 + 3 * a * d + a * d + 4 * s.heads + s.h * d + gelu_in
            + base_input_bytes(s, "attn") + base_input_bytes(s, "mlp")
            + _lora_terms(s, ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"), d_in))


def decoder_layer_bytes(s: Setup) -> tuple[float, float]:
    """(bytes per label token, bytes per encoder frame) a decoder layer keeps, no checkpointing."""
    d, f, a = s.d, s.f, s.a
    gelu_in = s.gelu_in * f
    d_in = {"q_proj": d, "k_proj": d, "v_proj": d, "out_proj": d, "fc1": d, "fc2": f}
    self_attn = 3 * a * d + a * d + 4 * s.heads + base_input_bytes(s, "attn")
    cross_q = 2 * a * d + 4 * s.heads + base_input_bytes(s, "cross_q")
    per_token = (24 + self_attn + s.h * d + cross_q + s.h * d + gelu_in + base_input_bytes(s, "mlp")
                 + _lora_terms(s, ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"), d_in)
                 + _lora_terms(s, ("q_proj", "out_proj"), d_in))
    casts = 4 * d if (s.method == "full_fp16" and s.device == "cuda") else 0
    per_frame = 2 * a * d + casts + _lora_terms(s, ("k_proj", "v_proj"), d_in)
    return per_token, per_frame


def _stem_bytes(s: Setup) -> float:
    """Conv front end per sample: conv1/GELU/conv2 outputs (+ fp16 features cast, full cuda)."""
    in_graph = not s.lora or s.checkpointing != "none"   # add_lora's hook puts it in the graph
    if not in_graph:
        return 0
    features_cast = 2 * s.mel * 2 * s.frames if s.device == "cuda" and not s.lora else 0
    return features_cast + s.a * s.d * 5 * s.frames


def _encoder_output(s: Setup) -> float:
    """Per sample: the encoder output, when something keeps it for the backward pass."""
    keeps = (s.checkpointing != "none" or s.method == "lora_8bit"
             or (s.method == "full_fp16" and s.device == "cpu"))
    return s.h * s.d * s.frames if keeps else 0


def _head_bytes(s: Setup) -> float:
    """Per sample: encoder final norm + encoder output, decoder final norm, log-softmax.

    The Trainer keeps only the loss of the model's outputs, so the logits are freed after
    the forward pass; cross-entropy keeps its float32 log-softmax (4V per label token)."""
    te, td, d = s.frames, s.label_length, s.d
    proj_in = 0 if s.lora else (2 * d if s.device == "cuda" else 4 * d) * td
    return (4 * d * te + _encoder_output(s) + 4 * d * td + proj_in
            + 4 * s.vocab * td)        # the logits themselves are dropped with the outputs


def activation_bytes(s: Setup) -> dict:
    """Per-sample bytes: "forward" (kept at the end of the forward pass), "backward_extra"
    (what the worst moment of the backward pass adds) and "input" (the batch itself)."""
    te, td = s.frames, s.label_length
    enc = encoder_layer_bytes(s) * te
    dec_token, dec_frame = decoder_layer_bytes(s)
    dec = dec_token * td + dec_frame * te
    loss_grad = (10 if s.device == "cuda" else 8) * s.vocab * td
    layer_inputs = s.h * s.d * (s.enc_layers * te + s.dec_layers * td)
    encoder_side = _stem_bytes(s) + s.h * s.d * te * (s.enc_layers + 1) + _encoder_output(s)
    if s.checkpointing == "none":
        forward = layer_inputs + s.enc_layers * enc + s.dec_layers * dec
        encoder_side += s.enc_layers * enc
        extra = loss_grad
    else:
        leak_enc = (leak_bytes(s, "attn") + leak_bytes(s, "mlp")) * te
        leak_dec = (leak_bytes(s, "attn") + leak_bytes(s, "cross_q") + leak_bytes(s, "mlp")) * td
        forward = layer_inputs + s.enc_layers * leak_enc + s.dec_layers * leak_dec
        encoder_side += s.enc_layers * leak_enc
        grad_buffers = (s.a * s.f + 4 * s.d) * te
        log_softmax = 4 * s.vocab * td
        extra = max(loss_grad + dec, enc + grad_buffers - log_softmax)
    forward += _stem_bytes(s) + _head_bytes(s)
    batch = 4 * s.mel * 2 * te + 16 * td          # float32 features + labels/decoder ids
    return {"forward": forward, "backward_extra": extra, "input": batch,
            "encoder_side": encoder_side}


def param_counts(model, lora_params: int) -> dict:
    """Counts the estimate needs, from a (meta-device) WhisperForConditionalGeneration.

    "quantized_weights"/"quantized_rows": Linear weights inside the encoder/decoder layers
    (what bitsandbytes replaces; the tied output projection stays float32) and their output
    rows; "cast_params": Linear + Conv1d weights and biases (autocast's fp16 copies).
    """
    import torch.nn as nn

    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    encoder = model.get_encoder()
    encoder_trainable = sum(p.numel() for p in encoder.parameters() if p.requires_grad)
    quantized = rows = cast = 0
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv1d)):
            cast += sum(p.numel() for p in module.parameters(recurse=False))
        if isinstance(module, nn.Linear) and ".layers." in f".{name}":
            quantized += module.weight.numel()
            rows += module.out_features
    return {"total": total, "trainable_full": trainable,
            "encoder_trainable_full": encoder_trainable, "quantized_weights": quantized,
            "quantized_rows": rows, "cast_params": cast, "lora": lora_params,
            "vocab_x_d": model.config.vocab_size * model.config.d_model}


def static_bytes(s: Setup, counts: dict) -> dict:
    """Weights, gradients, optimizer state and weight casts, in bytes (independent of batch)."""
    if s.method == "full_fp16":
        trainable = counts["trainable_full"]
        casts = 2 * counts["cast_params"] if s.device == "cuda" else 0
        return {"weights": 4 * counts["total"], "gradients": 4 * trainable,
                "optimizer": 8 * trainable, "weight_casts": casts}
    if s.method == "lora_fp16":       # every base weight in float16, the adapter in float32
        return {"weights": 2 * counts["total"] + 4 * counts["lora"],
                "gradients": 4 * counts["lora"], "optimizer": 8 * counts["lora"],
                "weight_casts": 0}
    q = counts["quantized_weights"]
    other = counts["total"] - q
    per_weight = 1 if s.method == "lora_8bit" else BYTES_PER_4BIT_WEIGHT
    scales = 4 * counts["quantized_rows"] if s.method == "lora_8bit" else 0
    return {"weights": q * per_weight + scales + 4 * other + 4 * counts["lora"],
            "gradients": 4 * counts["lora"], "optimizer": 8 * counts["lora"],
            "weight_casts": 2 * counts["vocab_x_d"] if s.device == "cuda" else 0}


def predict(s: Setup, counts: dict, batch_size: int) -> dict:
    """Predicted peak bytes of one steady-state training step at `batch_size`, with parts.

    cuda: "peak_allocated_bytes" (torch.cuda.max_memory_allocated) and
    "peak_reserved_bytes" (x RESERVED_FACTOR). cpu: "peak_rss_bytes" (process peak RSS) and
    "tensor_peak_bytes" (the tensors alone). Both: "step_tensor_bytes", the part a step
    allocates on top of the weights and optimizer state, and the parts of the sum.
    """
    st = static_bytes(s, counts)
    act = {key: value * batch_size for key, value in activation_bytes(s).items()}
    moment_activations = act["forward"] + act["backward_extra"] + act["input"]
    if s.method == "full_fp16":
        # worst of: the start of the backward pass (the output projection's gradient appears
        # while the loss gradient is alive; + its fp16 form on cuda); the moment the tied
        # embedding's second gradient is summed into the first (3 x V x d float32) with the
        # decoder's gradients present and the encoder's activations still kept; the end
        vd = counts["vocab_x_d"]
        start = moment_activations + st["weight_casts"] + (6 if s.device == "cuda" else 4) * vd
        decoder_gradients = st["gradients"] - 4 * counts["encoder_trainable_full"]
        tied = decoder_gradients + act["input"] + act["encoder_side"] + 8 * vd + (
            st["weight_casts"] if s.checkpointing == "none" else 0)
        transient = max(start, tied, st["gradients"] + act["input"])
        fixed = st["weights"] + st["optimizer"]
    else:
        transient = moment_activations
        fixed = st["weights"] + st["gradients"] + st["optimizer"] + st["weight_casts"]
    step = fixed + transient - st["weights"] - st["optimizer"]   # what one step allocates
    parts = {"step_tensor_bytes": int(step), **{f"{k}_bytes": int(v) for k, v in st.items()},
             "activations_bytes": int(act["forward"]),
             "backward_extra_bytes": int(act["backward_extra"]), "batch_bytes": int(act["input"])}
    if s.device == "cpu":
        peak = CPU_RUNTIME_BYTES + fixed + CPU_ALLOCATOR_FACTOR * transient
        return {"peak_rss_bytes": int(peak), "tensor_peak_bytes": int(fixed + transient), **parts}
    peak = fixed + transient
    return {"peak_allocated_bytes": int(peak),
            "peak_reserved_bytes": int(peak * RESERVED_FACTOR), **parts}


def _needed(s: Setup, counts: dict, batch_size: int) -> float:
    """Device memory one step needs at `batch_size` (cuda: reserved + context; cpu: RSS)."""
    p = predict(s, counts, batch_size)
    if s.device == "cpu":
        return p["peak_rss_bytes"]
    return p["peak_reserved_bytes"] + CUDA_CONTEXT_BYTES


def max_batch_size(s: Setup, counts: dict, memory_bytes: float, limit: int = 4096) -> int:
    """Largest batch whose predicted need fits in `memory_bytes` (0 if even batch 1 does not)."""
    if _needed(s, counts, 1) > memory_bytes:
        return 0
    low, high = 1, limit
    while low < high:                       # the need grows with the batch: bisect
        mid = (low + high + 1) // 2
        low, high = (mid, high) if _needed(s, counts, mid) <= memory_bytes else (low, mid - 1)
    return low


def parse_bytes(text) -> float:
    """'15GB' -> 15e9, '15GiB' -> 15 * 2**30, '800MB', '16000000000'. ValueError otherwise."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT]?)(i?)B?\s*", str(text), re.IGNORECASE)
    if not match or match.group(1).count(".") > 1:
        raise ValueError(f"memory size {text!r}: write a number with a unit, e.g. 15GB or 15GiB")
    number, prefix, binary = float(match.group(1)), match.group(2).upper(), match.group(3)
    power = "KMGT".index(prefix) + 1 if prefix else 0
    return number * (1024 if binary else 1000) ** power


def estimate(config: dict, lora, counts: dict, batch_size: int, memory_bytes: float | None = None,
             device: str = "cuda", checkpointing: str = "non-reentrant",
             label_length: int = LABEL_LENGTH, frames: int = 1500,
             methods=METHODS) -> dict:
    """Predictions for each method at `batch_size` (+ the largest batch fitting memory_bytes).

    config: a WhisperArch dict (helpers.model.architectures); lora: LoraSettings; counts: from
    param_counts (with "lora" set). Returns the JSON-ready "memory" section of the CLI.
    """
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if checkpointing not in CHECKPOINTING:
        raise ValueError(f"checkpointing must be one of {CHECKPOINTING}, got {checkpointing!r}")
    if batch_size < 1 or label_length < 1 or frames < 1:
        raise ValueError("batch size, label length and frames must be positive")
    results = {}
    for method in methods:
        s = Setup(d=config["d_model"], f=config["ffn"], heads=config["heads"],
                  vocab=config["vocab"], mel=config["mel_bins"],
                  enc_layers=config["encoder_layers"], dec_layers=config["decoder_layers"],
                  r=lora.r, targets=tuple(lora.target_modules), lora_dropout=lora.dropout,
                  method=method, device=device, checkpointing=checkpointing,
                  frames=frames, label_length=label_length)
        result = predict(s, counts, batch_size)
        if memory_bytes is not None:
            result["fits"] = _needed(s, counts, batch_size) <= memory_bytes
            result["max_batch_size"] = max_batch_size(s, counts, memory_bytes)
        results[method] = result
    constants = ({"cpu_runtime_bytes": CPU_RUNTIME_BYTES,
                  "cpu_allocator_factor": CPU_ALLOCATOR_FACTOR} if device == "cpu" else
                 {"reserved_factor": RESERVED_FACTOR, "cuda_context_bytes": CUDA_CONTEXT_BYTES})
    return {"device": device, "batch_size": batch_size,
            "memory_bytes": None if memory_bytes is None else int(memory_bytes),
            "checkpointing": checkpointing, "source_frames": frames,
            "label_length": label_length, "constants": constants, "methods": results}
