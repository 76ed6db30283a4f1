"""The benchmark runner, run for real at tiny sizes, and the docs/benchmarks.md section it
generates."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

import report  # noqa: E402

pytestmark = pytest.mark.benchmarks

RATIO = re.compile(r"\*\*[\d.]+x\*\* \((\w+\.json) results\.")


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    """`python benchmarks/run.py --quick --out DIR` once; returns DIR."""
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "run.py"), "--quick",
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_quick_run_writes_every_result_with_its_load_average(quick_results):
    for name in report.FILES:
        data = json.loads((quick_results / f"{name}.json").read_text())
        assert data["benchmark"] == name
        assert len(data["environment"]["loadavg"]) == 3
        assert len(data["environment"]["loadavg_before"]) == 3
    for chart in ("training_methods", "inference", "memory_curve"):
        assert (quick_results / f"{chart}.png").stat().st_size > 1000


def test_quick_training_methods_differ_as_they_must(quick_results):
    r = json.loads((quick_results / "training_methods.json").read_text())["results"]
    full, lora = r["full_fp32"], r["lora_8bit"]
    assert full["trainable_params"] == full["total_params"]
    assert lora["trainable_params"] < 0.05 * lora["total_params"]
    assert full["checkpoint_bytes"] > 20 * lora["checkpoint_bytes"]  # weights vs adapter only
    for method in ("full_fp32", "lora_fp32", "lora_8bit", "lora_4bit"):
        assert r[method]["seconds_per_step"] > 0 and r[method]["peak_rss_bytes"] > 2**27
        assert 0 <= r[method]["wer"]["eval_wer"] <= 5


def test_quick_data_preparation_keeps_the_model_inputs(quick_results):
    r = json.loads((quick_results / "data_preparation.json").read_text())["results"]
    assert r["equality"]["labels_equal"]
    assert r["equality"]["max_abs_feature_difference"] <= r["equality"]["tolerance"]
    assert r["ours"]["clips"] == r["recipe"]["clips"] == 8


def test_quick_inference_ways_all_transcribe(quick_results):
    import bench_inference

    r = json.loads((quick_results / "inference.json").read_text())["results"]
    assert tuple(r) == bench_inference.WAYS   # ours, CTranslate2, faster-whisper, whisper.cpp
    assert all(way["real_time_factor"] > 0 and way["wer"]["n"] == 1 for way in r.values())
    assert all(way["peak_rss_bytes"] > 2**26 for way in r.values())   # each way's own process
    for name, way in r.items():   # every way with a long-form decoding ran the recording
        assert ("long_form" in way) == (not name.startswith("ct2_")), name
        assert "long_form" not in way or way["long_form"]["real_time_factor"] > 0
    assert r["ct2_int8"]["device"] == r["whisper_cpp_q8_0"]["device"] == "cpu"   # every row names its device
    assert r["8bit_adapter"]["device"] == r["merged_fp32"]["device"] in ("cpu", "cuda")
    assert r["whisper_cpp_q8_0"]["model_bytes"] < 0.6 * r["whisper_cpp_f16"]["model_bytes"]


def test_quick_memory_curve_measures_a_second_architecture(quick_results):
    larger = json.loads((quick_results / "memory_curve.json").read_text())["results"]["larger_model"]
    assert larger["model"] == "tiny" and larger["steps"] == 1
    heap = {}
    for method in ("full_fp32", "lora_8bit"):
        (row,) = larger[method]
        assert row["batch_size"] == 1 and row["step_seconds"] > 0
        assert row["peak_rss_bytes"] > row["rss_file_bytes_after_step"] > 0
        assert row["predicted_peak_rss_bytes"] > 0
        heap[method] = row["peak_rss_bytes"] - row["rss_file_bytes_after_step"]
    # full fine-tuning holds gradients and AdamW moments for all 39M weights, LoRA for 0.6M
    assert heap["full_fp32"] > 1.2 * heap["lora_8bit"]


def test_every_ratio_in_the_section_names_its_source(quick_results):
    text = (quick_results / report.SECTION_FILE).read_text()
    assert text == report.render(quick_results)
    ratio_lines = [line for line in text.splitlines() if "x**" in line]
    assert len(ratio_lines) >= 7
    for line in ratio_lines:
        match = RATIO.search(line)
        assert match and (quick_results / match.group(1)).is_file(), line


def test_docs_page_shows_exactly_the_generated_section():
    assert (report.RESULTS / "training_methods.json").is_file(), "run python benchmarks/run.py"
    assert report.PAGE == REPO / "docs" / "benchmarks.md"
    generated = report.render(report.RESULTS)
    assert (report.RESULTS / report.SECTION_FILE).read_text() == generated, (
        "benchmarks/results/benchmarks_section.md is stale: run python benchmarks/report.py")
    on_page = report.page_section(report.PAGE)
    assert on_page is not None, (
        f"docs/benchmarks.md lacks the markers {report.START} ... {report.END}: paste "
        "benchmarks/results/benchmarks_section.md between them")
    assert on_page == generated, ("docs/benchmarks.md's benchmark section differs from the results: "
                                  "run python benchmarks/report.py and paste "
                                  "benchmarks/results/benchmarks_section.md between the markers")


def test_section_charts_resolve_from_the_docs_page():
    """The section's image links are relative to docs/benchmarks.md, where it is shown."""
    charts = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report.render(report.RESULTS))
    assert len(charts) >= 5
    for chart in charts:
        assert (report.PAGE.parent / chart).is_file(), chart
