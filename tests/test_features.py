"""helpers.data.features: log-mel features and labels through datasets.map, embedded processor."""
import copy
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset

from fixtures.data_files import tone, write_audio, write_cv_locale
from fixtures.tolerances import assert_log_mel_close
from helpers.audio import AudioError, load_audio
from helpers.data.filter import filter_corpus
from helpers.data.corpora import load_common_voice
from helpers.data.features import full_features, log_mel, mel_frames, prepare_features

pytestmark = pytest.mark.unit

SENTENCES = ["The film was much better.", 'He said "hi".', "Three", "Four clips in all."]


@pytest.fixture(scope="module")
def processor():
    from helpers.model.load import load_processor

    return load_processor("embedded")


@pytest.fixture()
def corpus(tmp_path):
    rows = [{"path": f"c{i}.wav", "sentence": s, "seconds": 0.5 + 0.5 * i}
            for i, s in enumerate(SENTENCES)]
    return load_common_voice(write_cv_locale(tmp_path / "en", rows), "train")


def test_features_and_labels(corpus, processor):
    kept, _ = filter_corpus(corpus, processor.tokenizer)
    out = prepare_features(kept, processor, batch_size=3)  # 3 + a partial batch of 1
    assert set(out.column_names) == {"audio", "sentence", "duration", "mel_frames", "mel_pad",
                                     "labels"}
    assert out["sentence"] == SENTENCES and out["duration"] == pytest.approx([0.5, 1, 1.5, 2])
    stored = out.with_format("numpy")
    features = [full_features(row["mel_frames"], row["mel_pad"]) for row in stored]
    for i, path in enumerate(out["audio"]):
        direct = processor.feature_extractor(load_audio(path), sampling_rate=16_000,
                                             return_tensors="np").input_features[0]
        assert features[i].shape == (80, 3000) and features[i].dtype == np.float32
        assert_log_mel_close(features[i], direct)   # equal to float32 rounding
        # only the frames that see audio are stored: 0.5 s -> about 50 of 3000
        assert len(stored[i]["mel_frames"]) == (len(load_audio(path)) + 400) // 160 + 1
    assert not np.allclose(features[0], features[3])  # 0.5 s vs 2 s of tone


CLIP_LENGTHS = [0, 1, 100, 399, 400, 16_000, 479_599, 479_600, 479_840, 480_000, 500_000]


@pytest.mark.parametrize("samples", CLIP_LENGTHS)
def test_compact_features_equal_the_extractors_at_every_length(processor, samples):
    """Edges: empty, shorter than a window, the last lengths computed compactly, 30 s and over."""
    rng = np.random.default_rng(samples)
    audio = (0.1 * rng.standard_normal(samples)).astype(np.float32)
    direct = processor.feature_extractor(audio, sampling_rate=16_000,
                                         return_tensors="np").input_features[0]
    frames, pad = mel_frames(audio, processor.feature_extractor)
    assert frames.dtype == np.float32 and frames.shape[1] == 80 and len(frames) <= 3000
    assert_log_mel_close(full_features(frames, pad), direct)
    assert_log_mel_close(log_mel(audio, processor.feature_extractor), direct)


def test_quiet_and_loud_clips_keep_the_extractors_floor(processor):
    """The clamp at (loudest - 8) reaches the padding value only for loud clips."""
    for level in (1e-7, 1e-3, 0.9):
        audio = np.full(32_000, level, dtype=np.float32)
        direct = processor.feature_extractor(audio, sampling_rate=16_000,
                                             return_tensors="np").input_features[0]
        assert_log_mel_close(log_mel(audio, processor.feature_extractor), direct)


def test_a_dithering_extractor_goes_the_extractors_way(processor):
    extractor = copy.deepcopy(processor.feature_extractor)
    extractor.dither = 1e-4
    frames, _ = mel_frames(np.zeros(16_000, dtype=np.float32), extractor)
    assert frames.shape == (3000, 80)


