"""Training time on a Colab T4, estimated before opening one, with and without packing.

Not measured here (no GPU). The one measured figure is the recipe's (its README,
REFERENCE.md): whisper-large-v2, 8-bit base, LoRA, fp16, batch 8, 3 epochs of Common Voice
13 Hindi (6,760 clips of train + dev) in 6 to 8 hours on a T4: RECIPE_STEP_SECONDS, 8.5 to
11 s a step of 8 clips padded to 30 s. From that:

  one clip a sample   steps = epochs x clips / batch; seconds = steps x batch x (step / 8)
  packed              the clips planned into windows by helpers.data.packing.plan_windows
                      (every clip `clip_seconds` long with `tokens_per_second` label tokens a
                      second of speech; Hindi: about 14, REFERENCE.md); a window costs a padded
                      clip's seconds x `window_cost_ratio`, the ratio of their forward FLOPs
                      (the same 30 s for the encoder; longer labels for the decoder)

Assumptions, each a reason the figure is an estimate: a sample's time does not depend on the
batch size (batch 2 windows and batch 8 clips run at the same seconds per sample); time
follows the matrix multiplications' FLOPs (attention included; the 8-bit dequantization,
layer norms and the optimizer step, which do not grow with the labels, are left out).
"""
from __future__ import annotations

import math

import numpy as np

RECIPE_STEP_SECONDS = (8.5, 11.0)  # T4, large-v2 8-bit LoRA, one step of 8 clips (the recipe's README)
RECIPE_BATCH = 8
RECIPE_CLIPS = 6760                # Common Voice 13 Hindi train + dev, the recipe's data
CLIP_SECONDS = 5.0                 # a Common Voice clip lasts about 5 s
HINDI_TOKENS_PER_SECOND = 221 / 16  # a 46-word Hindi sentence of 16 s is 221 tokens (REFERENCE.md)
ENCODER_FRAMES = 1500              # 30 s after the stride-2 convolution


def forward_flops(arch: dict, label_tokens: int, frames: int = ENCODER_FRAMES) -> float:
    """Multiply-add FLOPs (x2) of one sample's forward pass through a Whisper of `arch`
    (helpers.model.architectures dict: d_model, ffn, encoder/decoder_layers, mel_bins,
    vocab) with `label_tokens` decoder positions."""
    d, f, t = arch["d_model"], arch["ffn"], label_tokens
    stem = 2 * (3 * arch["mel_bins"] * d * 2 * frames + 3 * d * d * frames)
    encoder = arch["encoder_layers"] * (2 * frames * (4 * d * d + 2 * d * f) + 4 * frames * frames * d)
    per_decoder_layer = (2 * t * (6 * d * d + 2 * d * f)      # self q,k,v,o; cross q,o; MLP
                         + 2 * frames * 2 * d * d             # cross-attention k, v of the audio
                         + 4 * t * t * d + 4 * t * frames * d)  # self- and cross-attention
    return stem + encoder + arch["decoder_layers"] * per_decoder_layer + 2 * t * d * arch["vocab"]


def window_cost_ratio(arch: dict, window_tokens: int, clip_tokens: int) -> float:
    """How many padded one-clip samples of `clip_tokens` labels one packed window of
    `window_tokens` costs (forward FLOPs; training multiplies both alike)."""
    return forward_flops(arch, window_tokens) / forward_flops(arch, clip_tokens)


def planned_windows(clips: int, clip_seconds: float, clip_tokens: int, overhead: int) -> list[int]:
    """Clips per window when `clips` clips of `clip_seconds` and `clip_tokens` tokens (each,
    timestamps included) are packed as helpers.data.packing packs them (seeded pauses)."""
    from helpers.data.packing import clip_pauses, plan_windows

    pauses = clip_pauses(clips, np.random.default_rng(0))
    plan = plan_windows([clip_seconds] * clips, [clip_tokens] * clips, pauses, overhead)
    return [len(window) for window in plan]


def t4_hours(arch: dict, epochs: float, batch_size: int, pack: bool, clips: int = RECIPE_CLIPS,
             clip_seconds: float = CLIP_SECONDS,
             tokens_per_second: float = HINDI_TOKENS_PER_SECOND, overhead: int = 4) -> dict:
    """Estimated T4 training time (see the module docstring): {"steps", "samples",
    "clips_per_sample", "label_tokens", "cost_ratio", "hours": [low, high]} for `epochs`
    over `clips` at `batch_size` samples a step, packed (`pack`) or one clip a sample.
    overhead: label tokens of a sample besides its clips (prefix and eos)."""
    text_tokens = round(clip_seconds * tokens_per_second)
    clip_labels = overhead + text_tokens
    if pack:
        sizes = planned_windows(clips, clip_seconds, text_tokens + 3, overhead)
        samples, labels = len(sizes), overhead + round(np.mean(sizes) * (text_tokens + 3))
    else:
        sizes, samples, labels = [1] * clips, clips, clip_labels
    ratio = window_cost_ratio(arch, labels, clip_labels)
    per_sample = [seconds / RECIPE_BATCH * ratio for seconds in RECIPE_STEP_SECONDS]
    return {"steps": math.ceil(epochs * samples / batch_size), "samples": samples,
            "clips_per_sample": round(clips / samples, 2), "label_tokens": labels,
            "cost_ratio": round(ratio, 3),
            "hours": [round(epochs * samples * s / 3600, 1) for s in per_sample]}


def t4_estimate(arch: dict, config) -> dict:
    """The T4 time of `config`'s training (epochs, batch, pack) on the recipe's data, next to
    the recipe's own way (one clip a sample, batch 8): {"this_preset", "recipe", "basis"}."""
    return {"this_preset": {"pack": config.pack, "batch_size": config.batch_size,
                            "epochs": config.num_train_epochs,
                            **t4_hours(arch, config.num_train_epochs, config.batch_size, config.pack)},
            "recipe": {"pack": False, "batch_size": RECIPE_BATCH, "epochs": config.num_train_epochs,
                       **t4_hours(arch, config.num_train_epochs, RECIPE_BATCH, False)},
            "basis": (f"estimated, not measured: the recipe's {RECIPE_STEP_SECONDS[0]:g}-"
                      f"{RECIPE_STEP_SECONDS[1]:g} s per step of {RECIPE_BATCH} clips on a T4 "
                      f"(large-v2, 8-bit, LoRA), {RECIPE_CLIPS:,} clips of {CLIP_SECONDS:g} s, "
                      f"{HINDI_TOKENS_PER_SECOND:.1f} label tokens a second (Hindi); a packed window "
                      "costs its forward FLOPs' worth of padded clips (helpers/footprint/t4_time.py)")}
