"""Bad inputs and what happens to them: one test per row of docs/bad-input.md's table.

BAD_INPUTS below is that table (the copy in docs/bad-input.md is checked against it). Each
row's test feeds the bad input through the code a user runs (the corpus filter, the loaders,
the run directory) and checks for a clear error naming the file or row, or a skip that is
counted in the report and listed in dropped_rows.jsonl.
"""
import ast
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration

from fixtures.data_files import tone, write_audio, write_cv_locale, write_tone
from helpers.model import ct2, load as models
from helpers.model.adapters import add_lora, attach_adapter, save_adapter
from helpers.audio import SAMPLE_RATE, AudioError, load_audio
from helpers.config import stage_config, start_run
from helpers.data.filter import DROP_REASONS, filter_corpus
from helpers.data.corpora import load_common_voice
from helpers.data.features import prepare_features
from helpers.run import MissingStageError, RunDir

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
THIS = "tests/test_bad_inputs.py"

# (bad input, what happens, test). A bare test name lives in this file; "file::name" elsewhere.
BAD_INPUTS = [
    ("corrupt MP3 (garbage bytes, or a valid header over undecodable frames)",
     "dropped as `unreadable_audio`, the decoder's error and the file in the detail; "
     "`load_audio` raises `AudioError` naming the file",
     "test_corrupt_mp3_is_dropped_as_unreadable"),
    ("MP3 cut short (interrupted download: the header promises more audio than decodes)",
     "dropped as `unreadable_audio` (\"the file is cut short: its header promises 3.00 s but "
     "only 1.37 s decode\")",
     "test_cut_short_mp3_is_dropped_as_unreadable"),
    ("zero-length file (0 bytes, or a valid header with no samples)",
     "dropped as `unreadable_audio` (\"the file is empty (0 bytes)\" / \"contains no audio "
     "samples\")", "test_zero_length_file_is_dropped_as_unreadable"),
    ("float WAV with NaN or infinite samples",
     "dropped as `unreadable_audio`; `load_audio` raises `AudioError` naming the file",
     "test_nan_samples_are_dropped_as_unreadable"),
    ("silent clip (loudest sample below -60 dBFS)",
     "dropped from training and test data as `silent_audio` (counted, listed); "
     "`helpers.transcribe` still transcribes it", "test_silent_clip_is_dropped_as_silent"),
    ("clip over 30 s",
     "dropped as `audio_too_long` (\"31.00 s > 30 s\", from the header: not decoded); "
     "`prepare_features` on unfiltered rows raises naming the file",
     "test_clip_over_30_seconds_is_dropped_as_too_long"),
    ("stereo 44.1 kHz clip", "kept: channels averaged to mono, resampled to 16 kHz (soxr)",
     "test_stereo_44k_clip_is_kept_as_16k_mono"),
    ("8 kHz clip", "kept: resampled to 16 kHz (soxr); its duration is unchanged",
     "test_8k_clip_is_kept_and_resampled"),
    ("TSV row whose clip is missing", "dropped as `missing_clip`; the row number and path are "
     "in `dropped_rows.jsonl`", "test_tsv_row_without_its_clip_is_dropped_as_missing"),
    ("empty sentence (empty or only spaces)", "dropped as `empty_text`",
     "test_empty_sentence_is_dropped_as_empty_text"),
    ("sentence longer than 448 label tokens",
     "dropped as `labels_too_long` (\"503 tokens > 448\"); `prepare_features` on unfiltered "
     "rows raises naming the file", "test_sentence_over_448_label_tokens_is_dropped"),
    ("TSV with a missing column", "`ValueError`: \"train.tsv: missing column(s) ['sentence']; "
     "the header has [...]\"", "test_tsv_missing_a_column_names_file_and_column"),
    ("TSV row with an extra or missing field", "`ValueError` naming the TSV and the line number",
     "test_tsv_row_with_wrong_field_count_names_the_line"),
    ("every row of a corpus bad in some way",
     "rows read = kept + dropped per reason, checked in code and printed; "
     "`corpus_report.json` and `dropped_rows.jsonl` in the run directory",
     "test_prepare_run_data_accounts_for_every_row"),
    ("unknown language name (or a non-English language for an English-only model)",
     "`ValueError`: \"Unknown language 'klingon' ... Closest: [...]\"; names and codes are "
     "accepted in any case (\"Hindi\", \"hi\")",
     "test_unknown_language_is_refused_with_the_closest_names"),
    ("adapter trained on a different base model",
     "`ValueError` naming the adapter folder and the base model recorded in it",
     "test_adapter_from_another_base_model_is_refused"),
    ("adapter saved only as a pickle (`adapter_model.bin`)",
     "`ValueError`: a pickle can run code when loaded; never unpickled",
     "test_pickle_only_adapter_is_refused"),
    ("model source that does not exist",
     "`FileNotFoundError` naming the source and listing the accepted kinds of source",
     "test_model_source_that_does_not_exist_is_named"),
    ("model folder with only pickled weights (`pytorch_model.bin`)",
     "`UnsafeWeightsError` naming the folder and files; loaded only with "
     "`WHISPER_LORA_ALLOW_PICKLE=1`", "test_pickle_only_model_folder_is_refused_unless_opted_in"),
    ("truncated or garbage CTranslate2 `model.bin`",
     "`Ct2FormatError` naming the file, the byte offset and what was expected; nothing is "
     "cached", "test_truncated_or_garbage_model_bin_is_a_format_error"),
    ("random, truncated or bit-flipped `model.bin` bytes (fuzzed)",
     "only ever `Ct2FormatError`; a declared size larger than the file allocates nothing",
     "tests/test_ct2.py::test_flipped_header_bits_raise_only_format_error"),
    ("run directory missing an earlier stage's files",
     "`MissingStageError` naming the missing file, the notebook that writes it and the run",
     "test_run_dir_missing_an_earlier_stage_names_the_notebook"),
    ("a crash while metrics.json / predictions.jsonl / model.bin is written",
     "the old file stays whole and no temporary file is left (temp file + fsync + rename)",
     "test_failed_writes_keep_the_old_file"),
    ("a crash while the adapter is saved",
     "the old adapter stays whole and no staging folder is left",
     "test_failed_adapter_save_keeps_the_old_adapter"),
    ("training killed with SIGKILL after a checkpoint",
     "the run directory stays consistent: half-written checkpoints and staging files are "
     "removed, `python -m helpers.train --resume` continues from the last complete checkpoint "
     "and ends where an uninterrupted run ends",
     "tests/test_resume.py::test_killed_training_resumes_and_ends_where_an_uninterrupted_run_ends"),
    ("Hub dataset that needs its own loading script (`trust_remote_code`)",
     "`ValueError`: refused, never run", "tests/test_data.py::test_load_hub_dataset_refuses_remote_code"),
]
META_TESTS = {"test_table_names_existing_tests", "test_docs_bad_input_table_matches"}


