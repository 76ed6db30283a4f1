"""The tables the notebooks show, as pandas DataFrames: base vs fine-tuned error rates,
scripts, looping clips, the worst utterances, long-form segments and scores."""
from __future__ import annotations

from pathlib import Path

from helpers.evaluate.scoring import row_loops
from helpers.metrics import error_rates, script_mix


def comparison_table(metrics: dict):
    """Base vs fine-tuned error rates (percent) as a pandas DataFrame; with routing
    (notebook 05's ROUTING) a third row, routed: the adapter only on the clips the base
    identified as its language."""
    import pandas as pd

    rows = {model: {"WER": metrics[f"{model}_wer"], "CER": metrics[f"{model}_cer"],
                    "raw WER": metrics[f"raw_{model}_wer"], "raw CER": metrics[f"raw_{model}_cer"]}
            for model in ("base", "finetuned", "routed") if f"{model}_wer" in metrics}
    table = (pd.DataFrame(rows).T * 100).round(2)
    if all(f"{model}_script_share" in metrics for model in rows):  # percent, like the rates
        table["script share"] = [None if metrics[f"{model}_script_share"] is None
                                 else round(100 * metrics[f"{model}_script_share"], 2)
                                 for model in rows]
    for key, label in (("loops", "looping clips"), ("insertions", "inserted words")):
        if all(f"{model}_{key}" in metrics for model in rows):
            table[label] = [metrics[f"{model}_{key}"] for model in rows]
    return table


def routing_table(metrics: dict, language: str):
    """Adapter off, adapter on and routed, side by side, on the run's test split (in
    `language`) and on the English check, as a DataFrame of percentages; None when the run
    was not routed (no routed_wer in metrics)."""
    import pandas as pd

    if "routed_wer" not in metrics:
        return None
    ways = {"adapter off (base)": "base", "adapter on": "finetuned", "routed": "routed"}
    columns = {f"{language} WER": "{}_wer", f"{language} CER": "{}_cer",
               "English WER": "english_{}_wer", "English CER": "english_{}_cer"}
    rows = {label: {column: metrics.get(key.format(way)) for column, key in columns.items()}
            for label, way in ways.items()}
    table = (pd.DataFrame(rows).T.astype(float) * 100).round(2)
    for column, key in ((f"{language} clips to the adapter", "routed_adapter_share"),
                        ("English clips to the adapter", "english_routed_adapter_share")):
        table[column] = [0.0, 100.0, _percent(metrics.get(key))]  # off: none; on: every clip
    return table


def _percent(share) -> float | None:
    """0.9583 -> 95.83; None stays None."""
    return None if share is None else round(100 * share, 2)


def script_table(predictions: list[dict]):
    """Which scripts the references and each model's transcripts are written in: percent of
    their letters per script (`helpers.metrics.script_mix`), as a DataFrame (0 where none)."""
    import pandas as pd

    mixes = {key: script_mix(row[key] for row in predictions)
             for key in ("reference", "base", "finetuned", "routed") if key in predictions[0]}
    return (pd.DataFrame(mixes).fillna(0) * 100).round(1)


def looping_clips(predictions: list[dict]):
    """The clips whose base or fine-tuned transcript loops or ran into its token cap
    (`row_loops`), as a DataFrame."""
    import pandas as pd

    rows = [{"clip": Path(row["path"]).name, "reference": row["reference"],
             **{f"{model} loops": row_loops(row, model) for model in ("base", "finetuned")},
             "base": row["base"], "finetuned": row["finetuned"]}
            for row in predictions if row_loops(row, "base") or row_loops(row, "finetuned")]
    return pd.DataFrame(rows, columns=["clip", "reference", "base loops", "finetuned loops",
                                       "base", "finetuned"])


def worst_utterances(predictions: list[dict], count: int = 8):
    """The clips with the highest fine-tuned WER, as a DataFrame (reference, base, fine-tuned)."""
    import pandas as pd

    scored = [{"clip": Path(row["path"]).name,
               "finetuned_wer": error_rates([row["reference"]], [row["finetuned"]])["wer"],
               "reference": row["reference"], "base": row["base"], "finetuned": row["finetuned"]}
              for row in predictions]
    scored.sort(key=lambda row: row["finetuned_wer"], reverse=True)
    return pd.DataFrame(scored[:count])


def segments_table(recording: dict, prediction: dict):
    """Whisper's segments beside the true sentences, as a DataFrame: per predicted segment
    its start, end and text, and the true start, end and text of the sentence whose start
    is nearest (times in seconds)."""
    import pandas as pd

    sentences = recording["sentences"]
    rows = []
    for segment in prediction["segments"]:
        nearest = min(sentences, key=lambda s: abs(s["start"] - segment["start"]))
        rows.append({"start": segment["start"], "end": segment["end"], "text": segment["text"],
                     "true start": nearest["start"], "true end": nearest["end"],
                     "reference": nearest["text"]})
    return pd.DataFrame(rows, columns=["start", "end", "text", "true start", "true end", "reference"])


def long_form_table(metrics: dict):
    """Short-clip WER (notebook 05's test clips) beside long-form WER, the share of windows
    with timestamps and sentence boundary errors (notebook 05's long recording), base and
    fine-tuned, as a pandas DataFrame (percent, seconds); a model not measured is left out."""
    import pandas as pd

    def pct(value):
        return None if value is None else round(100 * value, 2)

    rows = {model: {"short-clip WER %": pct(metrics[f"{model}_wer"]),
                    "long-form WER %": pct(metrics[f"long_form_{model}_wer"]),
                    "windows with timestamps %": pct(metrics[f"long_form_{model}_timestamp_share"]),
                    "sentence start error s": metrics[f"long_form_{model}_start_mae"],
                    "sentence end error s": metrics[f"long_form_{model}_end_mae"]}
            for model in ("base", "finetuned") if f"long_form_{model}_wer" in metrics}
    return pd.DataFrame(rows).T
