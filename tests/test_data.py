"""helpers.data: corpus loaders, the filter and the summary CLI, on corpora written here."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from datasets import Audio, Dataset

from fixtures.data_files import write_cv_locale, write_metadata_csv, write_tone
from helpers.data import __main__ as data_command
from helpers.data.filter import DROP_REASONS, filter_corpus
from helpers.data.corpora import (corpus_kind, hub_to_corpus, load_audio_folder, load_common_voice, load_corpus, load_hub_dataset)

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
QUOTED = ['He said "hello" to me.', '"Quoted at the start"', 'A 5" floppy, and \'single\'.']


@pytest.fixture(scope="module")
def tokenizer():
    from helpers.model.load import load_processor

    return load_processor("embedded").tokenizer


# ------------------------------------------------------------------------ Common Voice
def test_common_voice_quotes_survive_verbatim(tmp_path):
    rows = [{"path": f"c{i}.wav", "sentence": s} for i, s in enumerate(QUOTED)]
    locale = write_cv_locale(tmp_path / "cv" / "en", rows)
    ds = load_common_voice(locale, "train")
    assert ds["sentence"] == QUOTED
    assert ds.column_names[:3] == ["audio", "client_id", "path"]
    assert set(ds.column_names) == {"audio", "client_id", "path", "sentence", "up_votes",
                                    "down_votes"}
    assert all(v.dtype == "string" for v in ds.features.values())
    assert ds["up_votes"] == ["2", "2", "2"]
    for audio, name in zip(ds["audio"], ds["path"]):
        assert Path(audio).is_absolute() and Path(audio).is_file()
        assert Path(audio) == (locale / "clips" / name).resolve()


def test_common_voice_release_root_and_locale(tmp_path):
    write_cv_locale(tmp_path / "cv-corpus-26.0" / "hi", [{"path": "a.wav", "sentence": "नमस्ते"}])
    assert load_common_voice(tmp_path / "cv-corpus-26.0", "train")["sentence"] == ["नमस्ते"]
    write_cv_locale(tmp_path / "cv-corpus-26.0" / "mr", [{"path": "b.wav", "sentence": "हो"}])
    with pytest.raises(ValueError, match=r"several locales \['hi', 'mr'\]"):
        load_common_voice(tmp_path / "cv-corpus-26.0", "train")
    marathi = load_common_voice(tmp_path / "cv-corpus-26.0", "train", locale="mr")
    assert marathi["sentence"] == ["हो"]
    with pytest.raises(FileNotFoundError, match="locales found"):
        load_common_voice(tmp_path / "cv-corpus-26.0", "train", locale="ta")


def test_common_voice_missing_column_names_tsv_and_column(tmp_path):
    locale = write_cv_locale(tmp_path / "en", [{"path": "a.wav", "sentence": "hi"}],
                             columns=["client_id", "path", "text"])
    with pytest.raises(ValueError, match=r"train\.tsv: missing column\(s\) \['sentence'\]"):
        load_common_voice(locale, "train")


def test_common_voice_unknown_split_lists_tsvs(tmp_path):
    locale = write_cv_locale(tmp_path / "en", [{"path": "a.wav", "sentence": "hi"}])
    write_cv_locale(locale, [{"path": "b.wav", "sentence": "yo"}], split="dev")
    with pytest.raises(FileNotFoundError, match=r"test\.tsv: no such split.*\['dev\.tsv', "
                                                r"'train\.tsv'\]"):
        load_common_voice(locale, "test")


def test_common_voice_bad_field_count_names_line(tmp_path):
    locale = write_cv_locale(tmp_path / "en", [{"path": "a.wav", "sentence": "one"},
                                               {"path": "b.wav", "sentence": "two"}])
    tsv = locale / "train.tsv"
    lines = tsv.read_text().splitlines()
    lines[2] = lines[2] + "\textra"
    tsv.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"train\.tsv, line 3: 6 fields where the header has 5"):
        load_common_voice(locale, "train")


def test_common_voice_header_only_gives_empty_dataset(tmp_path):
    locale = write_cv_locale(tmp_path / "en", [])
    ds = load_common_voice(locale, "train")
    assert len(ds) == 0 and "sentence" in ds.column_names


def test_common_voice_not_a_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_common_voice(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="not a Common Voice"):
        load_common_voice(tmp_path)


# ----------------------------------------------------------------------- audio folders
def test_audio_folder_with_metadata_csv(tmp_path):
    write_tone(tmp_path / "corpus" / "a.flac")
    write_tone(tmp_path / "corpus" / "sub" / "b.wav")
    write_metadata_csv(tmp_path / "corpus" / "metadata.csv",
                       [("a.flac", 'Commas, and "quotes"'), ("sub/b.wav", "two")])
    ds = load_audio_folder(tmp_path / "corpus")
    assert ds.column_names == ["audio", "sentence"]
    assert ds["sentence"] == ['Commas, and "quotes"', "two"]
    expected = [(tmp_path / "corpus" / name).resolve() for name in ("a.flac", "sub/b.wav")]
    assert ds["audio"] == [str(path) for path in expected]


@pytest.mark.parametrize("file_column,text_column", [("path", "text"),
                                                     ("file_name", "transcription")])
def test_audio_folder_csv_given_directly(tmp_path, file_column, text_column):
    csv_path = write_metadata_csv(tmp_path / "lists" / "eval.csv", [("../clips/x.wav", "hi")],
                                  file_column, text_column)
    ds = load_corpus(csv_path, "test")
    assert ds["audio"] == [str((tmp_path / "clips" / "x.wav").resolve())]
    assert ds["sentence"] == ["hi"]


def test_audio_folder_split_files_and_split_column(tmp_path):
    write_metadata_csv(tmp_path / "a" / "test" / "metadata.csv", [("t.wav", "test row")])
    write_metadata_csv(tmp_path / "a" / "metadata.csv", [("x.wav", "all rows")])
    assert load_audio_folder(tmp_path / "a", "test")["sentence"] == ["test row"]
    assert load_audio_folder(tmp_path / "a", "train")["sentence"] == ["all rows"]
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "metadata.csv").write_text(
        "file_name,sentence,split\nx.wav,one,train\ny.wav,two,test\nz.wav,three,train\n")
    ds = load_audio_folder(tmp_path / "b", "train")
    assert ds["sentence"] == ["one", "three"] and ds["split"] == ["train", "train"]
    with pytest.raises(ValueError, match=r"no rows with split == 'dev'.*\['test', 'train'\]"):
        load_audio_folder(tmp_path / "b", "dev")


def test_audio_folder_errors_name_the_csv(tmp_path):
    write_metadata_csv(tmp_path / "m.csv", [("x.wav", "hi")], "file_name", "words")
    with pytest.raises(ValueError, match=r"m\.csv: no transcript column"):
        load_audio_folder(tmp_path / "m.csv")
    (tmp_path / "bad.csv").write_text("file_name,sentence\nx.wav,hi\ny.wav,a,b\n")
    with pytest.raises(ValueError, match=r"bad\.csv, line 3"):
        load_audio_folder(tmp_path / "bad.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no metadata CSV"):
        load_audio_folder(tmp_path / "empty")


# -------------------------------------------------------------------------- Hub-style
def hub_like_dataset(tmp_path) -> Dataset:
    """A Dataset shaped like a Hub audio dataset: Audio feature with bytes, text column."""
    wav = write_tone(tmp_path / "src" / "one.wav", 48_000, 0.5)
    mp3 = write_tone(tmp_path / "src" / "two.mp3", 48_000, 0.25)
    ds = Dataset.from_dict({
        "audio": [{"bytes": wav.read_bytes(), "path": "clips/one.wav"},
                  {"bytes": mp3.read_bytes(), "path": "two.mp3"}],
        "transcription": ["first", 'second "quoted"'],
        "speaker_id": [7, 8]})
    return ds.cast_column("audio", Audio(sampling_rate=16_000))


def test_load_hub_dataset_through_parquet(tmp_path):
    parquet = tmp_path / "hub" / "train.parquet"
    hub_like_dataset(tmp_path).to_parquet(str(parquet))
    ds = load_hub_dataset("parquet", split="train", data_files=str(parquet),
                          cache_dir=str(tmp_path / "hf"), audio_dir=tmp_path / "audio")
    assert ds.column_names == ["audio", "sentence", "speaker_id"]
    assert ds["sentence"] == ["first", 'second "quoted"'] and ds["speaker_id"] == [7, 8]
    paths = [Path(p) for p in ds["audio"]]
    assert [p.parent for p in paths] == [tmp_path / "audio"] * 2
    assert [p.suffix for p in paths] == [".wav", ".mp3"]
    assert paths[0].read_bytes() == (tmp_path / "src" / "one.wav").read_bytes()
    assert [sf.info(str(p)).duration for p in paths] == pytest.approx([0.5, 0.25])


def test_hub_to_corpus_local_paths_and_errors(tmp_path):
    wav = write_tone(tmp_path / "x.wav")
    ds = Dataset.from_dict({"speech": [str(wav)], "text": ["hi"]})
    out = hub_to_corpus(ds, audio_column="speech", audio_dir=tmp_path / "a")
    assert out["audio"] == [str(wav.resolve())] and out["sentence"] == ["hi"]
    with pytest.raises(ValueError, match=r"no audio column 'audio'.*\['speech', 'text'\]"):
        hub_to_corpus(ds, audio_dir=tmp_path / "a")
    gone = Dataset.from_dict({"audio": [str(tmp_path / "gone.wav")], "text": ["hi"]})
    with pytest.raises(ValueError, match="gone.wav.*no bytes"):
        hub_to_corpus(gone, audio_dir=tmp_path / "a")


# --------------------------------------------------------------------------- dispatch
def test_corpus_kind_dispatch(tmp_path):
    locale = write_cv_locale(tmp_path / "cv" / "en", [{"path": "a.wav", "sentence": "hi"}])
    folder = write_metadata_csv(tmp_path / "folder" / "metadata.csv", [("a.wav", "hi")])
    assert corpus_kind(locale) == "common_voice"
    assert corpus_kind(tmp_path / "cv") == "common_voice"
    assert corpus_kind(folder.parent) == "audio_folder"
    assert corpus_kind(folder) == "audio_folder"
    assert corpus_kind("mozilla-foundation/common_voice_13_0") == "hub"
    assert corpus_kind("librispeech_asr") == "hub"
    with pytest.raises(FileNotFoundError):
        corpus_kind(str(tmp_path / "data" / "cv-mini" / "xx"))
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ValueError, match="not a corpus folder"):
        corpus_kind(tmp_path / "nothing")
    assert load_corpus(tmp_path / "cv", "train")["sentence"] == ["hi"]
    assert load_corpus(folder.parent, "train")["sentence"] == ["hi"]


# ----------------------------------------------------------------------------- filter
def messy_corpus(tmp_path) -> Path:
    """A CV locale with one row per drop reason (and a few kept rows)."""
    rows = [
        {"path": "ok.wav", "sentence": "a short sentence"},                  # 0 kept
        {"path": "missing.wav", "sentence": "no clip", "seconds": None},     # 1 missing_clip
        {"path": "corrupt.mp3", "sentence": "garbage", "seconds": None},     # 2 unreadable
        {"path": "zero.wav", "sentence": "no samples", "seconds": None},     # 3 unreadable
        {"path": "blank.wav", "sentence": "   "},                            # 4 empty_text
        {"path": "long.wav", "sentence": "too long", "seconds": 2.5},        # 5 audio_too_long
        {"path": "words.wav", "sentence": "one two three four five six"},    # 6 labels_too_long
        {"path": "edge.wav", "sentence": "exactly two", "seconds": 2.0},     # 7 kept (= limit)
        {"path": "gone.wav", "sentence": "", "seconds": None},               # 8 missing_clip first
    ]
    locale = write_cv_locale(tmp_path / "en", rows)
    (locale / "clips" / "corrupt.mp3").write_bytes(b"not an mp3 " * 40)
    sf.write(str(locale / "clips" / "zero.wav"), np.zeros(0, np.float32), 16_000)
    return locale


def test_filter_corpus_reasons_and_report(tmp_path, tokenizer):
    ds = load_common_voice(messy_corpus(tmp_path), "train")
    kept, report = filter_corpus(ds, tokenizer, max_seconds=2.0, max_label_tokens=8)
    assert report["rows"] == 9 and report["kept"] == 2
    assert report["dropped"] == {"missing_clip": 2, "unreadable_audio": 2, "empty_text": 1,
                                 "audio_too_long": 1, "silent_audio": 0, "labels_too_long": 1}
    assert list(report["dropped"]) == list(DROP_REASONS)
    assert [(r["row"], r["reason"]) for r in report["dropped_rows"]] == [
        (1, "missing_clip"), (2, "unreadable_audio"), (3, "unreadable_audio"),
        (4, "empty_text"), (5, "audio_too_long"), (6, "labels_too_long"), (8, "missing_clip")]
    details = {r["row"]: r for r in report["dropped_rows"]}
    assert details[2]["path"].endswith("corrupt.mp3") and "corrupt.mp3" in details[2]["detail"]
    assert "no audio samples" in details[3]["detail"]
    assert details[5]["detail"] == "2.50 s > 2 s"
    assert details[6]["detail"] == "9 tokens > 8"  # 2 prefix + 6 words + eos
    assert kept["path"] == ["ok.wav", "edge.wav"]
    assert kept["duration"] == pytest.approx([1.0, 2.0])
    assert report["rows"] == report["kept"] + sum(report["dropped"].values())


def test_filter_corpus_label_length_counts_prefix_and_eos(tmp_path, tokenizer):
    locale = write_cv_locale(tmp_path / "en", [{"path": "a.wav", "sentence": "hello"}])
    ds = load_common_voice(locale)
    n = len(tokenizer("hello").input_ids)
    assert n == 4  # <|startoftranscript|> <|notimestamps|> hello <|endoftext|>
    assert filter_corpus(ds, tokenizer, max_label_tokens=n)[1]["kept"] == 1
    report = filter_corpus(ds, tokenizer, max_label_tokens=n - 1)[1]
    assert report["dropped"]["labels_too_long"] == 1


def test_filter_corpus_empty_and_refiltered(tmp_path, tokenizer):
    empty = load_common_voice(write_cv_locale(tmp_path / "e", []))
    kept, report = filter_corpus(empty, tokenizer)
    assert len(kept) == 0 and report == {"rows": 0, "kept": 0, "dropped_rows": [],
                                         "dropped": {r: 0 for r in DROP_REASONS},
                                         "longest_label_tokens": 0}
    ds = load_common_voice(write_cv_locale(tmp_path / "f", [{"path": "a.wav", "sentence": "x"}]))
    once, _ = filter_corpus(ds, tokenizer)
    twice, report = filter_corpus(once, tokenizer)
    assert twice.column_names == once.column_names and report["kept"] == 1


def test_filter_corpus_needs_our_schema(tokenizer):
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['sentence'\]"):
        filter_corpus(Dataset.from_dict({"audio": ["a.wav"], "text": ["x"]}), tokenizer)


# -------------------------------------------------------------------------------- CLI
def test_summary_main_prints_only_json(tmp_path, capsys):
    locale = messy_corpus(tmp_path)
    assert data_command.main(["summary", str(locale), "--max-seconds", "2", "--verbose"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert out.count("\n") == 1
    assert result == {"rows": 9, "kept": 3, "dropped": {
        "missing_clip": 2, "unreadable_audio": 2, "empty_text": 1, "audio_too_long": 1,
        "silent_audio": 0, "labels_too_long": 0}}
    assert "row 2 dropped (unreadable_audio)" in err


def test_summary_main_reports_errors(tmp_path, capsys):
    locale = write_cv_locale(tmp_path / "en", [{"path": "a.wav", "sentence": "hi"}])
    assert data_command.main(["summary", str(locale), "--split", "test"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "error:" in err and "train.tsv" in err


@pytest.mark.integration  # slower than the unit tier allows (make test-fast)
def test_summary_cli_on_cv_mini_test_split_keeps_every_row():
    """Integration: the committed cv-mini corpus (built by scripts/make_cv_mini.py)."""
    corpus = REPO / "data" / "cv-mini" / "en"
    assert (corpus / "test.tsv").is_file(), f"{corpus} is missing: run scripts/make_cv_mini.py"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "helpers.data", "summary", str(corpus),
                           "--split", "test"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result) == {"rows", "kept", "dropped"}
    assert result["rows"] > 0 and result["kept"] == result["rows"]
    assert result["dropped"] == {reason: 0 for reason in DROP_REASONS}


def test_load_hub_dataset_refuses_remote_code():
    with pytest.raises(ValueError, match="trust_remote_code is refused"):
        load_hub_dataset("some/dataset", trust_remote_code=True)