@pytest.fixture(scope="module")
def tokenizer():
    """The embedded tiny.en tokenizer (English-only: 3 prefix tokens + eos around the text)."""
    return models.load_processor("embedded").tokenizer


def one_row(tmp_path, tokenizer, clip_name: str, sentence: str = "a short sentence", **kw):
    """Filter a one-row Common Voice corpus whose clip is already in tmp_path/en/clips/."""
    locale = write_cv_locale(tmp_path / "en", [{"path": clip_name, "sentence": sentence,
                                                "seconds": None}])
    return filter_corpus(load_common_voice(locale), tokenizer, **kw)


def clip_path(tmp_path, name: str) -> Path:
    """Where one_row's corpus expects the clip `name`."""
    (tmp_path / "en" / "clips").mkdir(parents=True, exist_ok=True)
    return tmp_path / "en" / "clips" / name


def dropped_as(report: dict, reason: str) -> dict:
    """The single dropped row of a one-row report, checked to have `reason`."""
    assert report["rows"] == 1 and report["kept"] == 0, report
    assert report["dropped"] == {r: int(r == reason) for r in DROP_REASONS}
    (row,) = report["dropped_rows"]
    assert row["reason"] == reason and row["row"] == 0
    return row


# ---------------------------------------------------------------------------- audio
def test_corrupt_mp3_is_dropped_as_unreadable(tmp_path, tokenizer):
    garbage = clip_path(tmp_path, "garbage.mp3")
    garbage.write_bytes(b"this is not an mp3 " * 40)
    row = dropped_as(one_row(tmp_path, tokenizer, "garbage.mp3")[1], "unreadable_audio")
    assert "garbage.mp3" in row["detail"] and "Re-encode" in row["detail"]
    frames = write_tone(tmp_path / "good.mp3", 48_000, 3.0).read_bytes()
    body = np.random.default_rng(0).integers(0, 256, len(frames) - 1500, dtype=np.uint8)
    clip_path(tmp_path, "bad_frames.mp3").write_bytes(frames[:1500] + body.tobytes())
    assert sf.info(str(clip_path(tmp_path, "bad_frames.mp3"))).duration > 2  # header reads fine
    row = dropped_as(one_row(tmp_path, tokenizer, "bad_frames.mp3")[1], "unreadable_audio")
    assert "bad_frames.mp3: cannot decode" in row["detail"]
    with pytest.raises(AudioError, match="bad_frames.mp3"):
        load_audio(clip_path(tmp_path, "bad_frames.mp3"))


