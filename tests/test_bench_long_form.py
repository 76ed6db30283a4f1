"""benchmarks/bench_long_form.py end to end on a tiny random Whisper, its recommendation
rule, and the docs/benchmarks.md lines report.py makes of its results (the real run: python
benchmarks/run.py --only long_form)."""
import json
import sys
from pathlib import Path

import pytest
from fixtures.data_files import small_corpus
from fixtures.tiny_runs import tiny_model_dir

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_long_form  # noqa: E402
import report  # noqa: E402
import run as bench_run  # noqa: E402

pytestmark = pytest.mark.benchmarks


def test_long_form_benchmark_runs_end_to_end_on_a_tiny_model(tmp_path):
    # A random model, fp32 (bitsandbytes' int8 matmul on CPU takes seconds per 30 s window
    # even for this tiny model; the 8-bit path is tested elsewhere), greedy and 4 tokens a
    # window: it fails every fallback temperature and never stops by itself.
    tiny = tiny_model_dir(tmp_path / "tiny")
    path = bench_long_form.run(tmp_path / "out", steps=1, batch=2, shares=[0.5], recordings=1,
                               short_clips=2, model=str(tiny), min_seconds=35, max_seconds=40,
                               corpus=small_corpus(tmp_path / "en"), precision="fp32",
                               eval_precision="fp32",
                               max_new_tokens=4, fallback=False)
    data = json.loads(path.read_text())
    r = data["results"]
    assert data["benchmark"] == "long_form"
    assert list(r) == ["base", "share_0", "share_0.5", "recommended"]
    assert r["recommended"] == {**r["recommended"], "row": "share_0.5", "share": 0.5}
    assert data["settings"]["timestamp_shares"] == [0.0, 0.5]
    assert 35 <= data["settings"]["long_form_set"]["seconds"][0] <= 40
    for name in ("base", "share_0", "share_0.5"):
        long_form = r[name]["long_form"]
        assert long_form["windows"] >= 2, name                   # 35-40 s: two windows at least
        assert 0 <= long_form["timestamp_window_share"] <= 1
        assert long_form["wer"] >= 0 and r[name]["short_clips"]["n"] == 2
        assert long_form["sentences"] == data["settings"]["long_form_set"]["sentences"]
    assert (r["share_0"]["timestamped_clips"], r["share_0.5"]["timestamped_clips"]) == (0, 2)
    assert r["share_0"]["train_clips"] == r["share_0.5"]["train_clips"] == 4
    assert all(r[name]["final_loss"] > 0 for name in ("share_0", "share_0.5"))
    assert path.with_suffix(".png").stat().st_size > 1000
    section = report.render(path.parent).split("### Timestamps through fine-tuning", 1)[1]
    section = section.split("###", 1)[0]
    assert "Not measured yet" not in section
    assert "| TIMESTAMP_SHARE = 0.5 |" in section and "| base (no adapter) |" in section
    assert "Recommended `TIMESTAMP_SHARE = 0.5`" in section


def rows(**wer_and_mae) -> dict:
    """long_form.json results with only what `recommend` reads: name=(wer, start, end)."""
    return {f"share_{name[1:].replace('_', '.')}": {"long_form": {"wer": w, "start_mae": s, "end_mae": e}}
            for name, (w, s, e) in wer_and_mae.items()}


@pytest.mark.parametrize("results,expected", [
    # both within 2 points of share 0's WER: the lower boundary error wins
    (rows(s0=(0.30, 2.0, 3.0), s0_3=(0.31, 0.5, 0.7), s0_5=(0.315, 0.3, 0.4)), 0.5),
    # share 0.5 costs 10 points of WER: share 0.3 even though its timestamps are worse
    (rows(s0=(0.30, 2.0, 3.0), s0_3=(0.31, 0.5, 0.7), s0_5=(0.40, 0.3, 0.4)), 0.3),
    # equal errors: the smaller share
    (rows(s0=(0.30, 2.0, 3.0), s0_3=(0.30, 0.5, 0.5), s0_5=(0.30, 0.5, 0.5)), 0.3),
    # none within 2 points: the lowest WER
    (rows(s0=(0.30, 2.0, 3.0), s0_3=(0.36, 0.5, 0.7), s0_5=(0.33, 0.3, 0.4)), 0.5),
])
def test_recommendation_rule(results, expected):
    pick = bench_long_form.recommend(results, [0.0, 0.3, 0.5])
    assert (pick["row"], pick["share"]) == (f"share_{expected:g}", expected)
    assert "share 0" in pick["rule"]


def test_long_form_runs_only_on_request_with_its_sizes():
    assert "long_form" not in bench_run.parse_args([]).only
    args = bench_run.parse_args(["--only", "long_form", "--long-form-shares", "0.2"])
    assert args.only == ["long_form"] and args.long_form_shares == [0.2]
    assert bench_run.parse_args(["--only", "long_form"]).long_form_shares == [0.3, 0.5]
    assert (bench_run.FULL.long_steps, bench_run.FULL.long_batch) == (30, 8)  # the embedded preset's
