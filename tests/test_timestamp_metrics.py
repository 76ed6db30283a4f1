"""Timestamp scores of long-form transcripts (helpers.metrics), on hand-computed cases."""
import pytest

from helpers.metrics import boundary_errors, timestamp_errors, timestamp_window_share


def windows(*flags):
    return {"windows": [{"start": 30.0 * i, "end": 30.0 * (i + 1), "timestamped": flag}
                        for i, flag in enumerate(flags)]}


def spans(*pairs):
    return [{"start": start, "end": end, "text": "x"} for start, end in pairs]


def test_window_share_counts_windows_not_recordings():
    assert timestamp_window_share([windows(True, False), windows(True)]) == pytest.approx(2 / 3)
    assert timestamp_window_share([windows(False, False, False)]) == 0.0
    assert timestamp_window_share([windows()]) is None     # no window: no share exists


def test_a_segment_spanning_two_sentences_leaves_the_inner_boundaries_far():
    errors = boundary_errors(spans((1, 4), (5, 9)), spans((0.5, 9.5)))
    assert errors == {"start_errors": [0.5, 4.5], "end_errors": [5.5, 0.5]}


def test_each_true_boundary_takes_the_nearest_predicted_one():
    errors = boundary_errors(spans((1.0, 4.0), (5.0, 9.0)),
                             spans((0.9, 3.0), (3.2, 4.3), (5.4, 8.8)))
    # starts: 1.0 -> 0.9, 5.0 -> 5.4; ends: 4.0 -> 4.3, 9.0 -> 8.8
    assert errors["start_errors"] == pytest.approx([0.1, 0.4])
    assert errors["end_errors"] == pytest.approx([0.3, 0.2])


def test_errors_pool_every_sentence_and_count_recordings_without_segments():
    recordings = [{"sentences": spans((1, 4), (5, 9))}, {"sentences": spans((2, 3))},
                  {"sentences": spans((0, 1), (2, 3))}]
    predictions = [{"segments": spans((0.5, 9.5))}, {"segments": spans((2.5, 3.0))},
                   {"segments": []}]
    result = timestamp_errors(recordings, predictions)
    assert result["start_mae"] == pytest.approx((0.5 + 4.5 + 0.5) / 3)
    assert result["end_mae"] == pytest.approx((5.5 + 0.5 + 0.0) / 3)
    assert (result["sentences"], result["unmatched_sentences"], result["segments"]) == (3, 2, 2)
    empty = timestamp_errors([{"sentences": spans((0, 1))}], [{"segments": []}])
    assert empty["start_mae"] is None and empty["unmatched_sentences"] == 1
    with pytest.raises(ValueError, match="pair up"):
        timestamp_errors(recordings, predictions[:2])