def test_cut_short_mp3_is_dropped_as_unreadable(tmp_path, tokenizer):
    whole = write_tone(tmp_path / "whole.mp3", 48_000, 3.0).read_bytes()
    clip_path(tmp_path, "half.mp3").write_bytes(whole[:len(whole) // 2])
    row = dropped_as(one_row(tmp_path, tokenizer, "half.mp3")[1], "unreadable_audio")
    assert re.search(r"half\.mp3: the file is cut short: its header promises 3\.00 s but only "
                     r"1\.\d\d s decode", row["detail"]), row["detail"]


def test_zero_length_file_is_dropped_as_unreadable(tmp_path, tokenizer):
    clip_path(tmp_path, "empty.mp3").write_bytes(b"")
    row = dropped_as(one_row(tmp_path, tokenizer, "empty.mp3")[1], "unreadable_audio")
    assert "empty.mp3: the file is empty (0 bytes)" in row["detail"]
    sf.write(str(clip_path(tmp_path, "none.wav")), np.zeros(0, np.float32), 16_000)
    row = dropped_as(one_row(tmp_path, tokenizer, "none.wav")[1], "unreadable_audio")
    assert "none.wav: contains no audio samples" in row["detail"]


def test_nan_samples_are_dropped_as_unreadable(tmp_path, tokenizer):
    data = tone(16_000, 1.0)
    data[100] = np.nan
    write_audio(clip_path(tmp_path, "nan.wav"), data, 16_000)  # float WAV keeps the NaN
    row = dropped_as(one_row(tmp_path, tokenizer, "nan.wav")[1], "unreadable_audio")
    assert "nan.wav: holds NaN or infinite samples" in row["detail"]
    with pytest.raises(AudioError, match="nan.wav"):
        load_audio(clip_path(tmp_path, "nan.wav"))


@pytest.mark.integration  # slower than the unit tier allows (make test-fast)
def test_silent_clip_is_dropped_as_silent(tmp_path, tokenizer):
    from helpers.transcribe.decode import transcribe_arrays

    write_audio(clip_path(tmp_path, "silence.mp3"), np.zeros(96_000, np.float32), 48_000)
    row = dropped_as(one_row(tmp_path, tokenizer, "silence.mp3")[1], "silent_audio")
    assert "digital silence" in row["detail"] and row["path"].endswith("silence.mp3")
    hum = 10 ** (-70 / 20) * np.sign(tone(48_000, 2.0))  # a -70 dBFS square wave
    write_audio(clip_path(tmp_path, "hum.wav"), hum.astype(np.float32), 48_000)
    row = dropped_as(one_row(tmp_path, tokenizer, "hum.wav")[1], "silent_audio")
    assert "(-70 dBFS)" in row["detail"]
    quiet = 10 ** (-50 / 20) * tone(48_000, 2.0, amp=1.0)  # quiet but audible: kept
    write_audio(clip_path(tmp_path, "quiet.wav"), quiet, 48_000)
    assert one_row(tmp_path, tokenizer, "quiet.wav")[1]["kept"] == 1
    audio = load_audio(clip_path(tmp_path, "silence.mp3"))  # transcription still takes it
    assert len(audio) == 2 * SAMPLE_RATE and not audio.any()
    processor = models.load_processor("embedded")
    texts = transcribe_arrays(tiny_whisper(51864).eval(), processor, [audio], max_new_tokens=3)
    assert len(texts) == 1 and isinstance(texts[0], str)


def test_clip_over_30_seconds_is_dropped_as_too_long(tmp_path, tokenizer):
    write_tone(clip_path(tmp_path, "long.wav"), 16_000, 31.0)
    kept, report = one_row(tmp_path, tokenizer, "long.wav")
    assert dropped_as(report, "audio_too_long")["detail"] == "31.00 s > 30 s"
    unfiltered = load_common_voice(tmp_path / "en")
    with pytest.raises(ValueError, match=r"long\.wav: 31\.00 s of audio.*filter_corpus"):
        prepare_features(unfiltered, models.load_processor("embedded"))


def test_stereo_44k_clip_is_kept_as_16k_mono(tmp_path, tokenizer):
    left, right = tone(44_100, 1.5, 440.0), tone(44_100, 1.5, 440.0, amp=0.1)
    write_audio(clip_path(tmp_path, "stereo.flac"), np.stack([left, right], axis=1), 44_100)
    kept, report = one_row(tmp_path, tokenizer, "stereo.flac")
    assert report["kept"] == 1 and kept["duration"] == pytest.approx([1.5])
    audio = load_audio(clip_path(tmp_path, "stereo.flac"))
    assert audio.ndim == 1 and len(audio) == 24_000
    assert np.abs(audio).max() == pytest.approx(0.3, abs=0.01)  # (0.5 + 0.1) / 2


def test_8k_clip_is_kept_and_resampled(tmp_path, tokenizer):
    write_tone(clip_path(tmp_path, "phone.wav"), 8_000, 2.0)
    kept, report = one_row(tmp_path, tokenizer, "phone.wav")
    assert report["kept"] == 1 and kept["duration"] == pytest.approx([2.0])
    audio = load_audio(clip_path(tmp_path, "phone.wav"))
    assert len(audio) == 2 * SAMPLE_RATE
    spectrum = np.abs(np.fft.rfft(audio))
    assert np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE)[spectrum.argmax()] == pytest.approx(440, abs=1)


# ---------------------------------------------------------------------------- TSV rows
def test_tsv_row_without_its_clip_is_dropped_as_missing(tmp_path, tokenizer):
    locale = write_cv_locale(tmp_path / "en", [{"path": "here.wav", "sentence": "one"},
                                               {"path": "gone.mp3", "sentence": "two",
                                                "seconds": None}])
    kept, report = filter_corpus(load_common_voice(locale), tokenizer)
    assert (report["rows"], report["kept"], report["dropped"]["missing_clip"]) == (2, 1, 1)
    (row,) = report["dropped_rows"]
    assert row["row"] == 1 and row["path"] == str((locale / "clips" / "gone.mp3").resolve())
    assert kept["path"] == ["here.wav"]


def test_empty_sentence_is_dropped_as_empty_text(tmp_path, tokenizer):
    write_tone(clip_path(tmp_path, "a.wav"), 16_000, 1.0)
    for sentence in ("", "   "):
        assert dropped_as(one_row(tmp_path, tokenizer, "a.wav", sentence)[1], "empty_text")


def test_sentence_over_448_label_tokens_is_dropped(tmp_path, tokenizer):
    write_tone(clip_path(tmp_path, "a.wav"), 16_000, 1.0)
    sentence = " ".join(["word"] * 500)
    assert len(tokenizer(sentence).input_ids) == 503  # <|sot|> <|notimestamps|> ... <|eot|>
    row = dropped_as(one_row(tmp_path, tokenizer, "a.wav", sentence)[1], "labels_too_long")
    assert row["detail"] == "503 tokens > 448"
    with pytest.raises(ValueError, match=r"a\.wav: the sentence has 503 label tokens"):
        prepare_features(load_common_voice(tmp_path / "en"), models.load_processor("embedded"))


def test_tsv_missing_a_column_names_file_and_column(tmp_path):
    locale = write_cv_locale(tmp_path / "en", [{"path": "a.wav", "sentence": "hi"}],
                             columns=["client_id", "path", "up_votes"])
    with pytest.raises(ValueError, match=r"en/train\.tsv: missing column\(s\) \['sentence'\]; "
                                         r"the header has \['client_id', 'path', 'up_votes'\]"):
        load_common_voice(locale, "train")


def test_tsv_row_with_wrong_field_count_names_the_line(tmp_path):
    locale = write_cv_locale(tmp_path / "en", [{"path": f"{i}.wav", "sentence": "x"}
                                               for i in range(3)])
    tsv = locale / "train.tsv"
    lines = tsv.read_text().splitlines()
    lines[3] = lines[3].rsplit("\t", 1)[0]  # the third row loses its last field
    tsv.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"train\.tsv, line 4: 4 fields where the header has 5"):
        load_common_voice(locale, "train")


