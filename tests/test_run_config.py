"""The run directory (atomic files, clear errors) and presets/config resolution."""
import json
from pathlib import Path

import pytest

from helpers.config import PRESETS, make_config, stage_config, start_run
from helpers.run import MissingStageError, RunDir

pytestmark = pytest.mark.unit


def test_write_json_is_atomic_and_leaves_no_temp_files(tmp_path):
    run = RunDir("r", tmp_path)
    run.write_json("metrics.json", {"a": 1})
    run.write_json("metrics.json", {"a": 2})
    assert json.loads((run.path / "metrics.json").read_text()) == {"a": 2}
    assert sorted(p.name for p in run.path.iterdir()) == ["metrics.json"]


def test_update_metrics_merges(tmp_path):
    run = RunDir("r", tmp_path)
    run.update_metrics(base_wer=0.4)
    merged = run.update_metrics(finetuned_wer=0.2)
    assert merged == {"base_wer": 0.4, "finetuned_wer": 0.2} == run.metrics()


def test_missing_stage_names_file_and_notebook(tmp_path):
    run = RunDir("r", tmp_path)
    with pytest.raises(MissingStageError, match=r"predictions\.jsonl.*notebook 05"):
        run.read_jsonl("predictions.jsonl", "notebook 05")


def test_jsonl_round_trip_keeps_unicode(tmp_path):
    run = RunDir("r", tmp_path)
    rows = [{"text": "क्या आप"}, {"text": 'say "hi"'}]
    run.write_jsonl("p.jsonl", rows)
    assert run.read_jsonl("p.jsonl", "x") == rows


def test_presets_follow_the_recipe():
    from helpers.config import BLOG, PACKED

    blog = make_config("blog")
    assert (blog.model, blog.precision, blog.learning_rate) == ("openai/whisper-large-v2", "8bit", 1e-3)
    assert BLOG["batch_size"] == 8        # the recipe's 8 clips, packed: 2 windows of about 5
    assert (blog.pack, blog.batch_size) == (True, 2) and all(
        getattr(make_config(name), key) == value for name in PRESETS for key, value in PACKED.items())
    assert blog.lora == {"r": 32, "alpha": 64, "dropout": 0.05,
                         "target_modules": ["q_proj", "v_proj"], "bias": "none"}
    assert (blog.warmup_steps, blog.num_train_epochs, blog.fp16) == (50, 3.0, True)
    embedded = make_config("embedded")
    assert embedded.lora == blog.lora and embedded.precision == "8bit"
    assert set(PRESETS) == {"blog", "blog-fleurs", "blog-v3-turbo", "embedded", "embedded-hindi"}
    fleurs = make_config("blog-fleurs")
    assert fleurs.corpus == "fleurs:hi_in" and blog.corpus.startswith("mdc:")
    assert {k: v for k, v in vars(fleurs).items() if k not in ("preset", "corpus", "text_column")} \
        == {k: v for k, v in vars(blog).items() if k not in ("preset", "corpus", "text_column")}
    assert blog.cell_timeout is None and embedded.cell_timeout == 1800


def test_embedded_hindi_preset_is_the_recipe_on_the_hindi_corpus():
    from helpers.demo import default_run_name
    from helpers.files import REPO_ROOT

    hindi, blog = make_config("embedded-hindi"), make_config("blog")
    assert (hindi.model, hindi.language, hindi.precision) == ("embedded-base", "hindi", "8bit")
    assert hindi.lora == blog.lora  # r 32, alpha 64, dropout 0.05 on q_proj, v_proj
    assert (hindi.batch_size, hindi.learning_rate) == (blog.batch_size, blog.learning_rate)
    assert Path(hindi.corpus) == REPO_ROOT / "data" / "cv-mini" / "hi"
    assert (Path(hindi.corpus) / "train.tsv").is_file()
    assert hindi.train_splits == ["train"] and hindi.test_split == "test"
    assert hindi.eval_split not in hindi.train_splits
    # sized for 2 CPU cores: a few dozen steps, a capped test split, no fp16 on a CPU
    assert 0 < hindi.max_steps <= 60 and hindi.warmup_steps < hindi.max_steps
    assert hindi.max_test_clips and hindi.max_test_clips <= 60 and not hindi.fp16
    assert default_run_name("embedded-hindi") == "demo-hindi"
    assert default_run_name("embedded") == "demo"


