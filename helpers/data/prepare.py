"""Stage 01: corpus splits -> filtered rows -> log-mel features on disk, with a report.

Writes into the run directory: corpus_report.json (rows read, kept, dropped per reason and
the longest kept label for each split), dropped_rows.jsonl, features/<train split>/,
test_clips.jsonl and, when WER is measured during training on a split other than the test
split, <eval split>_clips.jsonl (`clips_file`), which notebook 04 takes its clips from.
"""
from __future__ import annotations

from pathlib import Path

from helpers.config import RunConfig
from helpers.data.corpora import load_corpus
from helpers.data.features import prepare_features
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


def clips_file(config: RunConfig, split: str) -> str:
    """The run file where notebook 01 lists a split's kept clips: test_clips.jsonl for the
    test split, <split>_clips.jsonl for the split WER is watched on during training."""
    return "test_clips.jsonl" if split == config.test_split else f"{split}_clips.jsonl"


def prepare_run_data(config: RunConfig, run: RunDir, processor) -> dict[str, dict]:
    """Filter every split, save training features and the clip lists; returns the reports."""
    from datasets import concatenate_datasets

    reports, kept, dropped = {}, {}, []
    for split in config.train_splits:
        kept[split], reports[split] = load_filtered_split(config, split, processor.tokenizer)
    kept[config.test_split], reports[config.test_split] = load_filtered_split(
        config, config.test_split, processor.tokenizer, config.max_test_clips)
    if config.eval_steps and config.eval_split not in kept:  # WER during training (notebook 04)
        _add_eval_split(config, processor.tokenizer, kept, reports)
    for split, report in reports.items():
        dropped += [{"split": split, **row} for row in report.pop("dropped_rows", [])]
    parts = [kept[split] for split in config.train_splits]
    train = concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    if config.max_train_clips is not None and len(train) > config.max_train_clips:
        train = train.shuffle(seed=config.seed).select(range(config.max_train_clips))
    if not config.streaming:  # streamed training computes features on the fly (helpers/data/streaming.py)
        save_dataset_atomic(prepare_features(train, processor, timestamp_share=config.timestamp_share,
                                             seed=config.seed), run.features_dir("train"))
    for split in dict.fromkeys([config.test_split, *([config.eval_split] if config.eval_steps else [])]):
        if split not in kept:
            continue
        run.write_jsonl(clips_file(config, split), [
            {"path": row["audio"], "sentence": row["sentence"], "duration": row["duration"]}
            for row in kept[split]])
    run.write_json("corpus_report.json", reports)
    run.write_jsonl("dropped_rows.jsonl", dropped)
    run.write_json("train_durations.json", [round(d, 3) for d in train["duration"]])
    return reports


def _add_eval_split(config: RunConfig, tokenizer, kept: dict, reports: dict) -> None:
    """Filter the split notebook 04 watches WER on into kept/reports; a corpus without that
    split is told so in one line (notebook 04 then names the problem when it needs it)."""
    try:
        kept[config.eval_split], reports[config.eval_split] = load_filtered_split(
            config, config.eval_split, tokenizer)
    except (FileNotFoundError, ValueError) as error:
        print(f"no clips listed for WER during training: the corpus has no usable "
              f"{config.eval_split!r} split ({error})", flush=True)


def longest_label_line(reports: dict[str, dict]) -> str:
    """One line: the longest kept label in tokens (prompt tokens and end-of-text included),
    which split holds it, and the decoder's 448 positions it must fit in."""
    tokens, split = max((report.get("longest_label_tokens", 0), split)
                        for split, report in reports.items())
    return (f"longest kept label: {tokens} tokens ({split} split), of the decoder's 448 "
            "positions; a transcript may take as many as its audio's length allows "
            "(helpers.transcribe.decode.token_cap)")


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