def bad_corpus(root: Path) -> Path:
    """A Common Voice locale whose train split has one row per drop reason, plus a test split."""
    long_text = " ".join(["word"] * 500)
    rows = [{"path": "ok1.wav", "sentence": "first good clip"},
            {"path": "missing.mp3", "sentence": "no clip", "seconds": None},
            {"path": "corrupt.mp3", "sentence": "garbage", "seconds": None},
            {"path": "empty.wav", "sentence": ""},
            {"path": "long.wav", "sentence": "too long", "seconds": 31.0},
            {"path": "silent.wav", "sentence": "nothing to hear", "seconds": None},
            {"path": "words.wav", "sentence": long_text},
            {"path": "ok2.wav", "sentence": "second good clip"}]
    locale = write_cv_locale(root, rows)
    (locale / "clips" / "corrupt.mp3").write_bytes(b"not an mp3 " * 40)
    write_audio(locale / "clips" / "silent.wav", np.zeros(16_000, np.float32), 16_000)
    write_cv_locale(root, [{"path": "t1.wav", "sentence": "test one"},
                           {"path": "t2.mp3", "sentence": "test two", "seconds": None}], "test")
    return locale


def test_prepare_run_data_accounts_for_every_row(tmp_path, capfd):
    from helpers.data.prepare import prepare_run_data

    corpus = bad_corpus(tmp_path / "cv" / "en")
    run, config = start_run("bad", "embedded", tmp_path / "runs", corpus=str(corpus))
    reports = prepare_run_data(config, run, models.load_processor("embedded"))
    saved = json.loads((run.path / "corpus_report.json").read_text())
    assert saved == reports and set(saved) == {"train", "test"}
    assert not (run.path / "dev_clips.jsonl").exists()  # no dev split: 01 lists no clips for 04
    assert saved["train"]["dropped"] == {reason: 1 for reason in DROP_REASONS}
    assert (saved["train"]["rows"], saved["train"]["kept"]) == (8, 2)
    assert (saved["test"]["rows"], saved["test"]["kept"], saved["test"]["dropped"]["missing_clip"]) \
        == (2, 1, 1)
    for report in saved.values():
        assert report["rows"] == report["kept"] + sum(report["dropped"].values())
    lines = (run.path / "dropped_rows.jsonl").read_text().splitlines()
    dropped = [json.loads(line) for line in lines]
    assert [(d["split"], d["row"], d["reason"]) for d in dropped] == [
        ("train", 1, "missing_clip"), ("train", 2, "unreadable_audio"), ("train", 3, "empty_text"),
        ("train", 4, "audio_too_long"), ("train", 5, "silent_audio"), ("train", 6, "labels_too_long"),
        ("test", 1, "missing_clip")]
    assert all(Path(d["path"]).name in d["detail"] or d["reason"] not in
               ("missing_clip", "unreadable_audio") for d in dropped)
    err = capfd.readouterr().err
    assert "8 rows read = 2 kept + 6 dropped (missing_clip 1, unreadable_audio 1, empty_text 1, " \
           "audio_too_long 1, silent_audio 1, labels_too_long 1)" in err
    assert "2 rows read = 1 kept + 1 dropped (missing_clip 1)" in err
    assert len(run.read_jsonl("test_clips.jsonl", "01")) == 1


