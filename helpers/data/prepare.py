"""Stage 01: corpus splits -> filtered rows -> log-mel features on disk, with a report.

Writes into the run directory: corpus_report.json (rows read, kept, dropped per reason for
each split), dropped_rows.jsonl, features/<train split>/ and test_clips.jsonl.
"""
from __future__ import annotations

from pathlib import Path

from helpers.config import RunConfig
from helpers.data.corpora import load_corpus
from helpers.data.features import prepare_features
from helpers.data.replay import with_replay
from helpers.data.filter import filter_corpus
from helpers.files import remove_leftovers, staging_dir
from helpers.run import RunDir


def load_filtered_split(config: RunConfig, split: str, tokenizer, max_clips: int | None = None):
    """Load one split of the configured corpus and filter it; returns (kept, report)."""
    corpus = load_corpus(config.corpus, split=split, config=config.corpus_config,
                         text_column=config.text_column)
    kept, report = filter_corpus(corpus, tokenizer, name=f"{config.corpus} [{split}]")
    if max_clips is not None and len(kept) > max_clips:
        report["capped_to"] = max_clips
        kept = kept.select(range(max_clips))
    return kept, report


def prepare_run_data(config: RunConfig, run: RunDir, processor) -> dict[str, dict]:
    """Filter every split, save training features and the test clip list; returns reports
    (with REPLAY_SHARE > 0 also "replay": the replay split's, `helpers.data.replay`)."""
    from datasets import concatenate_datasets

    reports, dropped, train_parts = {}, [], []
    for split in config.train_splits:
        kept, reports[split] = load_filtered_split(config, split, processor.tokenizer)
        train_parts.append(kept)
    test, reports[config.test_split] = load_filtered_split(
        config, config.test_split, processor.tokenizer, config.max_test_clips)
    for split, report in reports.items():
        dropped += [{"split": split, **row} for row in report.pop("dropped_rows", [])]
    train = concatenate_datasets(train_parts) if len(train_parts) > 1 else train_parts[0]
    if config.max_train_clips is not None and len(train) > config.max_train_clips:
        train = train.shuffle(seed=config.seed).select(range(config.max_train_clips))
    train, replayed = with_replay(train, config, processor.tokenizer)
    if replayed:
        reports["replay"] = replayed
    if not config.streaming:  # streamed training computes features on the fly (helpers/data/streaming.py)
        save_dataset_atomic(prepare_features(train, processor, timestamp_share=config.timestamp_share,
                                             seed=config.seed), run.features_dir("train"))
    run.write_jsonl("test_clips.jsonl", [{"path": row["audio"], "sentence": row["sentence"],
                                          "duration": row["duration"]} for row in test])
    run.write_json("corpus_report.json", reports)
    run.write_jsonl("dropped_rows.jsonl", dropped)
    run.write_json("train_durations.json", [round(d, 3) for d in train["duration"]])
    return reports


def save_dataset_atomic(dataset, target: Path) -> None:
    """save_to_disk into a hidden sibling folder, renamed to `target` once complete: a
    process killed while saving leaves the old features (or none), never half a folder.
    Staging folders a killed save left behind are deleted first."""
    remove_leftovers(target)
    with staging_dir(target) as staging:
        dataset.save_to_disk(str(staging))


def report_table(reports: dict[str, dict]):
    """The corpus report as a pandas DataFrame: one row per split, one column per count."""
    import pandas as pd

    rows = []
    for split, report in reports.items():
        rows.append({"split": split, "rows": report["rows"], "kept": report["kept"],
                     **report["dropped"]})
    return pd.DataFrame(rows).set_index("split")
