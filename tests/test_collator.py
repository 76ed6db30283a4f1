"""helpers.train.collator: padding, -100 masking and the decoder-start strip (issue 29973)."""
import numpy as np
import pytest
import torch
from transformers import WhisperConfig
from transformers.models.whisper.modeling_whisper import shift_tokens_right

from fixtures.tolerances import assert_log_mel_close
from helpers.train.collator import IGNORE_INDEX, SpeechSeq2SeqCollator

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def processor():
    from helpers.model.load import load_processor

    return load_processor("embedded")


@pytest.fixture(scope="module")
def sot(processor):
    return processor.tokenizer.convert_tokens_to_ids("<|startoftranscript|>")


def rows_for(processor, sentences, seed=0):
    """Training rows as prepare_features writes them: features (lists) + label ids."""
    rng = np.random.default_rng(seed)
    return [{"input_features": rng.standard_normal((80, 3000), dtype=np.float32),
             "labels": processor.tokenizer(s).input_ids, "sentence": s} for s in sentences]


def test_decoder_start_is_not_bos(processor, sot):
    """The premise of the bug: the old check (bos_token_id) never matches the labels."""
    assert sot == WhisperConfig().decoder_start_token_id == 50257
    assert processor.tokenizer.bos_token_id != sot
    assert processor.tokenizer("hi").input_ids[0] == sot


def test_shapes_masking_and_strip(processor, sot):
    rows = rows_for(processor, ["hello world", "hi", "a somewhat longer sentence here"])
    batch = SpeechSeq2SeqCollator(processor, sot)(rows)
    assert set(batch) == {"input_features", "labels"}
    assert batch["input_features"].shape == (3, 80, 3000)
    assert batch["input_features"].dtype == torch.float32
    lengths = [len(row["labels"]) - 1 for row in rows]  # the start token is stripped
    labels = batch["labels"]
    assert labels.dtype == torch.long and labels.shape == (3, max(lengths))
    for row, n, out in zip(rows, lengths, labels):
        assert out[:n].tolist() == row["labels"][1:]
        assert (out[n:] == IGNORE_INDEX).all()
    eos = processor.tokenizer.eos_token_id
    assert eos == processor.tokenizer.pad_token_id  # so masking must use the attention mask
    assert [out[n - 1].item() for n, out in zip(lengths, labels)] == [eos] * 3


def test_decoder_inputs_start_with_one_start_token(processor, sot):
    """What the model sees: shift_tokens_right prepends decoder_start once, not twice."""
    batch = SpeechSeq2SeqCollator(processor, sot)(rows_for(processor, ["hello", "hi there"]))
    decoder_inputs = shift_tokens_right(batch["labels"], processor.tokenizer.pad_token_id, sot)
    notimestamps = processor.tokenizer.convert_tokens_to_ids("<|notimestamps|>")
    assert decoder_inputs[:, 0].tolist() == [sot, sot]
    assert decoder_inputs[:, 1].tolist() == [notimestamps, notimestamps]


def test_no_strip_unless_every_row_starts_with_it(processor, sot):
    rows = rows_for(processor, ["hello", "hi"])
    rows[1]["labels"] = rows[1]["labels"][1:]  # this row lacks the start token
    labels = SpeechSeq2SeqCollator(processor, sot)(rows)["labels"]
    assert labels[0, :len(rows[0]["labels"])].tolist() == rows[0]["labels"]
    assert labels[1, :len(rows[1]["labels"])].tolist() == rows[1]["labels"]
    assert labels[1, len(rows[1]["labels"]):].eq(IGNORE_INDEX).all()


def test_old_bos_check_would_not_strip(processor, sot):
    """A collator built with bos_token_id (the copied bug) leaves the start token in."""
    rows = rows_for(processor, ["hello", "hi"])
    buggy = SpeechSeq2SeqCollator(processor, processor.tokenizer.bos_token_id)(rows)["labels"]
    assert buggy[:, 0].tolist() == [sot, sot]


def test_feature_values_preserved_for_lists_arrays_and_tensors(processor, sot):
    rows = rows_for(processor, ["one", "two", "three"], seed=3)
    originals = [row["input_features"].copy() for row in rows]
    rows[0]["input_features"] = rows[0]["input_features"].tolist()  # as datasets returns it
    rows[2]["input_features"] = torch.from_numpy(rows[2]["input_features"])
    features = SpeechSeq2SeqCollator(processor, sot)(rows)["input_features"]
    for got, original in zip(features, originals):
        np.testing.assert_array_equal(got.numpy(), original)  # a copy: no arithmetic, exact


def test_compact_rows_become_the_full_30_s_features(processor, sot):
    """Rows as helpers.data.features stores them (mel_frames + mel_pad), mixed with a whole one."""
    from helpers.data.features import log_mel, mel_frames

    extractor = processor.feature_extractor
    clips = [np.sin(np.arange(n, dtype=np.float32) / 9) * 0.3 for n in (8_000, 40_000, 1_000)]
    rows = rows_for(processor, ["one", "two", "three"])
    for row, clip in zip(rows, clips):
        frames, pad = mel_frames(clip, extractor)
        row.pop("input_features")
        row.update(mel_frames=frames.tolist(), mel_pad=float(pad))   # as datasets returns them
    rows[2] = {"input_features": log_mel(clips[2], extractor), "labels": rows[2]["labels"]}
    features = SpeechSeq2SeqCollator(processor, sot)(rows)["input_features"]
    assert features.shape == (3, 80, 3000)
    for got, clip in zip(features, clips):
        direct = extractor(clip, sampling_rate=16_000, return_tensors="np").input_features[0]
        assert_log_mel_close(got.numpy(), direct)  # compact path vs the extractor
    with pytest.raises(KeyError, match="neither mel_frames/mel_pad nor input_features"):
        SpeechSeq2SeqCollator(processor, sot)([{"labels": [1, 2]}])


def test_single_row_and_equal_lengths(processor, sot):
    rows = rows_for(processor, ["same", "same"])
    labels = SpeechSeq2SeqCollator(processor, sot)(rows)["labels"]
    assert (labels != IGNORE_INDEX).all() and labels.shape[1] == len(rows[0]["labels"]) - 1
    one = SpeechSeq2SeqCollator(processor, sot)(rows[:1])
    assert one["labels"].shape == (1, len(rows[0]["labels"]) - 1)
