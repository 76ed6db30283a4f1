"""Run every benchmark and rewrite benchmarks/results/ (JSON + PNG) and the docs section.

    python benchmarks/run.py            # the full run: about 20 minutes on 2 CPU cores
    python benchmarks/run.py --quick    # tiny sizes, for the test (a couple of minutes)
    python benchmarks/run.py --only data_preparation inference --out /tmp/results
    python benchmarks/run.py --only forgetting   # LoRA vs full fine-tuning on Hindi: English kept? routing, replay
    python benchmarks/run.py --only forgetting --forgetting-cache runs/bench-forgetting   # keep the trained models, reuse them
    python benchmarks/run.py --only long_form    # timestamps through fine-tuning: TIMESTAMP_SHARE 0 vs 0.3 vs 0.5
    python benchmarks/run.py --only padding      # padding to 30 s: silence vs zeros, in training and decoding
    python benchmarks/run.py --only packing      # clips packed into 30 s windows vs one a sample, same time

Benchmarks (each in benchmarks/bench_*.py):
1. training_methods: full fine-tuning fp32, LoRA fp32 / 8-bit / 4-bit, same batch and steps
2. data_preparation: Common Voice MP3 -> features on disk, ours vs the recipe's way
3. inference: 8-bit + adapter, merged fp32, CTranslate2 int8 / float32, faster-whisper int8
   (with and without VAD and its batched pipeline), whisper.cpp f16 / q8_0; clips and a long
   recording, each way in its own process (peak memory); needs requirements-engines.txt
4. memory_curve: peak RSS per batch size, full fine-tuning vs LoRA 8-bit (tiny.en, and
   small.en with random weights, where weights rather than activations dominate)
5. forgetting (only with --only forgetting; about 80 minutes on 2 cores): the multilingual base
   trained on Hindi by LoRA 8-bit / LoRA fp32 / full fine-tuning / LoRA 8-bit with replay
   0.1 and 0.25 / LoRA 8-bit at lr 1e-4; Hindi and English WER and language identification
   of each, the base, the adapter switched off, and routing by spoken language
6. long_form (only with --only long_form; estimated at 15 minutes): tiny.en 8-bit + LoRA
   trained with TIMESTAMP_SHARE 0 and each of --long-form-shares; long-form WER, share of
   30 s windows with timestamps, sentence start/end error, short-clip WER; the base too
7. padding (only with --only padding): tiny.en 8-bit + LoRA trained with zero_padding_share
   0, 0.5 and 1; WER of the base and each on cv-mini test and a 60 s recording, in our path
   with each padding, in faster-whisper and in whisper.cpp (needs requirements-engines.txt)
7. packing (only with --only packing; about 60 minutes on 2 CPU cores): tiny.en on
   cv-mini/en and the multilingual base on cv-mini/hi, each trained one clip a sample and
   packed into 30 s windows for the same seconds; clips per second, test WER (CER),
   long-form WER and windows with timestamps -> packing.json
Then benchmarks/report.py writes <out>/benchmarks_section.md from the JSON files: the text
between the markers of docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import DEMO_ADAPTER, RESULTS  # noqa: E402

BENCHMARKS = ("training_methods", "data_preparation", "inference", "memory_curve")
ON_REQUEST = ("forgetting", "long_form", "padding", "packing")  # run only when named in --only (too long for the default run)


@dataclass
class Sizes:
    """How big each benchmark is; FULL for the published figures, QUICK for the test."""
    train_batch: int = 4            # same batch for every method (8, the recipe's, takes ~45 s/step here)
    train_steps: int = 5            # the first is a warm-up: median of the other 4
    wer_clips: int = 16             # test clips transcribed after training
    prep_clips: int = 340           # train clips prepared both ways (all of cv-mini's train)
    prep_num_proc: int = 2          # our map's worker processes (2 cores)
    inference_clips: int = 80       # test clips transcribed by each way (all of cv-mini's test)
    inference_long: tuple = (150, 180)  # seconds of the long recording each way transcribes
    curve_batches: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    curve_steps: int = 1            # memory peaks in the first step (optimizer state made there)
    larger_model: str = "small.en"  # random weights: where weights, not activations, dominate
    larger_batches: list[int] = field(default_factory=lambda: [1, 2])
    forget_steps: int = 30          # the embedded-hindi demo's training: 30 steps ...
    forget_batch: int = 8           # ... of batch 8 (240 of the 320 Hindi train clips)
    forget_hindi_clips: int = 24    # Hindi test clips scored (the demo's 24)
    forget_english_clips: int = 24  # English test clips scored and language-identified
    long_steps: int = 30            # the embedded preset's training: 30 steps ...
    long_batch: int = 8             # ... of batch 8, once per TIMESTAMP_SHARE
    long_recordings: int = 3        # long-form recordings of 1-3 min from the test split
    long_short_clips: int = 24      # short test clips for the short-clip WER beside it
    padding_steps: int = 30         # the embedded preset's training, once per zero_padding_share
    padding_clips: int = 80         # all of cv-mini's test clips
    padding_seconds: float = 60     # notebook 05's long recording (60-70 s)
    padding_train_clips: int | None = None  # all of cv-mini's train clips
    packing_steps: int = 30         # the unpacked arm's steps (the presets' 30); packed: same seconds
    packing_recordings: int = 6     # long recordings per language, as notebook 05 makes its one (6: about all 80 English test clips)


FULL = Sizes()
QUICK = Sizes(train_batch=1, train_steps=1, wer_clips=1, prep_clips=8, inference_clips=1,
              inference_long=(8, 12),
              curve_batches=[1], larger_model="tiny", larger_batches=[1],
              forget_steps=1, forget_batch=1, forget_hindi_clips=1, forget_english_clips=1,
              long_steps=1, long_batch=1, long_recordings=1, long_short_clips=1,
              padding_steps=1, padding_clips=2, padding_seconds=10, padding_train_clips=4,
              packing_steps=1, packing_recordings=1)


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description="Run the benchmarks; rewrite the results.")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (for the test)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS + ON_REQUEST,
                        default=list(BENCHMARKS),
                        help="benchmarks to run (default: all but forgetting, long_form and packing)")
    parser.add_argument("--forgetting-model", default="embedded-base",
                        help="multilingual Whisper for the forgetting benchmark")
    parser.add_argument("--forgetting-steps", type=int, help="training steps of each method "
                        "in the forgetting benchmark (default 30; --quick 1)")
    parser.add_argument("--forgetting-clips", type=int, help="Hindi and English test clips "
                        "in the forgetting benchmark (default 24 each; --quick 1)")
    parser.add_argument("--forgetting-cache", type=Path, help="folder where the forgetting "
                        "benchmark keeps its trained models and reuses them when a later run "
                        "has the same settings (default: none kept)")
    parser.add_argument("--long-form-shares", type=float, nargs="+", default=[0.3, 0.5],
                        help="TIMESTAMP_SHARE values trained beside 0 in the long_form benchmark")
    parser.add_argument("--adapter", type=Path, default=None,
                        help="adapter for the inference benchmark (default: runs/demo/adapter "
                             "if present, else the one trained by training_methods)")
    return parser.parse_args(argv)


def inference_adapter(args, trained: Path) -> Path:
    """The adapter to serve: --adapter, runs/demo/adapter, or the benchmark's own."""
    for candidate in (args.adapter, None if args.quick else DEMO_ADAPTER, trained):
        if candidate and (Path(candidate) / "adapter_config.json").is_file():
            return Path(candidate)
    raise FileNotFoundError(f"no adapter for the inference benchmark: {trained} is missing; "
                            "run the training_methods benchmark too, or pass --adapter DIR")