def test_embedded_hindi_run_cannot_switch_preset(tmp_path):
    start_run("r", "embedded-hindi", tmp_path)
    run, config = stage_config("r", tmp_path, "embedded-hindi")
    assert (config.model, config.language) == ("embedded-base", "hindi")
    with pytest.raises(ValueError, match="embedded-hindi"):
        stage_config("r", tmp_path, "embedded")


def test_overrides_are_case_insensitive_and_none_is_ignored():
    config = make_config("embedded", MAX_STEPS=3, LANGUAGE=None)
    assert config.max_steps == 3 and config.language is None


def test_unknown_preset_and_setting_are_rejected():
    with pytest.raises(ValueError, match="unknown preset"):
        make_config("huge")
    with pytest.raises(ValueError, match="unknown setting.*max_stepz"):
        make_config("embedded", max_stepz=3)


def test_stage_config_reads_and_records_overrides(tmp_path):
    start_run("r", "embedded", tmp_path, max_steps=7)
    run, config = stage_config("r", tmp_path, learning_rate=5e-4)
    assert (config.max_steps, config.learning_rate) == (7, 5e-4)
    assert json.loads((run.path / "config.json").read_text())["learning_rate"] == 5e-4


def test_stage_config_without_notebook_01_says_so(tmp_path):
    with pytest.raises(MissingStageError, match="notebook 01"):
        stage_config("never-started", tmp_path)


# ------------------------------------------------------------------ run identity (issue 22)
def test_run_name_defaults_to_the_preset_and_later_notebooks_find_the_latest_run(tmp_path):
    run, config = start_run(None, "embedded-hindi", tmp_path)
    assert run.path == tmp_path / "embedded-hindi" and config.run_id
    start_run(None, "embedded", tmp_path)
    assert stage_config(None, tmp_path)[0].name == "embedded"  # no RUN_NAME, no PRESET: the latest
    assert stage_config(None, tmp_path, "embedded-hindi")[0].name == "embedded-hindi"
    with pytest.raises(MissingStageError, match="run notebook 01 first"):
        stage_config(None, tmp_path / "empty")


def test_the_run_id_is_kept_for_the_same_data_and_renewed_for_other_data(tmp_path, capsys):
    first = start_run("r", "embedded", tmp_path, max_train_clips=8)[1].run_id
    assert start_run("r", "embedded", tmp_path, max_train_clips=8, max_steps=3)[1].run_id == first
    renewed = start_run("r", "embedded", tmp_path, max_train_clips=9)[1].run_id
    assert renewed != first
    assert f"max_train_clips 8 → 9): new run id; what notebooks 02-06 made for run id {first}" in capsys.readouterr().out


def test_a_run_name_is_not_reused_for_another_preset_model_or_corpus(tmp_path):
    start_run("r", "embedded", tmp_path)
    for changed in ({"preset": "embedded-hindi"}, {"preset": "embedded", "model": "embedded-base"},
                    {"preset": "embedded", "corpus": str(tmp_path)}):
        with pytest.raises(ValueError, match=r"RUN_NAME 'r' .* holds a run of another kind .*"
                                             r"set RUN_NAME = None .* or move the folder"):
            start_run("r", **changed, runs_root=tmp_path)
    assert json.loads((tmp_path / "r" / "config.json").read_text())["preset"] == "embedded"  # untouched


