"""helpers.data.features' padding conventions: silence (transformers, whisper.cpp) and zeros
(OpenAI, faster-whisper), the seeded per-example mix training sees, and what decoding uses."""
import numpy as np
import pytest

from fixtures.tolerances import assert_log_mel_close
from helpers.data.features import (INFERENCE_PADDING, decoding_padding, full_features,
                                   inference_features, mel_frames, padded_features,
                                   training_padding)

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def extractor():
    from helpers.model.load import load_processor

    return load_processor("embedded").feature_extractor


def tone(samples: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(samples)).astype(np.float32)


@pytest.mark.parametrize("samples", [16_000, 16_100, 16_159, 40_080])
def test_zeros_keep_openais_count_of_the_clips_frames_then_zeros(extractor, samples):
    frames, pad = mel_frames(tone(samples), extractor)
    silence = padded_features(frames, pad, "silence")
    zeros = padded_features(frames, pad, "zeros", clip_frames=samples // 160)
    assert_log_mel_close(silence, full_features(frames, pad))
    keep = samples // 160  # OpenAI's and faster-whisper's frames of a clip
    np.testing.assert_array_equal(zeros[:, :keep], silence[:, :keep])
    assert not zeros[:, keep:].any() and pad < -0.1  # the silence floor is far from 0
    # from stored frames alone (training): the same count, or one frame of the clip's tail more
    stored = padded_features(frames, pad, "zeros")
    assert keep <= int(stored.any(axis=0).sum()) <= keep + 1


def test_a_full_window_is_not_padded_either_way(extractor):
    frames, pad = mel_frames(tone(480_000), extractor)
    np.testing.assert_array_equal(padded_features(frames, pad, "zeros"),
                                  padded_features(frames, pad, "silence"))
    with pytest.raises(ValueError, match="padding must be one of"):
        padded_features(frames, pad, "noise")


def test_training_padding_is_a_seeded_stable_share_of_examples():
    labels = [list(np.random.default_rng(i).integers(0, 50_000, 12)) for i in range(400)]
    half = [training_padding(ids, 42, 0.5) for ids in labels]
    assert 0.4 < half.count("zeros") / len(half) < 0.6
    assert half == [training_padding(ids, 42, 0.5) for ids in labels]      # every epoch, worker, resume
    assert half != [training_padding(ids, 7, 0.5) for ids in labels]       # the seed decides
    assert {training_padding(ids, 42, 0.0) for ids in labels} == {"silence"}
    assert {training_padding(ids, 42, 1.0) for ids in labels} == {"zeros"}


def test_decoding_pads_with_zeros_unless_told_otherwise(extractor):
    audios = [tone(20_000, 1), tone(35_000, 2)]
    assert INFERENCE_PADDING == "zeros"
    default = inference_features(audios, extractor)
    assert default.shape == (2, 80, 3000) and not default[0, :, 20_000 // 160:].any()
    with decoding_padding("silence"):
        silence = inference_features(audios, extractor)
    for audio, row in zip(audios, silence):
        assert_log_mel_close(row, extractor(audio, sampling_rate=16_000,
                                            return_tensors="np").input_features[0])
    np.testing.assert_array_equal(inference_features(audios, extractor), default)  # restored


def test_the_collator_pads_each_example_its_seeded_way():
    from helpers.model.load import load_processor
    from helpers.train.collator import SpeechSeq2SeqCollator

    processor = load_processor("embedded")
    frames, pad = mel_frames(tone(16_000), processor.feature_extractor)
    rows = [{"mel_frames": frames, "mel_pad": pad, "labels": [50257, 50362, i, 50256]}
            for i in range(40)]
    start = 50257
    tail = {}
    for share in (0.0, 0.5, 1.0):
        batch = SpeechSeq2SeqCollator(processor, start, zero_padding_share=share, seed=3)(rows)
        tail[share] = batch["input_features"][:, :, -1].numpy()
        assert batch["input_features"].shape == (40, 80, 3000)
    assert np.allclose(tail[0.0], pad) and not tail[1.0].any()
    zeros = [not row.any() for row in tail[0.5]]
    assert zeros == [training_padding(row["labels"], 3, 0.5) == "zeros" for row in rows]
