"""Checks on the committed speech corpora data/cv-mini/en/ and data/cv-mini/hi/ (built by
scripts/make_cv_mini.py).

Reads the TSVs the way Common Voice writes them (tab separated, csv.QUOTE_NONE), checks
the header, counts, split disjointness, that every clip exists and is 48 kHz mono MP3
(headers for all clips, a full decode for a few), and the corpus size, for each language.
"""
import csv
import importlib.util
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parent.parent
CORPORA = {locale: REPO / "data" / "cv-mini" / locale for locale in ("en", "hi")}
SCRIPT = REPO / "scripts" / "make_cv_mini.py"
CV13_COLUMNS = ["client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender",
                "accents", "variant", "locale", "segment"]
TSVS = ("train", "dev", "test", "validated", "invalidated", "other")
SPLITS = ("train", "dev", "test")
# Rows of train, dev and test; at least this many distinct sentences and voices.
EXPECTED = {"en": {"splits": [340, 60, 80], "sentences": 320, "voices": 6},
            "hi": {"splits": [320, 40, 60], "sentences": 300, "voices": 6}}


def read_tsv(corpus: Path, name: str) -> list:
    """Return the rows of corpus/<name>.tsv as dicts; asserts the exact CV13 header."""
    path = corpus / f"{name}.tsv"
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        assert header == CV13_COLUMNS, f"{path}: header {header}"
        rows = []
        for number, fields in enumerate(reader, 2):
            assert len(fields) == len(CV13_COLUMNS), f"{path}:{number}: {len(fields)} fields"
            rows.append(dict(zip(CV13_COLUMNS, fields)))
    return rows


@pytest.fixture(scope="module", params=sorted(CORPORA))
def locale(request) -> str:
    """Each corpus in turn: "en", then "hi"."""
    return request.param


@pytest.fixture(scope="module")
def corpus(locale) -> Path:
    """The corpus folder of `locale`."""
    return CORPORA[locale]


@pytest.fixture(scope="module")
def tables(corpus) -> dict:
    """All six TSVs of the corpus, {name: rows}."""
    return {name: read_tsv(corpus, name) for name in TSVS}