def marked_run(tmp_path):
    """A run with notebook 01's files and marker, notebook 04's adapter and marker, 05's too."""
    from helpers.run import adapter_record, finish_stage

    run, config = start_run("m", "embedded", tmp_path)
    for name in ("corpus_report.json", "test_clips.jsonl", "train_durations.json"):
        run.write_json(name, [])
    finish_stage(run, "01", config.run_id)
    (run.path / "adapter").mkdir()
    (run.path / "adapter" / "adapter_model.safetensors").write_bytes(b"weights-1")
    finish_stage(run, "04", config.run_id, train_steps=2)
    run.write_jsonl("predictions.jsonl", [{"reference": "a", "base": "b", "finetuned": "a"}])
    finish_stage(run, "05", config.run_id, **adapter_record(run, None))
    return run, config


def test_later_notebooks_check_the_markers_of_the_ones_they_read(tmp_path):
    from helpers.run import StaleStageError, check_stage_inputs, trained_adapter

    run, config = marked_run(tmp_path)
    assert set(check_stage_inputs(run, config, "06")) == {"05"}
    assert trained_adapter(run, config.run_id) == run.adapter_dir
    (run.path / "stages" / "01.json").unlink()
    with pytest.raises(MissingStageError, match=r"notebook 01 \(01_data_preparation\) has not finished "
                                                r"for run 'm': its completion marker .* is missing\. "
                                                r"Run notebook 01 again to its last cell"):
        stage_config("m", tmp_path, stage="02")
    run, config = marked_run(tmp_path / "again")
    (run.path / "test_clips.jsonl").write_text("")  # not what 01 wrote (a half-uploaded file)
    with pytest.raises(StaleStageError, match=r"test_clips.jsonl is 0 bytes, but notebook 01 wrote"):
        check_stage_inputs(run, config, "03")


def test_05_and_06_refuse_an_adapter_or_predictions_of_another_training(tmp_path):
    from helpers.run import StaleStageError, check_stage_inputs, finish_stage, trained_adapter

    run, config = marked_run(tmp_path)
    (run.path / "adapter" / "adapter_model.safetensors").write_bytes(b"weights-2")  # same size
    with pytest.raises(StaleStageError, match="adapter_model.safetensors is not the file notebook 04 wrote"):
        trained_adapter(run, config.run_id)
    finish_stage(run, "04", config.run_id, train_steps=3)  # 04 trained again, 05 did not
    with pytest.raises(StaleStageError, match="predictions.jsonl .* were made with an earlier adapter: "
                                              "notebook 04 has trained again since"):
        check_stage_inputs(run, config, "06")
    _, renewed = start_run("m", "embedded", tmp_path, max_train_clips=5)  # other data: a new run id
    with pytest.raises(StaleStageError, match=f"are of run id {config.run_id}, an earlier preparation"):
        trained_adapter(run, renewed.run_id)


@pytest.mark.integration  # prepares cv-mini features twice
def test_notebook_01_skips_data_it_already_prepared_for_the_same_settings(tmp_path, capsys):
    """SKIP_IF_DONE (the all-in-one notebook's default): a finished preparation for the same
    data settings is reused, features untouched; other data settings prepare again."""
    from fixtures.tiny_runs import prepared_run
    from helpers.data.prepare import prepare_run_data
    from helpers.model.load import load_processor
    from helpers.run import finish_stage

    run, config = prepared_run(tmp_path, "skip", train_clips=4, test_clips=2)
    finish_stage(run, "01", config.run_id)
    features = {p: p.stat().st_mtime_ns for p in (run.path / "features").rglob("*") if p.is_file()}
    processor = load_processor(config.model)
    reports = prepare_run_data(config, run, processor, reuse=True)
    assert "skipped: notebook 01 already prepared this data" in capsys.readouterr().out
    assert reports == json.loads((run.path / "corpus_report.json").read_text())
    assert {p: p.stat().st_mtime_ns for p in features} == features  # not written again
    _, other = start_run("skip", "embedded", tmp_path, max_train_clips=3, max_test_clips=2)
    prepare_run_data(other, run, processor, reuse=True)
    assert "skipped" not in capsys.readouterr().out.split("new run id")[-1]
    assert len(json.loads((run.path / "train_durations.json").read_text())) == 3
