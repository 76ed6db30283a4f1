"""TIMESTAMP_SHARE: timestamp labels for a share of the training clips (helpers.data.timestamps),
through notebook 01's features, the stream, the collator and the run's config."""
import numpy as np
import pytest
import torch
from datasets import Dataset

from fixtures.data_files import tone, write_audio
from helpers.train.collator import IGNORE_INDEX, SpeechSeq2SeqCollator
from helpers.config import config_from_dict, make_config, PRESETS, RunConfig, start_run
from helpers.data.features import prepare_features
from helpers.data.streaming import stream_features
from helpers.data.timestamps import (snap_timestamp, speech_end, timestamp_flags, timestamp_labels, timestamp_token)

pytestmark = pytest.mark.unit

RATE = 16_000
SENTENCES = ["Hello there.", "A second clip.", "Three words here.", "Four clips in all."]


@pytest.fixture(scope="module")
def processor():
    from helpers.model.load import load_processor

    return load_processor("embedded")


def tokens(processor, ids):
    return processor.tokenizer.convert_ids_to_tokens(ids)


def padded_tone(lead: float, speech: float, tail: float, rate: int = RATE) -> np.ndarray:
    """`lead` s of silence, `speech` s of a 440 Hz tone, `tail` s of silence."""
    return np.concatenate([np.zeros(int(lead * rate), np.float32), tone(rate, speech),
                           np.zeros(int(tail * rate), np.float32)])


@pytest.fixture()
def clips(tmp_path):
    """Four 48 kHz WAV clips whose speech (a tone) ends at 1.1, 1.6, 2.1 and 2.6 s."""
    paths = [write_audio(tmp_path / f"c{i}.wav", padded_tone(0.4, 0.7 + 0.5 * i, 0.6, 48_000), 48_000)
             for i in range(len(SENTENCES))]
    return Dataset.from_dict({"audio": [str(p) for p in paths], "sentence": SENTENCES})


@pytest.mark.parametrize("seconds,expected", [
    (1.234, 1.24), (1.229, 1.22), (0.0, 0.0), (-0.3, 0.0), (29.999, 30.0), (45.0, 30.0)])
def test_snap_to_the_0_02_grid_within_30_s(seconds, expected):
    assert snap_timestamp(seconds) == expected


def test_labels_english_only_decode_back(processor):
    ids = timestamp_labels(processor.tokenizer, "Hello there.", 1.234)
    assert tokens(processor, ids) == ["<|startoftranscript|>", "<|0.00|>", "Hello", "Ġthere",
                                      ".", "<|1.24|>", "<|endoftext|>"]
    assert processor.tokenizer.decode(ids, decode_with_timestamps=True) == \
        "<|startoftranscript|><|0.00|>Hello there.<|1.24|><|endoftext|>"
    plain = processor.tokenizer("Hello there.").input_ids      # the recipe's labels
    assert ids[1:-2] == [timestamp_token(processor.tokenizer, 0)] + plain[2:-1]
    assert timestamp_token(processor.tokenizer, 45) == processor.tokenizer.convert_tokens_to_ids("<|30.00|>")


def test_labels_multilingual_keep_language_and_task(tmp_path):
    from fixtures.tiny_runs import tiny_multilingual_dir
    from helpers.model.load import load_processor

    ml = load_processor(str(tiny_multilingual_dir(tmp_path / "ml")), language="hindi")
    ids = timestamp_labels(ml.tokenizer, "नमस्ते", 45.0)
    names = ml.tokenizer.convert_ids_to_tokens(ids)
    assert names[:4] == ["<|startoftranscript|>", "<|hi|>", "<|transcribe|>", "<|0.00|>"]
    assert names[-2:] == ["<|30.00|>", "<|endoftext|>"] and "<|notimestamps|>" not in names
    assert ml.tokenizer.decode(ids, skip_special_tokens=True) == "नमस्ते"