def load_script():
    """Import scripts/make_cv_mini.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("make_cv_mini", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_header_and_row_fields(tables, locale):
    for name, rows in tables.items():
        for row in rows:
            assert row["locale"] == locale, (name, row["path"])
            assert row["variant"] == "" and row["segment"] == "", (name, row["path"])
            assert row["gender"] in ("male", "female"), (name, row["path"])
            assert row["sentence"].strip() == row["sentence"] != "", (name, row["path"])
            assert len(row["client_id"]) == 128, (name, row["path"])
            int(row["client_id"], 16)
    for name in SPLITS:
        assert {(r["up_votes"], r["down_votes"]) for r in tables[name]} == {("2", "0")}


def test_counts(tables, locale):
    expected = EXPECTED[locale]
    validated = tables["validated"]
    assert len(validated) == sum(expected["splits"])
    assert len({r["sentence"] for r in validated}) >= expected["sentences"]
    assert len({r["client_id"] for r in validated}) >= expected["voices"]
    assert [len(tables[s]) for s in SPLITS] == expected["splits"]


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


def test_quotes_and_apostrophes_survive_unquoted(tables, corpus, locale):
    if locale != "en":
        pytest.skip("only the English sentences quote anyone")
    sentences = [r["sentence"] for r in tables["validated"]]
    assert any('"' in s for s in sentences)
    assert any("'" in s for s in sentences)
    raw = (corpus / "validated.tsv").read_text(encoding="utf-8")
    assert '""' not in raw, "quotes were doubled: write TSVs unquoted, as Common Voice does"


def test_every_clip_exists_and_is_48k_mono(tables, corpus, locale):
    durations = []
    for name, rows in tables.items():
        for row in rows:
            path = corpus / "clips" / row["path"]
            assert path.name.startswith(f"common_voice_{locale}_") and path.suffix == ".mp3"
            assert path.is_file(), f"{name}.tsv references missing clip {path}"
            info = sf.info(str(path))
            assert (info.samplerate, info.channels, info.format) == (48_000, 1, "MP3"), path
            durations.append(info.duration)
    assert min(durations) > 1.4, "a clip is shorter than about 1.5 s"
    assert max(durations) < 12.0, "a clip is longer than about 10 s (Whisper's limit is 30 s)"


def test_no_orphan_clips(tables, corpus):
    listed = {r["path"] for rows in tables.values() for r in rows}
    on_disk = {p.name for p in (corpus / "clips").iterdir()}
    assert on_disk == listed


@pytest.mark.parametrize("split", SPLITS)
def test_some_clips_decode_to_speech(tables, corpus, split):
    for row in tables[split][:3]:
        audio, rate = sf.read(str(corpus / "clips" / row["path"]), dtype="float32")
        assert rate == 48_000 and audio.ndim == 1
        assert np.isfinite(audio).all() and 0.05 < np.abs(audio).max() <= 1.0
        assert len(audio) / rate > 1.4


def test_corpus_size_under_20_mb(corpus):
    size = sum(p.stat().st_size for p in corpus.rglob("*") if p.is_file())
    assert size < 20e6, f"{corpus} is {size / 1e6:.1f} MB"


def test_sentence_file_matches_corpus(tables, locale):
    script = load_script()
    sentences = set(script.read_sentences(script.LANGUAGES[locale].sentences))
    used = {r["sentence"] for rows in tables.values() for r in rows}
    assert used <= sentences, "corpus holds sentences missing from the sentence file"


def test_plan_is_deterministic_and_matches_corpus(tables, locale):
    script = load_script()
    language = script.LANGUAGES[locale]
    sentences = script.read_sentences(language.sentences)
    plan = script.plan_corpus(sentences, seed=13, language=language)
    assert plan == script.plan_corpus(sentences, seed=13, language=language)
    rows = [r for name in ("train", "dev", "test", "invalidated", "other")
            for r in tables[name]]
    assert [script.tsv_row(c) for c in plan] == [list(r.values()) for r in rows], \
        f"committed TSVs differ from the plan: rerun python scripts/make_cv_mini.py --language {locale}"


def test_hindi_sentences_are_devanagari():
    """Hand-written Hindi: Devanagari letters and signs, spaces, danda, comma and question
    mark only (no Latin letters, no digits of any script), at least 300 of them, varied."""
    script = load_script()
    sentences = script.read_sentences(script.LANGUAGES["hi"].sentences)
    assert len(sentences) >= 300
    allowed = set(" ,?।")
    for sentence in sentences:
        odd = {ch for ch in sentence if ch not in allowed and not "ऀ" <= ch <= "ॿ"}
        assert not odd, f"{sentence!r} has characters outside Devanagari: {sorted(odd)}"
        assert not any("०" <= ch <= "९" for ch in sentence), sentence  # digits
        assert sentence[-1] in "।?", f"{sentence!r} does not end with a danda or ?"
    words = [len(s.split()) for s in sentences]
    assert min(words) <= 3 and max(words) >= 15, "sentences should be short and long"
    assert sum(s.endswith("?") for s in sentences) >= 30, "too few questions"


def test_read_sentences_rejects_bad_lines(tmp_path):
    script = load_script()
    for text, message in (("Hello there.\nHello there.\n", "duplicate"),
                          ("I have 3 cats.\n", "numbers as words"),
                          ("a\tb\n", "tab")):
        path = tmp_path / "s.txt"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match=message):
            script.read_sentences(path)


def test_language_option_picks_sentences_and_folder():
    script = load_script()
    hindi = script.parse_args(["--language", "hi"])
    assert (hindi.out, hindi.sentences) == (CORPORA["hi"], script.LANGUAGES["hi"].sentences)
    assert script.parse_args([]).out == CORPORA["en"]
    assert len({v.espeak for v in script.LANGUAGES["hi"].voices}) >= 6