def test_labels_are_tokenizer_ids_with_prefix_and_eos(corpus, processor):
    out = prepare_features(corpus, processor)
    tok = processor.tokenizer
    start = tok.convert_tokens_to_ids(["<|startoftranscript|>", "<|notimestamps|>"])
    for sentence, labels in zip(SENTENCES, out["labels"]):
        assert labels == tok(sentence).input_ids
        assert labels[:2] == start and labels[-1] == tok.eos_token_id
        assert tok.decode(labels, skip_special_tokens=True) == sentence
    assert out.features["labels"].feature.dtype == "int64"


def test_other_columns_removed_and_audio_kept(corpus, processor):
    out = prepare_features(corpus.select(range(1)), processor)
    assert set(out.column_names) == {"audio", "sentence", "mel_frames", "mel_pad", "labels"}
    assert out["audio"] == corpus["audio"][:1]


def test_long_clip_is_an_error_naming_the_file(tmp_path, processor):
    path = write_audio(tmp_path / "long.wav", tone(8_000, 30.5), 8_000)
    ds = Dataset.from_dict({"audio": [str(path)], "sentence": ["long"]})
    with pytest.raises(ValueError, match=r"long\.wav: 30\.50 s of audio.*filter_corpus"):
        prepare_features(ds, processor)


def test_long_labels_and_bad_audio_are_errors(corpus, tmp_path, processor):
    with pytest.raises(ValueError, match=r"c0\.wav: the sentence has 9 label tokens, more than 4"):
        prepare_features(corpus.select(range(1)), processor, max_label_tokens=4)
    bad = tmp_path / "bad.flac"
    bad.write_bytes(b"nope" * 100)
    with pytest.raises(AudioError, match="bad.flac"):
        prepare_features(Dataset.from_dict({"audio": [str(bad)], "sentence": ["x"]}), processor)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['sentence'\]"):
        prepare_features(Dataset.from_dict({"audio": [str(bad)]}), processor)


def test_cache_file(corpus, tmp_path, processor):
    cache = tmp_path / "features.arrow"
    out = prepare_features(corpus, processor, batch_size=2, cache_file_name=str(cache))
    assert cache.is_file() and cache.stat().st_size > 4 * 80 * 50 * 4   # >= 50 frames a clip
    assert out["labels"][2] == processor.tokenizer("Three").input_ids


TWO_PROCESSES = """
import sys
sys.path[:0] = [{repo!r}, {tests!r}]
from fixtures.data_files import write_cv_locale
from helpers.data.corpora import load_common_voice
from helpers.data.features import full_features, log_mel, mel_frames, prepare_features
from helpers.model.load import load_processor
processor = load_processor("embedded")
rows = [{{"path": f"c{{i}}.wav", "sentence": "two words"}} for i in range(4)]
ds = load_common_voice(write_cv_locale({tmp!r}, rows), "train")
one = prepare_features(ds, processor)  # torch's thread pool is now in use in this process
two = prepare_features(ds, processor, batch_size=1, num_proc=2)
assert two["labels"] == one["labels"]
assert two["mel_pad"] == one["mel_pad"]
assert all((a == b).all() for a, b in zip(two.with_format("numpy")["mel_frames"],
                                          one.with_format("numpy")["mel_frames"]))
print("OK")
"""


@pytest.mark.integration  # slower than the unit tier allows (make test-fast)
def test_two_processes_do_not_deadlock(tmp_path):
    """num_proc after the parent used torch: forked workers must not hang (OpenMP + fork)."""
    repo = Path(__file__).resolve().parents[1]
    script = TWO_PROCESSES.format(repo=str(repo), tests=str(repo / "tests"),
                                  tmp=str(tmp_path / "en"))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the workers too
        proc.communicate()
        pytest.fail("prepare_features(num_proc=2) hung")
    assert proc.returncode == 0 and out.strip() == "OK", err[-3000:]
