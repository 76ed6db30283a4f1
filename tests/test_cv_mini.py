"""Checks on the committed speech corpus data/cv-mini/en/ (built by scripts/make_cv_mini.py).

Reads the TSVs the way Common Voice writes them (tab separated, csv.QUOTE_NONE), checks
the header, counts, split disjointness, that every clip exists and is 48 kHz mono MP3
(headers for all clips, a full decode for a few), and the corpus size.
"""
import csv
import importlib.util
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "data" / "cv-mini" / "en"
SCRIPT = REPO / "scripts" / "make_cv_mini.py"
CV13_COLUMNS = ["client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender",
                "accents", "variant", "locale", "segment"]
TSVS = ("train", "dev", "test", "validated", "invalidated", "other")
SPLITS = ("train", "dev", "test")


def read_tsv(name: str) -> list:
    """Return the rows of CORPUS/<name>.tsv as dicts; asserts the exact CV13 header."""
    path = CORPUS / f"{name}.tsv"
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        assert header == CV13_COLUMNS, f"{path}: header {header}"
        rows = []
        for number, fields in enumerate(reader, 2):
            assert len(fields) == len(CV13_COLUMNS), f"{path}:{number}: {len(fields)} fields"
            rows.append(dict(zip(CV13_COLUMNS, fields)))
    return rows


@pytest.fixture(scope="module")
def tables() -> dict:
    """All six TSVs, {name: rows}."""
    return {name: read_tsv(name) for name in TSVS}


def load_script():
    """Import scripts/make_cv_mini.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("make_cv_mini", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_header_and_row_fields(tables):
    for name, rows in tables.items():
        for row in rows:
            assert row["locale"] == "en", (name, row["path"])
            assert row["variant"] == "" and row["segment"] == "", (name, row["path"])
            assert row["gender"] in ("male", "female"), (name, row["path"])
            assert row["sentence"].strip() == row["sentence"] != "", (name, row["path"])
            assert len(row["client_id"]) == 128, (name, row["path"])
            int(row["client_id"], 16)
    for name in SPLITS:
        assert {(r["up_votes"], r["down_votes"]) for r in tables[name]} == {("2", "0")}


def test_counts(tables):
    validated = tables["validated"]
    assert len(validated) >= 480
    assert len({r["sentence"] for r in validated}) >= 320
    assert len({r["client_id"] for r in validated}) >= 6
    assert [len(tables[s]) for s in SPLITS] == [340, 60, 80]


def test_validated_is_train_dev_test(tables):
    union = [r for s in SPLITS for r in tables[s]]
    assert sorted(map(tuple, (r.values() for r in union))) == \
        sorted(map(tuple, (r.values() for r in tables["validated"])))
    paths = [r["path"] for name in TSVS if name != "validated" for r in tables[name]]
    assert len(paths) == len(set(paths)), "a clip appears in two TSVs"


def test_splits_disjoint_by_sentence_and_share_voices(tables):
    sentences = {s: {r["sentence"] for r in tables[s]} for s in SPLITS}
    assert not sentences["train"] & sentences["dev"]
    assert not sentences["train"] & sentences["test"]
    assert not sentences["dev"] & sentences["test"]
    voices = {s: {r["client_id"] for r in tables[s]} for s in SPLITS}
    assert voices["train"] == voices["dev"] == voices["test"]
    repeats = Counter((r["sentence"], r["client_id"]) for r in tables["train"])
    assert max(repeats.values()) == 1, "a voice speaks the same train sentence twice"


def test_quotes_and_apostrophes_survive_unquoted(tables):
    sentences = [r["sentence"] for r in tables["validated"]]
    assert any('"' in s for s in sentences)
    assert any("'" in s for s in sentences)
    raw = (CORPUS / "validated.tsv").read_text(encoding="utf-8")
    assert '""' not in raw, "quotes were doubled: write TSVs unquoted, as Common Voice does"


def test_every_clip_exists_and_is_48k_mono(tables):
    durations = []
    for name, rows in tables.items():
        for row in rows:
            path = CORPUS / "clips" / row["path"]
            assert path.name.startswith("common_voice_en_") and path.suffix == ".mp3"
            assert path.is_file(), f"{name}.tsv references missing clip {path}"
            info = sf.info(str(path))
            assert (info.samplerate, info.channels, info.format) == (48_000, 1, "MP3"), path
            durations.append(info.duration)
    assert min(durations) > 1.4, "a clip is shorter than about 1.5 s"
    assert max(durations) < 12.0, "a clip is longer than about 10 s (Whisper's limit is 30 s)"


def test_no_orphan_clips(tables):
    listed = {r["path"] for rows in tables.values() for r in rows}
    on_disk = {p.name for p in (CORPUS / "clips").iterdir()}
    assert on_disk == listed


@pytest.mark.parametrize("split", SPLITS)
def test_some_clips_decode_to_speech(tables, split):
    for row in tables[split][:3]:
        audio, rate = sf.read(str(CORPUS / "clips" / row["path"]), dtype="float32")
        assert rate == 48_000 and audio.ndim == 1
        assert np.isfinite(audio).all() and 0.05 < np.abs(audio).max() <= 1.0
        assert len(audio) / rate > 1.4


def test_corpus_size_under_20_mb():
    size = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file())
    assert size < 20e6, f"{CORPUS} is {size / 1e6:.1f} MB"


def test_sentence_file_matches_corpus(tables):
    script = load_script()
    sentences = set(script.read_sentences(script.SENTENCES))
    used = {r["sentence"] for rows in tables.values() for r in rows}
    assert used <= sentences, "corpus holds sentences missing from the sentence file"


def test_plan_is_deterministic_and_matches_corpus(tables):
    script = load_script()
    sentences = script.read_sentences(script.SENTENCES)
    plan = script.plan_corpus(sentences, seed=13)
    assert plan == script.plan_corpus(sentences, seed=13)
    rows = [r for name in ("train", "dev", "test", "invalidated", "other")
            for r in tables[name]]
    assert [script.tsv_row(c) for c in plan] == [list(r.values()) for r in rows], \
        "committed TSVs differ from the plan: rerun python scripts/make_cv_mini.py"


def test_read_sentences_rejects_bad_lines(tmp_path):
    script = load_script()
    for text, message in (("Hello there.\nHello there.\n", "duplicate"),
                          ("I have 3 cats.\n", "numbers as words"),
                          ("a\tb\n", "tab")):
        path = tmp_path / "s.txt"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match=message):
            script.read_sentences(path)
