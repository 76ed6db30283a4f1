"""Timestamp scores of long-form transcripts (helpers.evaluate.scoring.score_long_form): windows with
timestamps and sentence start/end errors, on hand-computed cases."""
import pytest

from helpers.evaluate.scoring import score_long_form

pytestmark = pytest.mark.unit


def recording(name, *sentences):
    return {"path": f"/set/{name}.wav", "text": "a b", "duration": 60.0,
            "sentences": [{"start": s, "end": e, "text": "x"} for s, e in sentences]}


def prediction(name, segments, flags=(True,)):
    return {"path": f"{name}.wav", "text": "a b",
            "segments": [{"start": s, "end": e, "text": "x"} for s, e in segments],
            "windows": [{"start": 30.0 * i, "end": 30.0 * (i + 1), "timestamped": flag}
                        for i, flag in enumerate(flags)]}


def test_a_segment_spanning_two_sentences_leaves_the_inner_boundaries_far():
    scores = score_long_form([recording("a", (1, 4), (5, 9))], [prediction("a", [(0.5, 9.5)])])
    assert scores["start_mae"] == pytest.approx((0.5 + 4.5) / 2)   # 1 -> 0.5, 5 -> 0.5
    assert scores["end_mae"] == pytest.approx((5.5 + 0.5) / 2)     # 4 -> 9.5, 9 -> 9.5


def test_each_true_boundary_takes_the_nearest_predicted_one():
    scores = score_long_form([recording("a", (1.0, 4.0), (5.0, 9.0))],
                             [prediction("a", [(0.9, 3.0), (3.2, 4.3), (5.4, 8.8)])])
    assert scores["start_mae"] == pytest.approx((0.1 + 0.4) / 2, abs=1e-4)  # 0.9, 5.4
    assert scores["end_mae"] == pytest.approx((0.3 + 0.2) / 2, abs=1e-4)    # 4.3, 8.8
    assert (scores["sentences"], scores["segments"]) == (2, 3)


def test_every_sentence_and_window_of_every_recording_weighs_the_same():
    scores = score_long_form(
        [recording("a", (1, 4), (5, 9)), recording("b", (2, 3))],
        [prediction("a", [(0.5, 9.5)], flags=(True, False)), prediction("b", [(2.5, 3.0)])])
    assert scores["start_mae"] == pytest.approx((0.5 + 4.5 + 0.5) / 3, abs=1e-4)
    assert scores["end_mae"] == pytest.approx((5.5 + 0.5 + 0.0) / 3, abs=1e-4)
    assert scores["timestamp_window_share"] == pytest.approx(2 / 3, abs=1e-4)  # windows, not recordings


def test_no_segment_counts_from_the_recordings_start_and_no_window_no_share():
    silent = {**prediction("a", []), "windows": []}
    scores = score_long_form([recording("a", (2, 3))], [silent])
    assert (scores["start_mae"], scores["end_mae"]) == (2.0, 3.0)
    assert scores["timestamp_window_share"] is None
