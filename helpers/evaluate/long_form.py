"""Notebook 06's long-form check: notebook 05's long recording scored for both models.

Long-form WER, the share of 30 s windows with timestamps and sentence boundary errors,
fine-tuned (notebook 05's transcript) and base (transcribed here), beside the short-clip
WER; `python benchmarks/run.py --only long_form` compares `TIMESTAMP_SHARE` values.
"""
from __future__ import annotations

# ---------------------------------------------------------------- notebook 06's long-form check

LONG_FORM_PREDICTION = "long_form/prediction.json"  # notebook 05: its recording and the fine-tuned transcript
LONG_FORM_BASE = "long_form/base_prediction.json"   # notebook 06: the base model's transcript of it


def _long_form_scores(name: str, recording: dict, prediction: dict) -> dict:
    """metrics.json keys long_form_<name>_wer / _timestamp_share / _start_mae / _end_mae
    of one recording (helpers.evaluate.scoring.score_long_form)."""
    from helpers.evaluate.scoring import score_long_form

    scores = score_long_form([recording], [prediction])
    keys = {"wer": "wer", "timestamp_share": "timestamp_window_share",
            "start_mae": "start_mae", "end_mae": "end_mae"}
    return {f"long_form_{name}_{key}": scores[source] for key, source in keys.items()}


def base_long_form(config, recording: dict) -> dict:
    """transcribe_long of `recording` by the run's base model alone (no adapter: the same
    weights as notebook 05's adapter switched off), at the run's precision and decoding."""
    from helpers.model.load import load_model
    from helpers.transcribe.long_form import transcribe_long

    model, processor = load_model(config.model, precision=config.precision,
                                  language=config.language, task=config.task)
    return transcribe_long(model.eval(), processor, recording["path"], fallback=config.decode_fallback)


def long_form_check(config, run, with_base: bool = True) -> dict | None:
    """Scores of notebook 05's long recording: the fine-tuned transcript notebook 05 made,
    and, with `with_base`, the base model's, transcribed here (saved to
    long_form/base_prediction.json; the check's cost, timed).

    Returns the metrics.json keys long_form_{finetuned,base}_{wer,timestamp_share,
    start_mae,end_mae}, long_form_audio_seconds, long_form_windows and
    long_form_base_seconds (the base transcription's wall time); None, printing why, when
    notebook 05 made no long recording (its LONG_FORM_SECONDS = 0).
    """
    import time

    path = run.path / LONG_FORM_PREDICTION
    if not path.is_file():
        print(f"Long-form check skipped: no {LONG_FORM_PREDICTION} in the run (notebook 05 "
              "makes it unless its LONG_FORM_SECONDS is 0).")
        return None
    saved = run.read_json(LONG_FORM_PREDICTION, "notebook 05 (inference)")
    recording, tuned = saved["recording"], saved["prediction"]
    result = {**_long_form_scores("finetuned", recording, tuned),
              "long_form_audio_seconds": round(recording["duration"], 1),
              "long_form_windows": len(tuned["windows"])}
    if with_base:
        started = time.perf_counter()
        base = base_long_form(config, recording)
        run.write_json(LONG_FORM_BASE, base)
        result.update(_long_form_scores("base", recording, base),
                      long_form_base_seconds=round(time.perf_counter() - started, 1))
    return result
