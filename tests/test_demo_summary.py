"""The demo's closing table (helpers.demo.summary_lines) from a run's metrics.json keys."""
import pytest
from helpers.demo import summary_lines

pytestmark = pytest.mark.unit

METRICS = {"n_test": 24, "train_steps": 30, "train_seconds": 600.0, "adapter_bytes": 4728680,
           "trainable_params": 1179648, "total_params": 73773568,
           "base_wer": 1.0441, "base_cer": 0.9111, "raw_base_wer": 1.0441, "base_loops": 2,
           "finetuned_wer": 0.6324, "finetuned_cer": 0.269, "raw_finetuned_wer": 0.652,
           "finetuned_loops": 0}


def test_summary_shows_script_share_when_measured():
    lines = summary_lines({**METRICS, "base_script_share": 0.0435, "finetuned_script_share": 1.0})
    assert lines[0].split() == ["WER", "CER", "raw", "WER", "loops", "script"]
    assert lines[1].split() == ["base", "104.4%", "91.1%", "104.4%", "2", "4.3%"]
    assert lines[2].split() == ["fine-tuned", "63.2%", "26.9%", "65.2%", "0", "100.0%"]


def test_summary_without_script_share_has_no_script_column():
    lines = summary_lines({**METRICS, "base_script_share": None, "finetuned_script_share": None})
    assert "script" not in lines[0] and lines[1].split()[-1] == "2"
    assert "training steps: 30 in 600 s, adapter: 4.5 MiB" in lines[-1]
