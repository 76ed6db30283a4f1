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