def forgetting_sizes(sizes: Sizes, args) -> Sizes:
    """`sizes` with the forgetting benchmark's steps and clips from the command line, if given."""
    chosen = {"forget_steps": args.forgetting_steps,
              "forget_hindi_clips": args.forgetting_clips,
              "forget_english_clips": args.forgetting_clips}
    return replace(sizes, **{key: value for key, value in chosen.items() if value is not None})


def main(argv=None) -> int:
    """Run the chosen benchmarks in order, then the report; prints where results went."""
    import bench_dataprep
    import bench_forgetting
    import bench_inference
    import bench_long_form
    import bench_padding
    import bench_packing
    import bench_training
    import report

    args = parse_args(argv)
    sizes, started = forgetting_sizes(QUICK if args.quick else FULL, args), time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    trained = Path(tempfile.mkdtemp(prefix="bench-adapter-")) / "adapter_lora_8bit"
    if "training_methods" in args.only:
        path = bench_training.run_methods(args.out, sizes.train_batch, sizes.train_steps,
                                          sizes.wer_clips, adapter_dir=trained,
                                          with_base=not args.quick)
        bench_training.methods_chart(path)
    if "data_preparation" in args.only:
        bench_dataprep.run(args.out, sizes.prep_clips, sizes.prep_num_proc)
    if "inference" in args.only:
        bench_inference.run(args.out, inference_adapter(args, trained), sizes.inference_clips,
                            sizes.inference_long)
    if "memory_curve" in args.only:
        methods = args.out / "training_methods.json"
        known = json.loads(methods.read_text())["results"] if methods.is_file() else None
        bench_training.run_curve(args.out, sizes.curve_batches, sizes.curve_steps, known,
                                 larger=(sizes.larger_model, sizes.larger_batches))
    if "forgetting" in args.only:
        bench_forgetting.run(args.out, sizes.forget_steps, sizes.forget_batch,
                             sizes.forget_hindi_clips, sizes.forget_english_clips,
                             model=args.forgetting_model, cache=args.forgetting_cache)
    if "long_form" in args.only:
        bench_long_form.run(args.out, sizes.long_steps, sizes.long_batch,
                            [0.0, *args.long_form_shares], sizes.long_recordings,
                            sizes.long_short_clips)
    if "padding" in args.only:
        bench_padding.run(args.out, sizes.padding_steps, sizes.long_batch, sizes.padding_clips,
                          sizes.padding_seconds, train_clips=sizes.padding_train_clips)
    if "packing" in args.only:
        bench_packing.run(args.out, sizes.packing_steps, sizes.packing_recordings)
    shutil.rmtree(trained.parent, ignore_errors=True)
    section = report.write_section(args.out)
    print(f"results in {args.out} ({time.perf_counter() - started:.0f} s); "
          f"section for docs/benchmarks.md: {section}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