# ---------------------------------------------------------------------------- models
def tiny_whisper(vocab_size=51865, d_model=64, seed=0) -> WhisperForConditionalGeneration:
    """A random-weight Whisper of `d_model` width (2 + 2 layers)."""
    torch.manual_seed(seed)
    config = WhisperConfig(vocab_size=vocab_size, d_model=d_model, encoder_layers=2,
                           decoder_layers=2, encoder_attention_heads=4,
                           decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128)
    return WhisperForConditionalGeneration(config)


def test_unknown_language_is_refused_with_the_closest_names():
    with pytest.raises(ValueError, match=r"Unknown language 'hindu'.*Closest: \['hindi'"):
        models.load_processor(models.EMBEDDED_BASE, language="hindu")
    with pytest.raises(ValueError, match="Unknown language 'klingon'"):
        models.load_processor("embedded", language="klingon")
    with pytest.raises(ValueError, match="English-only"):
        models.load_processor("embedded", language="marathi")
    with pytest.raises(ValueError, match=r"has no <\|yue\|> token"):  # large-v3 only
        models.load_processor(models.EMBEDDED_BASE, language="cantonese")
    for spelling in ("Hindi", " HINDI", "hi", "<|hi|>"):
        ids = models.load_processor(models.EMBEDDED_BASE, language=spelling).tokenizer("x").input_ids
        assert ids[:2] == [50258, 50276], spelling


