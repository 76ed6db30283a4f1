"""The six notebooks executed with smoke parameters in fresh kernels (papermill)."""
import json

import pytest
from safetensors import safe_open

from conftest import SMOKE_PARAMETERS
from helpers.demo import notebook_paths, run_notebook, summary_lines
from helpers.run import RunDir

pytestmark = pytest.mark.notebooks

METRIC_KEYS = ("base_wer", "finetuned_wer", "base_cer", "finetuned_cer", "raw_base_wer",
               "raw_finetuned_wer", "n_test", "train_steps", "trainable_params", "total_params",
               "adapter_bytes", "train_seconds", "peak_memory_bytes")


def executed_cells(run, name):
    notebook = json.loads((run.path / "notebooks" / name).read_text())
    return [c for c in notebook["cells"] if c["cell_type"] == "code"]


def test_metrics_json_has_every_key_with_sane_values(smoke_run):
    metrics = smoke_run.metrics()
    assert set(METRIC_KEYS) <= set(metrics)
    assert metrics["n_test"] == SMOKE_PARAMETERS["MAX_TEST_CLIPS"] and metrics["train_steps"] == 2
    for key in METRIC_KEYS[:6]:
        assert 0.0 <= metrics[key] <= 2.0, key
    assert metrics["trainable_params"] == 589_824  # tiny.en: 48 adapted linears x 2 x 32 x 384
    assert metrics["total_params"] > 37_000_000 and metrics["peak_memory_bytes"] > 10**8
    assert "fine-tuned" in "\n".join(summary_lines(metrics))


def test_only_the_adapter_is_saved_as_safetensors(smoke_run):
    adapter = smoke_run.adapter_dir
    assert sorted(p.name for p in adapter.iterdir()) == ["README.md", "adapter_config.json",
                                                         "adapter_model.safetensors"]
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == "embedded"
    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as weights:
        assert all("lora_" in key for key in weights.keys())
    assert smoke_run.metrics()["adapter_bytes"] == (adapter / "adapter_model.safetensors").stat().st_size
    for checkpoint in smoke_run.checkpoints_dir.glob("checkpoint-*"):
        names = {p.name for p in checkpoint.iterdir()}
        assert "adapter_model.safetensors" in names and "model.safetensors" not in names


def test_each_stage_left_its_files_and_plots(smoke_run):
    for name in ("config.json", "corpus_report.json", "dropped_rows.jsonl", "test_clips.jsonl",
                 "footprint.json", "lora.json", "train_log.json", "predictions.jsonl",
                 "plots/durations.png", "plots/footprint.png", "plots/loss.png", "plots/wer.png"):
        assert (smoke_run.path / name).is_file(), name
    predictions = smoke_run.read_jsonl("predictions.jsonl", "05")
    assert len(predictions) == SMOKE_PARAMETERS["MAX_TEST_CLIPS"] and all(row["base"] and row["finetuned"] for row in predictions)
    assert len(smoke_run.read_json("train_log.json", "04")) == 2


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.name)
def test_executed_notebooks_have_no_errors(smoke_run, path):
    for cell in executed_cells(smoke_run, path.name):
        assert not [o for o in cell["outputs"] if o["output_type"] == "error"], cell["source"]


def test_notebook_01_prints_the_longest_kept_label(smoke_run):
    printed = "".join("".join(output.get("text", ""))
                      for cell in executed_cells(smoke_run, "01_data_preparation.ipynb")
                      for output in cell["outputs"] if output.get("name") == "stdout")
    longest = max(report["longest_label_tokens"]
                  for report in smoke_run.read_json("corpus_report.json", "01").values())
    assert 10 < longest <= 448 and f"longest kept label: {longest} tokens" in printed


