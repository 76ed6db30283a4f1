"""Replay: train on a share of another language too, so the adapter does not unlearn it.

An adapter trained on Hindi alone makes the multilingual base worse at English (the
forgetting benchmark). Routing (helpers.transcribe.routing) keeps the adapter away from
English; replay is for those who want one model for everything (merged, exported, no
routing): with `replay_share` (notebook 01's `REPLAY_SHARE`) that share of the training
samples comes from `replay_corpus` (`replay_split`), labelled with its own language token
(`replay_language`: `<|en|>` where the run's clips say `<|hi|>`), the same way as the
run's own clips otherwise (filtered, features, timestamps).

The run's clips are all kept and round(n * share / (1 - share)) replay clips, a seeded
random sample of the replay split, are added, so that they make up `share` of the training
set: of every epoch, and of a max_steps run's samples on average (the Trainer shuffles).
A replay split with fewer clips than that gives all it has, and the report says so.
`embedded-hindi` replays data/cv-mini/en train; the blog presets FLEURS `en_us` train.
"""
from __future__ import annotations

LANGUAGE_COLUMN = "language"  # a row's Whisper language when it is not the run's ("" for the run's)
COMMON_COLUMNS = ("audio", "sentence", "duration")  # what a run's and a replay corpus share


def replay_count(run_clips: int, share: float) -> int:
    """How many replay clips make up `share` of a training set of `run_clips` plus them."""
    if not 0.0 <= share < 1.0:
        raise ValueError(f"replay_share must be at least 0 and under 1 (a share of the training "
                         f"samples), got {share!r}")
    return round(run_clips * share / (1.0 - share))


def check_replay(config, multilingual: bool) -> None:
    """ValueError saying what to set when replay is asked for but cannot be done."""
    from helpers.model.load import canonical_language

    if not config.replay_share:
        return
    replay_count(1, config.replay_share)  # the range check
    if not multilingual:
        raise ValueError(f"REPLAY_SHARE = {config.replay_share} needs a multilingual model: "
                         f"{config.model} is English-only and has no language tokens. Set "
                         "REPLAY_SHARE = 0.")
    if not config.language:
        raise ValueError("REPLAY_SHARE > 0 needs the run's LANGUAGE set (its labels carry its "
                         "language token; replay rows get another one).")
    if not config.replay_corpus or not config.replay_language:
        raise ValueError("REPLAY_SHARE > 0 needs REPLAY_CORPUS (a corpus in another language) "
                         "and REPLAY_LANGUAGE (its Whisper language, e.g. 'english').")
    if canonical_language(config.replay_language) == canonical_language(config.language):
        raise ValueError(f"REPLAY_LANGUAGE is {config.replay_language!r}, the run's own "
                         "language: replay keeps another language. Pick another one.")


def with_replay(train, config, tokenizer):
    """The run's training rows plus replay rows (`replay_count` of them), shuffled with the
    run's seed; returns (rows with a LANGUAGE_COLUMN, report of the replay split or None).

    train: the run's filtered rows ("audio", "sentence", "duration"). With replay_share 0
    the rows come back unchanged and the report is None. Raises ValueError (`check_replay`)
    for settings replay cannot work with.
    """
    from datasets import concatenate_datasets

    from helpers.data.prepare import load_filtered_split
    from helpers.model.load import is_multilingual

    if not config.replay_share:
        return train, None
    check_replay(config, is_multilingual(tokenizer))
    wanted = replay_count(len(train), config.replay_share)
    source = _replay_source(config)
    rows, report = load_filtered_split(source, config.replay_split, tokenizer)
    report.pop("dropped_rows", None)
    picked = rows.shuffle(seed=config.seed).select(range(min(wanted, len(rows))))
    report.update({"replay_wanted": wanted, "replay_used": len(picked),
                   "replay_language": config.replay_language})
    if len(picked) < wanted:
        print(f"replay: {config.replay_corpus} [{config.replay_split}] has {len(rows)} usable "
              f"clips, fewer than the {wanted} that make REPLAY_SHARE = {config.replay_share}; "
              "all of them are used.")
    columns = [c for c in COMMON_COLUMNS if c in train.column_names and c in picked.column_names]
    parts = [_tagged(train, columns, "")]
    if len(picked):  # a share too small to round to one clip adds none
        parts.append(_tagged(picked, columns, config.replay_language))
    return concatenate_datasets(parts).shuffle(seed=config.seed), report


def _replay_source(config):
    """A RunConfig that reads the replay corpus (load_filtered_split reads config.corpus)."""
    from dataclasses import replace

    return replace(config, corpus=config.replay_corpus, corpus_config=None, text_column=None)


def _tagged(rows, columns: list[str], language: str):
    """`rows` reduced to `columns` (durations as float64, whatever the corpus stored), plus
    LANGUAGE_COLUMN = language on every row."""
    from datasets import Value

    rows = rows.select_columns(columns).flatten_indices()  # add_column needs rows in place
    rows = rows.cast_column("duration", Value("float64")) if "duration" in columns else rows
    return rows.add_column(LANGUAGE_COLUMN, [language] * len(rows))


def relabel_language(labels: list[list[int]], languages: list[str] | None, tokenizer) -> list[list[int]]:
    """Labels whose language token (after <|startoftranscript|>) is the row's own language
    where `languages` names one ("english" -> <|en|>); rows with "" or None keep the run's."""
    from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

    from helpers.model.load import canonical_language

    if not languages or not any(languages):
        return labels
    run_token = tokenizer.prefix_tokens[1]
    relabelled = []
    for ids, language in zip(labels, languages):
        if language:
            token = tokenizer.convert_tokens_to_ids(f"<|{TO_LANGUAGE_CODE[canonical_language(language)]}|>")
            if ids[1] != run_token:
                raise ValueError(f"labels {ids[:4]} do not start with the run's prefix; cannot "
                                 "set their language token")
            ids = [ids[0], token, *ids[2:]]
        relabelled.append(ids)
    return relabelled
