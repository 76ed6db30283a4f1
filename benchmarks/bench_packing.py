"""Benchmark 7 (packing): training clips packed into 30 s windows vs one clip a sample, for
the same training time.

Whisper's encoder reads 30 s whatever the clip's length, so a sample of one 4 s clip spends
most of a step on padding. With `PACK = True` consecutive training clips are joined into
windows of up to 30 s (helpers.data.packing). For each language, two adapters are trained
side by side in one process, one right after the other, through the project's own stages
(helpers.data.prepare.prepare_run_data, helpers.train.trainer):

- "unpacked": the preset with one clip a sample, as before packing: PACK = False,
  TIMESTAMP_SHARE = 0 (the recipe's labels), batch 8, the preset's 30 steps;
- "packed": the preset with PACK = True and its own batch size and TIMESTAMP_SHARE, trained
  for the seconds the unpacked run took (it stops at the first step that ends past them).

Each adapter is then measured on the preset's base precision (8-bit, as notebooks 05-06 do):
`test_wer` (and `test_cer`) of the preset's test clips, one clip a sample, normalized
(helpers.evaluate.scoring.score); `long_form_wer` and `timestamp_window_share` of long
recordings made as notebook 05 makes its own (the test clips joined with 0.3-2.5 s pauses,
60-70 s, helpers.data.long_form.build_long_form_from_clips, the run's seed) and transcribed
by helpers.transcribe.long_form.transcribe_long. `clips_per_second` is the training clips
the Trainer processed (helpers.train.trainer: the collator counts them) per second of
training. The English base model (no adapter) is measured beside them.

English: the `embedded` preset (tiny.en, data/cv-mini/en); Hindi: `embedded-hindi`
(the multilingual base, data/cv-mini/hi), scored by CER. Results: benchmarks/results/
packing.json, top-level "unpacked" and "packed" (English), "base" (English, no adapter),
"hindi" ({"unpacked", "packed"}), "machine" and "checks" (the issue's three conditions).

    python benchmarks/run.py --only packing            # about 60 minutes on 2 CPU cores
    python benchmarks/run.py --only packing --quick    # the code paths only
"""
from __future__ import annotations

import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import environment, loadavg  # noqa: E402

from helpers.files import EMBEDDED_CORPUS, EMBEDDED_HINDI_CORPUS, write_json_atomic  # noqa: E402

LANGUAGES = {  # section of packing.json: (preset, corpus, the error rate that counts)
    "english": ("embedded", EMBEDDED_CORPUS, "wer"),
    "hindi": ("embedded-hindi", EMBEDDED_HINDI_CORPUS, "cer"),
}
METRICS = {language: metric for language, (_, _, metric) in LANGUAGES.items()}
UNPACKED = dict(pack=False, timestamp_share=0.0, batch_size=8)  # one clip a sample, the recipe's labels
STEPS = 30               # the unpacked arm's steps: the presets' 30
RECORDINGS = 6           # long recordings per language, each as notebook 05 makes its one: 6 use about every English test clip once
LONG_FORM_SECONDS = 60   # notebook 05's LONG_FORM_SECONDS: recordings of 60 to 70 s
MIN_SPEEDUP = 3.0        # the conditions: packed >= 3x the clips per second,
MAX_TEST_LOSS = 0.01     # test WER (CER for Hindi) at most 1 point above unpacked,
                         # long-form WER no worse


def cpu_model() -> str:
    """The CPU's model name as lscpu shows it ("Model name"), from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"


def machine() -> dict:
    """The machine the benchmark ran on: CPU model, cores, memory, GPU (None), and that
    other jobs share it (the load average is in "environment")."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "memory_gb": round(memory / 1e9, 1),
            "gpu": environment()["gpu"],
            "shared": "other developers' jobs and CI runs may share these cores"}


