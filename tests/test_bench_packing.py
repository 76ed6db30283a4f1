"""benchmarks/bench_packing.py end to end on tiny random Whispers (English and multilingual),
its checks, and the docs/benchmarks.md and README lines report.py makes of packing.json (the
real run: python benchmarks/run.py --only packing)."""
import json
import sys
from pathlib import Path

import pytest
from fixtures.data_files import small_corpus
from fixtures.tiny_runs import tiny_model_dir, tiny_multilingual_dir

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_packing  # noqa: E402
import report  # noqa: E402
import run as bench_run  # noqa: E402

pytestmark = pytest.mark.benchmarks

KEYS = ("clips_per_second", "test_wer", "long_form_wer", "timestamp_window_share", "train_seconds",
        "clips_seen")  # what the issue asks of each arm


def test_packing_benchmark_runs_end_to_end_on_tiny_models(tmp_path):
    # Random models in fp32, greedy, 4 tokens a clip and a window: the code paths, not the
    # figures (those need the real run).
    common = dict(precision="fp32", max_test_clips=2)
    sizes = (("train", 12), ("test", 2))
    overrides = {"english": dict(model=str(tiny_model_dir(tmp_path / "tiny")),
                                 corpus=str(small_corpus(tmp_path / "en", sizes)), **common),
                 "hindi": dict(model=str(tiny_multilingual_dir(tmp_path / "ml")),
                               corpus=str(small_corpus(tmp_path / "hi", sizes, "hi")), **common)}
    path = bench_packing.run(tmp_path / "out", steps=1, recordings=1, seconds=31,
                             overrides=overrides, max_new_tokens=4, fallback=False)
    doc = json.loads(path.read_text())
    assert doc["machine"]["cpu"] and doc["machine"]["cores"] >= 1
    for rows in (doc, doc["hindi"]):
        unpacked, packed = rows["unpacked"], rows["packed"]
        assert all(key in unpacked and key in packed for key in KEYS)
        assert (unpacked["pack"], packed["pack"]) == (False, True)
        assert unpacked["train_steps"] == 1 and unpacked["clips_seen"] == 8    # batch 8
        assert packed["train_seconds"] >= unpacked["train_seconds"] * 0.9    # the same time
        assert packed["packing"]["clips"] == 12 and packed["packing"]["clips_per_window"] > 1
        assert packed["clips_seen"] >= packed["train_steps"] * packed["batch_size"]
        assert 0 <= packed["timestamp_window_share"] <= 1
        assert rows["checks"]["speedup"] == pytest.approx(
            packed["clips_per_second"] / unpacked["clips_per_second"], abs=0.01)
    assert "base" in doc and "base" not in doc["hindi"] and "test_cer" in doc["hindi"]["packed"]
    assert doc["hindi"]["settings"]["language"] == "hindi"
    assert path.with_suffix(".png").stat().st_size > 1000
    section = "\n".join(report.packing_section(doc))
    assert "| packed into 30 s windows |" in section and "Hindi: packed vs unpacked" in section
    readme = report.readme_section(path.parent)
    assert f"**{doc['checks']['speedup']:.1f}x** the training clips per second" in readme


@pytest.mark.parametrize("packed,holds", [
    (dict(clips_per_second=3.1, test_wer=0.105, long_form_wer=0.20), (True, True, True)),
    (dict(clips_per_second=2.9, test_wer=0.111, long_form_wer=0.21), (False, False, False)),
])
def test_checks_are_the_issues_three_conditions(packed, holds):
    rows = {"unpacked": dict(clips_per_second=1.0, test_wer=0.10, long_form_wer=0.20),
            "packed": packed}
    c = bench_packing.checks(rows, "wer")
    assert (c["speedup_holds"], c["test_holds"], c["long_form_holds"]) == holds


def test_packing_runs_only_on_request_and_the_docs_show_its_results():
    assert "packing" not in bench_run.parse_args([]).only
    assert bench_run.parse_args(["--only", "packing"]).only == ["packing"]
    results = report.RESULTS / "packing.json"
    assert results.is_file(), "run python benchmarks/run.py --only packing"
    assert report.page_section(report.README, report.README_START, report.README_END) == \
        report.readme_section(report.RESULTS), "run python benchmarks/report.py --write-pages"
    doc = json.loads(results.read_text())
    assert {"unpacked", "packed", "hindi", "machine"} <= set(doc)
