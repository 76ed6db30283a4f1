"""The T4 time estimate (helpers.footprint.t4_time) and the memory estimator's label length
for presets that pack clips into 30 s windows."""
import argparse

import pytest

from helpers.config import make_config
from helpers.footprint.__main__ import label_length, main
from helpers.footprint.t4_time import RECIPE_CLIPS, forward_flops, t4_hours, window_cost_ratio
from helpers.model.architectures import ARCHITECTURES

pytestmark = pytest.mark.unit

LARGE_V2 = ARCHITECTURES["large-v2"].to_dict()


def test_one_clip_a_sample_gives_back_the_recipes_6_to_8_hours():
    recipe = t4_hours(LARGE_V2, epochs=3, batch_size=8, pack=False)
    assert recipe["steps"] == 2535 and recipe["samples"] == RECIPE_CLIPS   # 3 x 6,760 / 8
    assert recipe["cost_ratio"] == 1.0 and 5.9 <= recipe["hours"][0] < recipe["hours"][1] <= 8.0


def test_packed_windows_cost_more_than_a_clip_but_far_less_than_their_clips():
    packed = t4_hours(LARGE_V2, epochs=3, batch_size=2, pack=True)
    recipe = t4_hours(LARGE_V2, epochs=3, batch_size=8, pack=False)
    assert packed["clips_per_sample"] == 5.0     # 5 x 5 s + 4 pauses of at most 1 s <= 30 s
    assert 1.0 < packed["cost_ratio"] < 1.5      # same encoder work, longer labels
    assert packed["label_tokens"] <= 448
    assert packed["hours"][1] < recipe["hours"][0] / 3


def test_flops_grow_with_the_labels_and_a_wider_model():
    tiny = ARCHITECTURES["tiny.en"].to_dict()
    assert forward_flops(tiny, 100) > forward_flops(tiny, 20)
    assert forward_flops(LARGE_V2, 20) > 50 * forward_flops(tiny, 20)
    assert window_cost_ratio(tiny, 100, 20) > window_cost_ratio(LARGE_V2, 100, 20) > 1  # tiny: head weighs more


def test_memory_is_estimated_at_448_tokens_when_a_preset_packs():
    args = argparse.Namespace(label_length=None)
    assert label_length(args, make_config("embedded", pack=True)) == 448
    assert label_length(args, make_config("embedded", pack=False)) == 64
    assert label_length(argparse.Namespace(label_length=90), make_config("embedded", pack=True)) == 90


def test_cli_prints_the_t4_estimate_beside_the_recipes(capsys):
    report = main(["--model", "openai/whisper-large-v2", "--preset", "blog", "--t4-time"])
    estimate = report["t4_time"]
    assert estimate["recipe"]["pack"] is False and estimate["recipe"]["batch_size"] == 8
    assert estimate["this_preset"]["pack"] == make_config("blog").pack
    assert "not measured" in estimate["basis"]
    assert '"t4_time"' in capsys.readouterr().out