def test_speech_end_of_a_clip_with_known_silence():
    audio = padded_tone(0.5, 1.3, 0.8)              # speech ends at 1.80 s, clip at 2.60 s
    assert abs(speech_end(audio, RATE) - 1.8) <= 0.02 + 1e-9   # one 20 ms frame
    assert speech_end(padded_tone(0.2, 31.0, 1.0), RATE) == 30.0  # clamped to the window


def test_flags_respect_the_share_and_the_seed():
    assert sum(timestamp_flags(10, 0.3, seed=1)) == 3
    assert sum(timestamp_flags(7, 0.5, seed=1)) == round(3.5)
    assert timestamp_flags(50, 0.4, seed=1) == timestamp_flags(50, 0.4, seed=1)
    assert timestamp_flags(50, 0.4, seed=1) != timestamp_flags(50, 0.4, seed=2)
    assert not any(timestamp_flags(5, 0.0, 1)) and all(timestamp_flags(5, 1.0, 1))
    with pytest.raises(ValueError, match="between 0 and 1"):
        timestamp_flags(5, 30, 1)   # a percentage where a share was meant


def test_share_0_labels_are_the_recipes(clips, processor):
    out = prepare_features(clips, processor, timestamp_share=0.0)
    assert "timestamps" not in out.column_names
    assert out["labels"] == processor.tokenizer(SENTENCES).input_ids


def test_share_1_labels_carry_each_clips_speech_end(clips, processor):
    out = prepare_features(clips, processor, timestamp_share=1.0, batch_size=3)
    assert out["timestamps"] == [True] * 4
    for i, (sentence, ids) in enumerate(zip(SENTENCES, out["labels"])):
        end = float(tokens(processor, [ids[-2]])[0].strip("<|>"))
        assert abs(end - (1.1 + 0.5 * i)) <= 0.04, (sentence, end)   # 48 -> 16 kHz, 20 ms frames
        assert ids == timestamp_labels(processor.tokenizer, sentence, end)


def test_share_half_picks_half_the_rows_the_same_way_when_streamed(clips, processor):
    stored = prepare_features(clips, processor, timestamp_share=0.5, seed=3)
    no_times = processor.tokenizer.convert_tokens_to_ids("<|notimestamps|>")
    assert sum(stored["timestamps"]) == 2
    for flag, ids in zip(stored["timestamps"], stored["labels"]):
        assert (no_times not in ids) == flag
    streamed = {row["audio"]: row for row in stream_features(clips, processor, seed=3,
                                                              shuffle_buffer=4, timestamp_share=0.5)}
    for row in stored:
        assert streamed[row["audio"]]["labels"] == row["labels"]
        assert streamed[row["audio"]]["timestamps"] == row["timestamps"]


def test_collator_strips_only_the_start_token_from_a_mixed_batch(processor):
    sot = processor.tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
    labels = [timestamp_labels(processor.tokenizer, "Hello there.", 1.0),
              processor.tokenizer("A longer second sentence.").input_ids]
    rows = [{"input_features": np.zeros((80, 3000), np.float32), "labels": ids} for ids in labels]
    batch = SpeechSeq2SeqCollator(processor, sot)(rows)["labels"]
    assert tokens(processor, batch[0, :2].tolist()) == ["<|0.00|>", "Hello"]
    assert tokens(processor, batch[1, :1].tolist()) == ["<|notimestamps|>"]
    assert batch[0, len(labels[0]) - 1:].eq(IGNORE_INDEX).all()
    assert batch[0, len(labels[0]) - 2].item() == processor.tokenizer.eos_token_id
    assert isinstance(batch, torch.Tensor) and batch.shape[1] == max(map(len, labels)) - 1


def test_config_round_trip_and_default(tmp_path):
    # one clip a sample, the recipe's labels; the presets pack, half their windows with timestamps
    assert RunConfig().timestamp_share == 0.0 and not RunConfig().pack
    assert all(make_config(name).timestamp_share == 0.5 for name in PRESETS)
    run, config = start_run("ts", "embedded", tmp_path, TIMESTAMP_SHARE=0.4)
    saved = run.read_json("config.json", "test")
    assert saved["timestamp_share"] == 0.4 and config_from_dict(saved) == config
