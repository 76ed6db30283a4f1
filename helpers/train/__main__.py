"""The training stage as a script: `python -m helpers.train --config runs/<name>/config.json`.

Does what notebook 04 does, with the same functions (`helpers.train.trainer.run_training`):
reads the run directory's features/train (written by notebook 01) or streams the corpus
(`streaming: true` in config.json), trains LoRA on the base at the configured precision,
and writes checkpoints/, adapter/ (and adapter_best/), train_log.json and metrics.json.

    python -m helpers.train --config runs/demo/config.json            # a new training
    python -m helpers.train --config runs/demo/config.json --resume   # after a crash or kill -9 (the same training only)
    python -m helpers.train --config runs/demo/config.json --set max_steps=100 --set eval_steps=20

More than one process (each places the quantized base on its own device; rank 0 writes):

    torchrun --nproc_per_node=2 -m helpers.train --config runs/demo/config.json
    accelerate launch --multi_gpu --num_processes 2 -m helpers.train --config runs/demo/config.json

On a machine without GPUs the same commands start CPU processes that talk over gloo
(for `accelerate launch` keep `--multi_gpu`: its `--cpu` flag starts a single process).
The batch size in config.json is per process.
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
from dataclasses import replace
from pathlib import Path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments of `python -m helpers.train`."""
    parser = argparse.ArgumentParser(prog="python -m helpers.train",
                                     description="Train a LoRA adapter for a run directory.")
    parser.add_argument("--config", required=True,
                        help="the run's config.json (written by notebook 01); its folder is the run directory")
    parser.add_argument("--resume", action="store_true",
                        help="continue the same training (run id and settings, see notebook 04's "
                             "RESUME) from its last complete checkpoint; without it the "
                             "checkpoints are removed and training starts over")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting for this training (recorded in config.json), "
                             "e.g. --set max_steps=100")
    return parser.parse_args(argv)


def parse_overrides(pairs: list[str]) -> dict:
    """KEY=VALUE strings -> {key: value}, values read as Python literals when they parse."""
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set max_steps=100")
        try:
            overrides[key.strip().lower()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[key.strip().lower()] = value
    return overrides


def load_run(config_path: str | Path, overrides: dict):
    """(RunDir, RunConfig) for a run's config.json, with overrides applied.

    Raises FileNotFoundError naming the file when it is missing, ValueError for an unknown
    setting. Only rank 0 records the overrides in config.json.
    """
    from dataclasses import fields

    from helpers.config import RunConfig, config_from_dict
    from helpers.run import RunDir
    from helpers.train.checkpoints import process_rank

    path = Path(config_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such config file; run notebook 01 (or "
                                "helpers.config.start_run) to create the run directory")
    run = RunDir(path.parent.name, path.parent.parent)
    config = config_from_dict(json.loads(path.read_text()))
    unknown = sorted(set(overrides) - {f.name for f in fields(RunConfig)})
    if unknown:
        raise ValueError(f"--set: unknown setting(s) {unknown}; see helpers/config.py RunConfig")
    if overrides:
        config = replace(config, **overrides)
        if process_rank() == 0:
            run.write_json(path.name, config.to_dict())
    return run, config


def main(argv: list[str] | None = None) -> int:
    """Train; print the resulting metrics as JSON (rank 0); return the exit status."""
    from helpers.train.checkpoints import process_rank
    from helpers.train.trainer import check_training_config, run_training

    args = parse_args(argv)
    try:
        run, config = load_run(args.config, parse_overrides(args.set))
        check_training_config(config)
        if not config.streaming:
            run.require("features/train", "notebook 01 (or set streaming=True)")
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    metrics = run_training(config, run, resume=args.resume)
    if process_rank() == 0:
        print(json.dumps(metrics, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
