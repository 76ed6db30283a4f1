"""Stage 01: corpus splits -> filtered rows -> log-mel features on disk, with a report.

Writes into the run directory: corpus_report.json (rows read, kept, dropped per reason and
the longest kept label for each split), dropped_rows.jsonl, features/<train split>/ (with
`pack`, 30 s windows of several clips, and packing.json: how they filled),
train_durations.json, test_clips.jsonl and, when WER is measured during training on a split
other than the test split, <eval split>_clips.jsonl (`clips_file`), which notebook 04 takes
its clips from.
"""
from __future__ import annotations

import contextlib
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


def clips_file(config: RunConfig, split: str) -> str:
    """The run file where notebook 01 lists a split's kept clips: test_clips.jsonl for the
    test split, <split>_clips.jsonl for the split WER is watched on during training."""
    return "test_clips.jsonl" if split == config.test_split else f"{split}_clips.jsonl"


def prepare_run_data(config: RunConfig, run: RunDir, processor, reuse: bool = False) -> dict[str, dict]:
    """Filter every split, save training features and the clip lists; returns the reports
    (with REPLAY_SHARE > 0 also "replay": the replay split's, `helpers.data.replay`).

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
    train, replayed = with_replay(train, config, processor.tokenizer)
    if replayed:
        reports["replay"] = replayed
    if not config.streaming:  # streamed training computes features on the fly (helpers/data/streaming.py)
        features = training_features(config, train, processor)
        save_dataset_atomic(features, run.features_dir("train"))
        if config.pack:
            from helpers.data.packing import packing_summary

            run.write_json("packing.json", packing_summary(features))
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


def training_features(config: RunConfig, train, processor):
    """The training rows' features and labels: one clip a sample, or packed into 30 s
    windows with `config.pack` (helpers.data.packing)."""
    if config.pack:
        from helpers.data.packing import prepare_packed_features

        return prepare_packed_features(train, processor, timestamp_share=config.timestamp_share,
                                       seed=config.seed)
    return prepare_features(train, processor, timestamp_share=config.timestamp_share, seed=config.seed)


def ensure_clips(config: RunConfig, run: RunDir, split: str | None = None) -> int:
    """Make sure the clips notebook 01 listed for `split` (the test split by default:
    test_clips.jsonl; `clips_file`) are on this disk.

    A corpus fetched by name ("mdc:", "fleurs:", a Hub id) keeps its clips on the runtime's
    own disk on Colab, so a new runtime loads the test split again: from the archive kept on
    Drive, or the Hub (the clips land at the same paths). Returns how many were missing;
    MissingStageError naming a clip and the fix when some still are.
    """
    from helpers.data.fetch import is_fleurs, is_mdc
    from helpers.run import MissingStageError

    split = split or config.test_split
    clips = run.read_jsonl(clips_file(config, split), "notebook 01 (data preparation)")
    missing = [clip for clip in clips if not Path(clip["path"]).is_file()]
    source = str(config.corpus)
    if missing and (is_mdc(source) or is_fleurs(source) or not Path(source).expanduser().exists()):
        print(f"{len(missing)} of {len(clips)} {split} clips are not on this runtime's disk: "
              f"loading {source} [{split}] again ...", flush=True)
        with contextlib.suppress(FileNotFoundError, ValueError):  # a local folder that is gone
            load_corpus(source, split=split, config=config.corpus_config,
                        text_column=config.text_column)
        still = [clip for clip in missing if not Path(clip["path"]).is_file()]
    else:
        still = missing
    if still:
        raise MissingStageError(
            f"{len(still)} of the {len(clips)} {split} clips notebook 01 recorded are missing, e.g. "
            f"{still[0]['path']}: the corpus {source} was moved or changed. Restore it, or run "
            "notebook 01 again.")
    return len(missing)


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
