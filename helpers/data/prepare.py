"""Stage 01: corpus splits -> filtered rows -> log-mel features on disk, with a report.

Writes into the run directory: corpus_report.json (rows read, kept, dropped per reason for
each split), dropped_rows.jsonl, features/<train split>/ and test_clips.jsonl.
"""
from __future__ import annotations

import contextlib
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


def prepare_run_data(config: RunConfig, run: RunDir, processor, reuse: bool = False) -> dict[str, dict]:
    """Filter every split, save training features and the test clip list; returns reports.

    reuse=True (SKIP_IF_DONE): when notebook 01 already finished for this run id (the same
    data settings; its marker checks out), nothing is prepared again: the saved reports are
    returned, and the test clips put back on this runtime's disk if they are missing.
    """
    from datasets import concatenate_datasets

    from helpers.run import stage_done

    if reuse and stage_done(run, "01", config.run_id):
        print(f"skipped: notebook 01 already prepared this data (run id {config.run_id}); "
              "set SKIP_IF_DONE = False to prepare it again", flush=True)
        ensure_clips(config, run)
        return run.read_json("corpus_report.json", "notebook 01")

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
    if not config.streaming:  # streamed training computes features on the fly (helpers/data/streaming.py)
        save_dataset_atomic(prepare_features(train, processor, timestamp_share=config.timestamp_share,
                                             seed=config.seed), run.features_dir("train"))
    run.write_jsonl("test_clips.jsonl", [{"path": row["audio"], "sentence": row["sentence"],
                                          "duration": row["duration"]} for row in test])
    run.write_json("corpus_report.json", reports)
    run.write_jsonl("dropped_rows.jsonl", dropped)
    run.write_json("train_durations.json", [round(d, 3) for d in train["duration"]])
    return reports


def ensure_clips(config: RunConfig, run: RunDir) -> int:
    """Make sure the test clips notebook 01 recorded (test_clips.jsonl) are on this disk.

    A corpus fetched by name ("mdc:", "fleurs:", a Hub id) keeps its clips on the runtime's
    own disk on Colab, so a new runtime loads the test split again: from the archive kept on
    Drive, or the Hub (the clips land at the same paths). Returns how many were missing;
    MissingStageError naming a clip and the fix when some still are.
    """
    from helpers.data.fetch import is_fleurs, is_mdc
    from helpers.run import MissingStageError

    clips = run.read_jsonl("test_clips.jsonl", "notebook 01 (data preparation)")
    missing = [clip for clip in clips if not Path(clip["path"]).is_file()]
    source = str(config.corpus)
    if missing and (is_mdc(source) or is_fleurs(source) or not Path(source).expanduser().exists()):
        print(f"{len(missing)} of {len(clips)} test clips are not on this runtime's disk: "
              f"loading {source} [{config.test_split}] again ...", flush=True)
        with contextlib.suppress(FileNotFoundError, ValueError):  # a local folder that is gone
            load_corpus(source, split=config.test_split, config=config.corpus_config,
                        text_column=config.text_column)
        still = [clip for clip in missing if not Path(clip["path"]).is_file()]
    else:
        still = missing
    if still:
        raise MissingStageError(
            f"{len(still)} of the {len(clips)} test clips notebook 01 recorded are missing, e.g. "
            f"{still[0]['path']}: the corpus {source} was moved or changed. Restore it, or run "
            "notebook 01 again.")
    return len(missing)


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
