"""benchmarks/bench_forgetting.py end to end on a tiny random multilingual Whisper, and the
docs/benchmarks.md lines report.py makes of its results (the real run: python
benchmarks/run.py --only forgetting)."""
import json
import sys
from pathlib import Path

import pytest
from fixtures.tiny_runs import tiny_multilingual_dir

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_forgetting  # noqa: E402
import report  # noqa: E402
import run as bench_run  # noqa: E402

pytestmark = pytest.mark.benchmarks


def test_forgetting_benchmark_runs_end_to_end_on_a_tiny_model(tmp_path):
    tiny = tiny_multilingual_dir(tmp_path / "tiny-ml")
    cache = tmp_path / "models"
    path = bench_forgetting.run(tmp_path / "out", steps=1, batch=2, hindi_clips=2,
                                english_clips=2, model=str(tiny), max_new_tokens=4, cache=cache)
    data = json.loads(path.read_text())
    r = data["results"]
    assert data["benchmark"] == "forgetting" and list(r) == list(bench_forgetting.ROWS)
    for name, row in r.items():
        assert row["hindi"]["n"] == row["english"]["n"] == 2, name
        assert row["hindi"]["wer"] >= 0 and row["english"]["cer"] >= 0
        assert row["english_detected_as_english"] in (0, 0.5, 1)
        assert row["hindi_detected_as_hindi"] in (0, 0.5, 1)
        assert [s["reference"] for s in row["english_samples"]] == \
            [s["reference"] for s in r["base_fp32"]["english_samples"]]
        assert "texts" not in row
    lora8, lora32, full = r["lora_8bit"], r["lora_fp32"], r["full_fp32"]
    assert lora8["trainable_params"] == lora32["trainable_params"] == r["lora_8bit_lr_1e-4"]["trainable_params"]
    assert full["trainable_params"] > 20 * lora8["trainable_params"]   # every weight vs q/v LoRA
    assert (lora8["learning_rate"], full["learning_rate"], r["lora_8bit_lr_1e-4"]["learning_rate"]) == \
        (1e-3, 1e-5, 1e-4)
    # replay: round(2 * s / (1 - s)) English clips beside the 2 Hindi ones
    assert (r["lora_8bit_replay_10"]["replay_clips"], r["lora_8bit_replay_25"]["replay_clips"]) == (0, 1)
    assert lora8["replay_clips"] == 0 and data["settings"]["replay_shares"]["lora_8bit_replay_25"] == 0.25
    assert all(r[m]["final_loss"] > 0 and r[m]["reused"] is False for m in bench_forgetting.METHODS)
    assert r["lora_8bit_adapter_off"]["precision"] == "8bit"
    routed = r["lora_8bit_routed"]["routing"]
    for language in ("hindi", "english"):
        assert 0 <= routed[language]["right_share"] <= 1
        assert sum(routed[language]["routes"].values()) == 2
        assert routed[language]["detect_seconds"] > 0
    calibration = r["lora_8bit_routed"]["calibration"]
    assert set(calibration) == {"hindi", "english"}
    assert all(0 <= calibration[lang]["right_share"] <= 1 for lang in calibration)
    assert path.with_suffix(".png").stat().st_size > 1000
    assert path.with_name("forgetting_tradeoff.png").stat().st_size > 1000
    text = report.render(path.parent)
    section = text.split("### Forgetting", 1)[1].split("###", 1)[0]
    assert "Not measured yet" not in section
    assert all(f"| {name} |" in section for name in report.FORGET_ROWS.values())
    assert 'The blog\'s claim "LoRA overcomes catastrophic forgetting"' in section
    assert "Routing by spoken language" in section and "forgetting_tradeoff.png" in section
    # Asked again with the same settings, the cache gives the trained model back untrained.
    again = bench_forgetting.trained_model(str(tiny), "lora_8bit", bench_forgetting.training_rows(2),
                                           1, 2, cache)
    assert again["reused"] is True and again["final_loss"] == lora8["final_loss"]
    assert (again["folder"] / "adapter" / "adapter_language.json").is_file()


def rows(base: float, lora: float, full: float, off: float | None = None) -> dict:
    """forgetting.json results with only the English WERs the verdict reads."""
    english = lambda wer: {"english": {"wer": wer}}  # noqa: E731
    return {"base_fp32": english(base), "lora_8bit": english(lora), "full_fp32": english(full),
            "lora_8bit_adapter_off": english(base if off is None else off)}


@pytest.mark.parametrize("lora,full,verdict", [
    (0.43, 0.70, "held here"),                      # +3 points vs +30
    (0.44, 0.41, "was not put to the test"),        # +4 and +1: neither forgot
    (0.55, 0.70, "held only in part"),              # +15 vs +30
    (0.80, 0.70, "did not hold"),                   # +40 vs +30
])
def test_forgetting_verdict(lora, full, verdict):
    line = report.forgetting_verdict(rows(0.40, lora, full, off=0.41))
    assert verdict in line and "\n" not in line
    assert f"{100 * (lora - 0.40):+.1f} points with the 8-bit LoRA adapter on" in line
    assert "from the untouched base's 40.0%" in line and "adapter off, 41.0%" in line


def test_forgetting_runs_only_on_request_with_its_sizes():
    assert "forgetting" not in bench_run.parse_args([]).only
    args = bench_run.parse_args(["--only", "forgetting", "--quick", "--forgetting-clips", "3"])
    sizes = bench_run.forgetting_sizes(bench_run.QUICK, args)
    assert args.only == ["forgetting"] and args.forgetting_model == "embedded-base"
    assert (sizes.forget_steps, sizes.forget_hindi_clips, sizes.forget_english_clips) == (1, 3, 3)
    assert bench_run.parse_args(["--forgetting-cache", "x"]).forgetting_cache == Path("x")
    full = bench_run.forgetting_sizes(bench_run.FULL, bench_run.parse_args(["--forgetting-steps", "5"]))
    assert (full.forget_steps, full.forget_batch, full.forget_english_clips) == (5, 8, 24)


def routed_rows(right: float, english_wer: float) -> dict:
    """forgetting.json results with what the routing verdict and its cells read: 10 clips a
    language; identification 1 s and settling 3 s in all per language; decoding 2 s each."""
    routing = {lang: {"right_share": right, "identify_seconds": 1.0, "settle_seconds": 3.0,
                      "detect_seconds": 4.0} for lang in ("hindi", "english")}
    scores = lambda wer, cer: {"hindi": {"n": 10, "cer": cer}, "english": {"n": 10, "wer": wer}}  # noqa: E731
    return {"lora_8bit_routed": {**scores(english_wer, 0.30), "routing": routing},
            "lora_8bit": {**scores(0.25, 0.30), "decode_seconds": {"hindi": 2.0, "english": 2.0}},
            "lora_8bit_adapter_off": scores(0.12, 0.93)}


@pytest.mark.parametrize("right,english_wer,verdict", [
    (1.0, 0.125, "kept both languages"),   # +0.5 points, every clip routed right
    (1.0, 0.14, "fell short"),             # +2 points of English
    (0.9, 0.12, "fell short"),             # one clip in ten routed wrong
])
def test_routing_verdict_and_what_it_costs(right, english_wer, verdict):
    r = routed_rows(right, english_wer)
    line = report.routing_verdict(r)
    assert verdict in line and "\n" not in line
    assert "Routing spent 0.40 s a clip" in line and "decoding a clip took 0.20 s" in line
    assert report.routing_cells(r["lora_8bit_routed"]) == [f"{100 * right:.1f}% / {100 * right:.1f}%",
                                                          "0.10 + 0.30 s"]