def time_budget(seconds: float):
    """A TrainerCallback that stops training at the first step ending `seconds` after the
    training began."""
    from transformers import TrainerCallback

    class TimeBudget(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if time.perf_counter() - self.started >= seconds:
                control.should_training_stop = True

    return TimeBudget()


def train_arm(name: str, preset: str, workdir: Path, overrides: dict,
              seconds: float | None = None) -> tuple[Path, dict]:
    """Notebooks 01 and 04 for one arm in workdir/<name>/: the preset with `overrides`, no
    WER during training and no checkpoints; with `seconds`, unbounded steps stopped by
    time_budget. Returns (run folder, training figures)."""
    from helpers.config import start_run
    from helpers.data.prepare import prepare_run_data
    from helpers.model.load import load_processor
    from helpers.train.checkpoints import prepare_output
    from helpers.train.trainer import (build_trainer, finish_training, load_training_model, train,
                                       training_dataset)

    if seconds is not None:
        overrides = {**overrides, "max_steps": 10**6}
    run, config = start_run(name, preset, workdir,
                            **{"eval_steps": 0, "save_steps": 10**7, "logging_steps": 5, **overrides})
    prepare_run_data(config, run, load_processor(config.model, language=config.language,
                                                 task=config.task))
    prepare_output(run, resume=False)
    model, processor = load_training_model(config)
    dataset = training_dataset(config, run, processor)
    print(f"[packing] training {preset} {name} ...", file=sys.stderr, flush=True)
    trainer = build_trainer(model, processor, dataset, config, run,
                            callbacks=[time_budget(seconds)] if seconds is not None else None)
    metrics = finish_training(trainer, config, run, train(trainer))
    packing = run.read_json("packing.json", "notebook 01") if config.pack else None
    del trainer, model
    gc.collect()
    return run.path, {
        "pack": config.pack, "batch_size": config.batch_size, "timestamp_share": config.timestamp_share,
        "train_steps": metrics["train_steps"], "train_seconds": metrics["train_seconds"],
        "seconds_per_step": round(metrics["train_seconds"] / max(metrics["train_steps"], 1), 3),
        "clips_seen": metrics["clips_seen"], "clips_per_second": metrics["clips_per_second"],
        "epochs": round(metrics["clips_seen"] / len(run.read_json("train_durations.json", "01")), 2),
        "final_loss": metrics["final_loss"], "packing": packing}


def evaluate(model_source: str, adapter: Path | None, config, clips: list[dict],
             recordings: list[dict], **decode) -> dict:
    """Test-clip and long-form scores of the base (+ adapter) at the run's precision and
    language: test_wer, test_cer, test_loops, long_form_wer, long_form_cer,
    timestamp_window_share, the long-form details and the seconds each took."""
    from bench_long_form import long_form_scores

    from helpers.audio import load_audio
    from helpers.evaluate.scoring import score
    from helpers.model.adapters import load_for_transcription
    from helpers.transcribe.decode import transcribe_arrays
    from helpers.train.trainer import generation_mode

    model, processor = load_for_transcription(model_source, str(adapter) if adapter else None,
                                              config.language, config.precision)
    started, texts, batch = time.perf_counter(), [], config.eval_batch_size
    with generation_mode(model):
        for start in range(0, len(clips), batch):   # as notebook 05: batches of EVAL_BATCH_SIZE
            audios = [load_audio(clip["path"]) for clip in clips[start:start + batch]]
            texts += transcribe_arrays(model, processor, audios,
                                       decode.get("max_new_tokens"),
                                       decode.get("fallback", True))
        test_seconds = time.perf_counter() - started
        long_form = long_form_scores(model, processor, recordings, **decode)
    test = score(clips, texts)
    del model
    gc.collect()
    return {"test_wer": test["wer"], "test_cer": test["cer"], "test_raw_wer": test["raw_wer"],
            "test_loops": test["loops"], "test_clips": test["n"], "test_seconds": round(test_seconds, 1),
            "long_form_wer": long_form["wer"], "long_form_cer": long_form["cer"],
            "timestamp_window_share": long_form["timestamp_window_share"], "long_form": long_form}


def long_form_recordings(clips: list[dict], out_dir: Path, count: int, seconds: float,
                         seed: int) -> list[dict]:
    """`count` recordings of `seconds` to `seconds` + 10 s from the test clips, as notebook 05
    makes its one (helpers.data.long_form.build_long_form_from_clips, the run's seed)."""
    from helpers.data.long_form import build_long_form_from_clips

    return build_long_form_from_clips(clips, out_dir, count=count, min_seconds=seconds,
                                      max_seconds=seconds + 10, seed=seed)


def compare(language: str, workdir: Path, steps: int = STEPS, recordings: int = RECORDINGS,
            seconds: float = LONG_FORM_SECONDS, with_base: bool = False, **settings) -> dict:
    """One language: the unpacked arm, the packed arm for the same seconds, then every
    model measured. `settings`: RunConfig overrides for both arms (model, corpus, ...) and
    `decode` (transcribe_long's keywords). Returns {"unpacked", "packed"[, "base"], "settings"}."""
    from bench_long_form import corpus_name

    from helpers.config import config_from_dict

    preset, corpus, _ = LANGUAGES[language]
    decode = settings.pop("decode", {})
    common = {"corpus": str(corpus), **settings}
    unpacked_dir, unpacked = train_arm(f"{language}-unpacked", preset, workdir,
                                       {**common, **UNPACKED, "max_steps": steps})
    packed_dir, packed = train_arm(f"{language}-packed", preset, workdir, {**common, "pack": True},
                                   seconds=unpacked["train_seconds"])
    config = config_from_dict(json.loads((unpacked_dir / "config.json").read_text()))
    clips = [json.loads(line) for line in (unpacked_dir / "test_clips.jsonl").read_text().splitlines()]
    recs = long_form_recordings(clips, workdir / f"{language}-long-form", recordings, seconds, config.seed)
    rows = {arm: {**training, **evaluate(config.model, folder / "adapter", config, clips, recs, **decode)}
            for arm, folder, training in (("unpacked", unpacked_dir, unpacked),
                                          ("packed", packed_dir, packed))}
    if with_base:
        rows["base"] = evaluate(config.model, None, config, clips, recs, **decode)
    rows["settings"] = {"preset": preset, "model": config.model, "precision": config.precision,
                        "language": config.language, "corpus": corpus_name(config.corpus),
                        "test_clips": len(clips), "long_form_seconds": [r["duration"] for r in recs],
                        "long_form_sentences": sum(len(r["sentences"]) for r in recs),
                        "unpacked": {**UNPACKED, "max_steps": steps},
                        "packed": {"pack": True, "batch_size": packed["batch_size"],
                                   "timestamp_share": packed["timestamp_share"],
                                   "max_steps": "as many as fit in the unpacked arm's seconds"},
                        "seed": config.seed, "learning_rate": config.learning_rate,
                        "lr_scheduler": config.lr_scheduler, "warmup_steps": config.warmup_steps}
    return rows


def checks(rows: dict, metric: str) -> dict:
    """The issue's conditions on one language's rows: speedup (packed / unpacked clips per
    second, at least MIN_SPEEDUP), test error rate (`metric`) at most MAX_TEST_LOSS above
    unpacked, long-form WER no worse; each with its figures and whether it holds."""
    unpacked, packed = rows["unpacked"], rows["packed"]
    speedup = packed["clips_per_second"] / unpacked["clips_per_second"]
    test_key = f"test_{metric}"
    return {"speedup": round(speedup, 2), "speedup_holds": speedup >= MIN_SPEEDUP,
            "test_metric": test_key,
            "test_difference": round(packed[test_key] - unpacked[test_key], 4),
            "test_holds": packed[test_key] <= unpacked[test_key] + MAX_TEST_LOSS,
            "long_form_difference": round(packed["long_form_wer"] - unpacked["long_form_wer"], 4),
            "long_form_holds": packed["long_form_wer"] <= unpacked["long_form_wer"]}


def run(out_dir: Path, steps: int = STEPS, recordings: int = RECORDINGS,
        seconds: float = LONG_FORM_SECONDS, languages=tuple(LANGUAGES), overrides: dict | None = None,
        **decode) -> Path:
    """Benchmark 7 -> out_dir/packing.json (and packing.png); returns the JSON's path.
    `overrides` ({language: RunConfig overrides}) and `decode` let the test run it on tiny
    models in minutes."""
    started, load = time.perf_counter(), loadavg()
    doc = {"benchmark": "packing", "machine": machine()}
    with tempfile.TemporaryDirectory(prefix="bench-packing-") as tmp:
        for language in languages:
            rows = compare(language, Path(tmp), steps, recordings, seconds,
                           with_base=language == "english",
                           **{**(overrides or {}).get(language, {}), "decode": decode})
            rows["checks"] = checks(rows, LANGUAGES[language][2])
            if language == "english":
                doc.update(rows)
            else:
                doc[language] = rows
    env = environment()
    env["loadavg_before"] = load
    doc.update(environment=env, wall_seconds=round(time.perf_counter() - started, 1),
               command="python benchmarks/run.py --only packing")
    path = write_json_atomic(Path(out_dir) / "packing.json", doc)
    packing_chart(path)
    return path


def sections(doc: dict) -> dict:
    """{language: rows} of packing.json: English at the top level, the others in their key."""
    found = {"english": doc} if "unpacked" in doc else {}
    return {**found, **{name: doc[name] for name in LANGUAGES if name in doc and name != "english"}}


def packing_chart(path_json: Path) -> None:
    """Clips per second and error rates (test, long-form), unpacked vs packed, per language
    -> packing.png beside the JSON."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = sections(json.loads(Path(path_json).read_text()))
    figure, axes = plt.subplots(len(found), 2, figsize=(10, 3.2 * len(found)), squeeze=False)
    for (language, rows), (speed_axis, error_axis) in zip(found.items(), axes):
        metric = LANGUAGES[language][2]
        arms = ("unpacked", "packed")
        bars = speed_axis.bar(arms, [rows[arm]["clips_per_second"] for arm in arms],
                              color=["#888", "#4c72b0"])
        speed_axis.bar_label(bars, fmt="%.2f", fontsize=8)
        speed_axis.set_title(f"{language}: training clips per second", fontsize=10)
        series = {f"test {metric.upper()}": f"test_{metric}", "long-form WER": "long_form_wer"}
        for i, (label, key) in enumerate(series.items()):
            xs = [x + (i - 0.5) * 0.4 for x in range(len(arms))]
            error_axis.bar(xs, [100 * rows[arm][key] for arm in arms], 0.4, label=label)
        error_axis.set_xticks(range(len(arms)), arms)
        error_axis.set_ylabel("%")
        error_axis.set_title(f"{language}: after the same training time", fontsize=10)
        error_axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(Path(path_json).with_suffix(".png"), dpi=110)
    plt.close(figure)