def test_notebook_05_transcribes_only_max_test_clips(smoke_run, tmp_path):
    """05 alone on a copy of the run with MAX_TEST_CLIPS = 2 (no long recording): the first
    two of notebook 01's clips, each row saying whether it ran into its token cap."""
    import shutil

    copy = RunDir("smoke", tmp_path)
    shutil.copytree(smoke_run.path, copy.path, ignore=shutil.ignore_patterns("checkpoints", "notebooks"),
                    dirs_exist_ok=True)
    run_notebook(notebook_paths()[4], copy, {"RUN_NAME": "smoke", "RUNS_ROOT": str(tmp_path),
                                             "MAX_TEST_CLIPS": 2, "LONG_FORM_SECONDS": 0})
    rows = copy.read_jsonl("predictions.jsonl", "05")
    first = copy.read_jsonl("test_clips.jsonl", "01")[:2]
    assert [row["path"] for row in rows] == [clip["path"] for clip in first]
    assert all(isinstance(row["base_capped"], bool) and isinstance(row["finetuned_capped"], bool)
               for row in rows)


def test_training_prints_sentences_not_raw_log_dicts(smoke_run):
    """Notebook 04 prints a line per logging step (StepPrinter) and the WER lines, not the
    Trainer's raw log dicts ("{'loss': ...}") beside them."""
    printed = "".join("".join(output.get("text", ""))
                      for cell in executed_cells(smoke_run, "04_training.ipynb")
                      for output in cell["outputs"] if output.get("name") == "stdout")
    steps = SMOKE_PARAMETERS["MAX_STEPS"]
    assert f"step {steps}/{steps}: loss" in printed and "s/step" in printed
    assert "{'loss'" not in printed and "{'train_runtime'" not in printed, printed


def test_notebook_06_runs_alone_in_a_fresh_kernel(smoke_run):
    timing = "long_form_base_seconds"  # wall time of the base's long-form transcription: varies
    before = smoke_run.metrics()
    run_notebook(notebook_paths()[-1], smoke_run, {"RUN_NAME": "smoke", "RUNS_ROOT": str(smoke_run.path.parent)})
    after = smoke_run.metrics()
    assert after[timing] > 0 and {**after, timing: None} == {**before, timing: None}


def test_notebook_06_puts_long_form_wer_beside_short_clip_wer(smoke_run):
    metrics = smoke_run.metrics()
    seconds = SMOKE_PARAMETERS["LONG_FORM_SECONDS"]    # notebook 05's recording: 35 to 45 s
    assert seconds <= metrics["long_form_audio_seconds"] <= seconds + 10
    assert metrics["long_form_windows"] >= 2
    for model in ("base", "finetuned"):
        assert 0.0 <= metrics[f"long_form_{model}_wer"] <= 2.0, model
        assert 0.0 <= metrics[f"long_form_{model}_timestamp_share"] <= 1.0, model
    assert smoke_run.read_json("long_form/base_prediction.json", "06")["segments"]
    assert metrics["long_form_base_start_mae"] < 5.0   # tiny.en untouched keeps its timestamps


def test_a_notebook_without_its_inputs_names_the_missing_stage(tmp_path):
    import papermill

    with pytest.raises(papermill.PapermillExecutionError, match="notebook 01"):
        run_notebook(notebook_paths()[1], RunDir("empty", tmp_path),
                     {"RUN_NAME": "empty", "RUNS_ROOT": str(tmp_path)})


def test_the_token_is_in_no_file_of_the_run(smoke_run, fake_hf_token):
    """HF_TOKEN was set while the six notebooks ran: no executed notebook, log or result
    file in the run directory may contain it."""
    needle = fake_hf_token.encode()
    leaks = [str(p) for p in smoke_run.path.rglob("*") if p.is_file() and needle in p.read_bytes()]
    assert not leaks


def test_notebook_06_scores_the_script_and_skips_the_english_check_for_tiny_en(smoke_run):
    metrics = smoke_run.metrics()
    for model in ("base", "finetuned"):  # English references: tiny.en writes Latin letters
        assert metrics[f"{model}_script_share"] > 0.9, model
    streams = "".join("".join(output.get("text", ""))
                      for cell in executed_cells(smoke_run, "06_wer_comparison.ipynb")
                      for output in cell["outputs"] if output["output_type"] == "stream")
    assert "English check skipped: embedded is an English-only model" in streams
    assert "english_base_wer" not in metrics
