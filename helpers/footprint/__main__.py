"""`python -m helpers.footprint --model SOURCE [--preset P] [--batch-size N] [--gpu-memory M]`.

Prints one JSON object: trainable/total parameters as PEFT prints them, trainable_pct,
`adapter_bytes` and `adapter_bytes_fp16` (the exact size of adapter_model.safetensors
saved in float32 and in float16), and with --batch-size/--gpu-memory the predicted peak
memory of a training step (`helpers.footprint.estimate`), and with --t4-time the training
time on a Colab T4 estimated from the recipe's (`helpers.footprint.t4_time`). No weights are
downloaded: the architectures are in `helpers.model.architectures` and the model is built on
the meta device. A preset that packs clips into 30 s windows (PACK) is estimated at 448 label
tokens a sample, the most a window may hold (the collator pads a batch to its longest).
"""
from __future__ import annotations

from helpers.footprint.count import count_footprint, lora_settings


def _parser():
    """Command-line arguments of `python -m helpers.footprint`."""
    import argparse

    from helpers.config import PRESETS
    from helpers.data.packing import MAX_LABEL_TOKENS
    from helpers.footprint.estimate import CHECKPOINTING, DEVICES, LABEL_LENGTH

    p = argparse.ArgumentParser(
        prog="python -m helpers.footprint",
        description="Parameter counts, adapter file size and predicted training memory of a "
                    "Whisper model with LoRA, computed offline from its architecture.")
    p.add_argument("--model", help="tiny ... large-v3-turbo, openai/whisper-<name>, embedded, "
                   "embedded-base, or a local dir with config.json (default: the preset's)")
    p.add_argument("--preset", default="embedded", choices=sorted(PRESETS),
                   help="LoRA settings (and default model/batch/checkpointing) from this preset")
    p.add_argument("--r", type=int, help="override the LoRA rank")
    p.add_argument("--target-modules", help="override LoRA targets, comma-separated: q_proj,v_proj")
    p.add_argument("--batch-size", type=int, help="predict peak memory at this batch size")
    p.add_argument("--gpu-memory", "--memory", dest="memory",
                   help="memory to fit in, e.g. 15GB (1e9) or 15GiB (2**30); adds max_batch_size")
    p.add_argument("--device", default="cuda", choices=DEVICES,
                   help="cuda: GPU memory, fp16 autocast; cpu: peak process RSS, float32")
    p.add_argument("--checkpointing", choices=CHECKPOINTING,
                   help="gradient checkpointing kind (default: the preset's, as add_lora does it in one process: "
                        "reentrant; non-reentrant under DDP)")
    p.add_argument("--label-length", type=int,
                   help=f"label tokens per example (decoder length; default {LABEL_LENGTH}, or "
                        f"{MAX_LABEL_TOKENS} for a preset that packs clips into 30 s windows)")
    p.add_argument("--t4-time", action="store_true",
                   help="estimate the training time on a T4 of the preset's epochs, batch and packing")
    p.add_argument("--frames", type=int, default=1500, help="encoder frames (1500 = 30 s)")
    return p


def label_length(args, config) -> int:
    """--label-length, else the most a sample of the preset holds: a packed window's 448
    positions, or a typical sentence's LABEL_LENGTH."""
    from helpers.data.packing import MAX_LABEL_TOKENS
    from helpers.footprint.estimate import LABEL_LENGTH

    if args.label_length is not None:
        return args.label_length
    return MAX_LABEL_TOKENS if config.pack else LABEL_LENGTH


def main(argv=None) -> dict:
    """Print one JSON object: counts and adapter bytes, plus "memory" when asked."""
    import json
    import warnings

    from helpers.config import make_config
    from helpers.footprint.estimate import estimate, parse_bytes

    parser = _parser()
    args = parser.parse_args(argv)
    config = make_config(args.preset)
    targets = [t.strip() for t in args.target_modules.split(",") if t.strip()] \
        if args.target_modules else None
    lora = lora_settings(args.preset, r=args.r, target_modules=targets)
    model = args.model or config.model
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # PEFT asks a deprecated flag
            report, counts = count_footprint(model, lora)
        report["preset"] = args.preset
        if args.batch_size is not None or args.memory is not None:
            from helpers.model.adapters import checkpointing_kind

            checkpointing = args.checkpointing or checkpointing_kind(config.gradient_checkpointing)
            report["memory"] = estimate(
                report["config"], lora, counts, args.batch_size or config.batch_size,
                parse_bytes(args.memory) if args.memory else None, device=args.device,
                checkpointing=checkpointing, label_length=label_length(args, config),
                frames=args.frames)
        if args.t4_time:
            from helpers.footprint.t4_time import t4_estimate

            report["t4_time"] = t4_estimate(report["config"], config)
    except ValueError as error:
        parser.error(str(error))
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