def test_adapter_from_another_base_model_is_refused(tmp_path):
    model = add_lora(tiny_whisper(d_model=64), gradient_checkpointing=False)
    save_adapter(model, tmp_path / "adapter", base_source="openai/whisper-small")
    with pytest.raises(ValueError, match=r"(?s)adapter: this adapter does not fit the base model"
                                         r".*trained on: openai/whisper-small"):
        attach_adapter(tiny_whisper(d_model=32), tmp_path / "adapter")


def test_pickle_only_adapter_is_refused(tmp_path):
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "x"}))
    (folder / "adapter_model.bin").write_bytes(b"never unpickled")
    with pytest.raises(ValueError, match=r"adapter: no adapter_model\.safetensors.*pickle"):
        attach_adapter(tiny_whisper(), folder)


@pytest.mark.parametrize("source", ["no-such-model", "./missing/dir", "/nope/a/b", "a b/c"])
def test_model_source_that_does_not_exist_is_named(source):
    with pytest.raises(FileNotFoundError) as err:
        models.load_model(source, device="cpu")
    assert repr(source) in str(err.value) and "CTranslate2" in str(err.value)


def pickled_model_dir(path: Path) -> Path:
    """A local Hugging Face folder whose only weights are a torch.save pickle."""
    model = tiny_whisper(vocab_size=51864)
    path.mkdir()
    model.config.save_pretrained(path)
    models.load_processor("embedded").save_pretrained(path)
    torch.save(model.state_dict(), path / "pytorch_model.bin")
    return path


def test_pickle_only_model_folder_is_refused_unless_opted_in(tmp_path, monkeypatch):
    folder = pickled_model_dir(tmp_path / "pickled")
    monkeypatch.delenv(models.PICKLE_ENV, raising=False)
    with pytest.raises(models.UnsafeWeightsError, match=r"pickled: its only weights are "
                                                        r"\['pytorch_model\.bin'\]"):
        models.load_model(str(folder), device="cpu")
    monkeypatch.setenv(models.PICKLE_ENV, "1")
    model, _ = models.load_model(str(folder), device="cpu")
    assert model.config.d_model == 64


