"""benchmarks/gpu_check.py without a GPU: `--smoke` runs every part on the CPU at tiny
sizes; the memory workers' failure handling, the claims and the docs/benchmarks.md section
it feeds."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

import gpu_check  # noqa: E402
import gpu_memory  # noqa: E402
import report  # noqa: E402

pytestmark = pytest.mark.benchmarks


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """`python benchmarks/gpu_check.py --smoke` once: (its JSON document, its logs folder)."""
    out = tmp_path_factory.mktemp("gpu-check")
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--smoke",
                           "--out", str(out / "gpu_check.json"), "--logs", str(out / "logs")],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    print(done.stdout[-1500:])
    return json.loads((out / "gpu_check.json").read_text()), out


def test_smoke_run_goes_through_every_part(smoke):
    doc, out = smoke
    assert doc["smoke"] is True and doc["environment"]["cuda_available"] is torch.cuda.is_available()
    tests, pipeline, memory = (doc["parts"][name] for name in ("tests", "pipeline", "memory"))
    if not torch.cuda.is_available():   # the GPU tests are collected and skipped, saying why
        assert tests["status"] == "skipped" and tests["skipped"] == len(tests["tests"]) >= 8
        assert all("CUDA" in test["message"] for test in tests["tests"])
    assert pipeline["status"] == "passed", pipeline
    assert len(pipeline["notebooks"]) == 6 and pipeline["metrics"]["train_steps"] == 2
    assert pipeline["fp16"] is True and all(math.isfinite(loss) for loss in pipeline["losses"])
    assert memory["status"] == "done"
    assert list(memory["series"]) == [gpu_check.series_key(m, c, capped)
                                      for m, c, capped, _ in gpu_check.SMOKE.series]
    for rows in memory["series"].values():
        (row,) = rows
        assert row["peak_rss_bytes"] > 0 and row["predicted_peak_rss_bytes"] > 0, row
        assert row["step_seconds"] > 0 and abs(row["error"]) < 1
    assert memory["claims"]["max_batch_under_cap"]["lora_8bit/reentrant"]["max_batch_size"] == 1
    assert {p.name for p in (out / "logs").iterdir()} >= {"pytest_gpu.log", "pipeline.log"}
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []   # written atomically


def test_report_says_a_smoke_run_is_no_gpu_figure(smoke):
    doc, _ = smoke
    text = "\n".join(report.gpu_section(doc))
    assert "smoke run on the CPU" in text and "not GPU figures" in text
    assert text.count("| LoRA, 8-bit base (the recipe) |") == 2   # reentrant, non-reentrant


def test_a_hung_worker_is_killed_and_its_batch_size_kept():
    workers = gpu_memory.Workers()
    row = workers.run({"batch_size": 16, "device": "cpu"}, timeout=0.5)   # still importing
    assert row["batch_size"] == 16 and row["failed"] == "timed out after 0.5 s", row
    rows = gpu_memory.measure_series(workers, {"device": "cpu"}, [4, 8], timeout=0.5)
    assert [r["batch_size"] for r in rows] == [4] and "failed" in rows[0]   # the series stops


def test_claims_from_measured_points():
    gb = 10**9
    point = lambda b, device: {"batch_size": b, "peak_allocated_bytes": device - gb,  # noqa: E731
                               "peak_reserved_bytes": device - gb // 2, "device_peak_bytes": device}
    series = {"lora_8bit/reentrant": [point(1, 3 * gb), point(2, 4 * gb), point(4, 5 * gb),
                                      point(8, 7 * gb), point(16, 12 * gb),
                                      {"batch_size": 32, "oom": True}],
              "full_fp16/reentrant": [{"batch_size": 1, "oom": True}],
              "full_fp16/reentrant/uncapped": [point(8, 26 * gb)],
              "lora_4bit/reentrant": [point(1, 3 * gb), {"batch_size": 2, "skipped": "time"}]}
    claims = gpu_check.memory_claims(series)
    assert claims["max_batch_under_cap"]["lora_8bit/reentrant"] == {
        "max_batch_size": 16, "exact": True, "first_oom_batch_size": 32}
    assert claims["max_batch_under_cap"]["full_fp16/reentrant"]["max_batch_size"] == 0
    assert claims["max_batch_under_cap"]["lora_4bit/reentrant"]["exact"] is False
    assert claims["batch_ratio_lora_8bit_vs_full"] is None   # full fine-tuning fits no batch
    assert claims["lora_8bit_batch_8"]["device_peak_bytes"] == 7 * gb
    assert claims["lora_8bit_batch_8_under_8gb"] is True
    assert claims["full_fp16_batch_8_uncapped"]["device_peak_bytes"] == 26 * gb
    lines = "\n".join(report.gpu_claim_lines(claims, 15e9))
    assert "7.00 GB on the device" in lines and "the claim holds" in lines
    assert "full fine-tuning fits no batch" in lines and "26.00 GB" in lines


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_without_a_gpu_the_check_says_how_to_smoke_test():
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py")], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "--smoke" in done.stderr