def test_truncated_or_garbage_model_bin_is_a_format_error(tmp_path, monkeypatch):
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    good = tmp_path / "good"
    good.mkdir()
    ct2.write_model_bin(good / "model.bin", ct2.ct2_variables_from_hf(tiny_whisper()),
                        ct2.PROJECTION_ALIAS)
    data = (good / "model.bin").read_bytes()
    base = models.embedded_source(models.EMBEDDED_BASE).data_dir
    for name, content in (("truncated", data[:len(data) * 2 // 3]),
                          ("garbage", np.random.default_rng(1).bytes(5000))):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "model.bin").write_bytes(content)
        (folder / "tokenizer.json").write_bytes((base / "tokenizer.json").read_bytes())
        with pytest.raises(ct2.Ct2FormatError, match=rf"{name}/model\.bin: at byte offset \d+ "
                                                     "expected"):
            models.load_model(str(folder), device="cpu")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


# ---------------------------------------------------------------------------- run directory
def test_run_dir_missing_an_earlier_stage_names_the_notebook(tmp_path):
    with pytest.raises(MissingStageError, match=r"never-started/config\.json is missing: run "
                                                r"notebook 01.*RUN_NAME='never-started'"):
        stage_config("never-started", tmp_path)
    run, _ = start_run("r", "embedded", tmp_path)
    with pytest.raises(MissingStageError, match=r"r/features/train is missing: run notebook 01"):
        run.require("features/train", "notebook 01")
    with pytest.raises(MissingStageError, match=r"predictions\.jsonl is missing: run notebook 05"):
        run.read_jsonl("predictions.jsonl", "notebook 05 (inference)")


def test_failed_writes_keep_the_old_file(tmp_path, monkeypatch):
    import os

    run = RunDir("r", tmp_path)
    run.update_metrics(base_wer=0.5)
    run.write_jsonl("predictions.jsonl", [{"reference": "a", "base": "a"}])
    ct2.write_model_bin(tmp_path / "model.bin", {"x": np.ones(3, np.float32)})
    before = {p.name: p.read_bytes() for p in [*run.path.iterdir(), tmp_path / "model.bin"]}
    with pytest.raises(TypeError):  # not JSON-serializable: fails before any byte is written
        run.update_metrics(finetuned_wer=object())
    with pytest.raises(TypeError):
        run.write_jsonl("predictions.jsonl", [{"reference": "a"}, {"base": {1, 2}}])
    with pytest.raises(TypeError):  # a dtype model.bin cannot hold, after some bytes are out
        ct2.write_model_bin(tmp_path / "model.bin", {"a": np.ones(2, np.float32),
                                                     "b": np.ones(2, np.complex64)})

    def crash(*args):
        raise OSError("killed while renaming")

    monkeypatch.setattr(os, "replace", crash)  # the file is fully written, the rename fails
    with pytest.raises(OSError, match="killed"):
        run.update_metrics(finetuned_wer=0.25)
    with pytest.raises(OSError, match="killed"):
        run.write_jsonl("predictions.jsonl", [{"reference": "b", "base": "b"}])
    monkeypatch.undo()
    after = {p.name: p.read_bytes() for p in [*run.path.iterdir(), tmp_path / "model.bin"]}
    assert after == before  # same files (no temp file left), same bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin", "r"]


def test_failed_adapter_save_keeps_the_old_adapter(tmp_path, monkeypatch):
    model = add_lora(tiny_whisper(), gradient_checkpointing=False)
    save_adapter(model, tmp_path / "adapter", base_source="embedded")
    before = {p.name: p.read_bytes() for p in (tmp_path / "adapter").iterdir()}
    save = model.save_pretrained

    def crash(folder, **kwargs):
        save(folder, **kwargs)
        (Path(folder) / "adapter_model.safetensors").write_bytes(b"half")  # a partial write
        raise OSError("killed while saving")

    monkeypatch.setattr(model, "save_pretrained", crash)
    with pytest.raises(OSError, match="killed"):
        save_adapter(model, tmp_path / "adapter", base_source="embedded")
    assert {p.name: p.read_bytes() for p in (tmp_path / "adapter").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]


# ---------------------------------------------------------------------------- the table
def test_table_names_existing_tests():
    """Every row names a test that exists; every bad-input test here has a row."""
    named = [test for _, _, test in BAD_INPUTS]
    assert len(named) == len(set(named))
    for test in named:
        file, _, name = test.rpartition("::")
        source = (REPO / (file or THIS)).read_text()
        functions = {n.name for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef)}
        assert name in functions, f"{file or THIS} has no test {name}"
    here = {n.name for n in ast.parse(Path(__file__).read_text()).body
            if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}
    assert here - META_TESTS == {t for t in named if "::" not in t}


def docs_table() -> list[list[str]] | None:
    """Rows (cells) of the first table under docs/bad-input.md's "Bad input" heading, or None."""
    text = (REPO / "docs" / "bad-input.md").read_text(encoding="utf-8")
    match = re.search(r"^#+ Bad input.*?$(.*?)(?=^#+ |\Z)", text, re.M | re.S)
    if not match:
        return None
    lines = [line.strip() for line in match.group(1).splitlines() if line.strip().startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def table_markdown() -> str:
    """BAD_INPUTS as the markdown table docs/bad-input.md carries under "Bad input"."""
    lines = ["| bad input | what happens | test |", "|---|---|---|"]
    for bad, outcome, test in BAD_INPUTS:
        shown = test if "::" in test else f"{THIS}::{test}"
        lines.append(f"| {bad} | {outcome} | `{shown}` |")
    return "\n".join(lines)


def test_docs_bad_input_table_matches():
    """docs/bad-input.md's "Bad input" table lists exactly BAD_INPUTS' tests, in order."""
    rows = docs_table()
    assert rows is not None, ('docs/bad-input.md has no "Bad input" section: paste '
                              "tests/test_bad_inputs.py::table_markdown() under a '# Bad input' "
                              "heading")
    tests = [row[-1].strip("`").rpartition("::")[2] for row in rows]
    assert tests == [test.rpartition("::")[2] for _, _, test in BAD_INPUTS], table_markdown()
    assert [row[0] for row in rows] == [bad for bad, _, _ in BAD_INPUTS], table_markdown()
