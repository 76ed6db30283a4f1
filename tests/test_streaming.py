"""Streaming the training corpus: features computed on the fly from cv-mini, never saved."""
import numpy as np
import pytest
from datasets import IterableDataset

from fixtures.tiny_runs import tiny_model_dir
from fixtures.tolerances import LOG_MEL_ATOL, assert_log_mel_close
from helpers.config import make_config, start_run
from helpers.data.features import prepare_features
from helpers.model.load import load_processor
from helpers.data.streaming import stream_features, streaming_dataset, training_rows
from helpers.train.trainer import run_training

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def processor():
    return load_processor("embedded")


def test_stream_gives_notebook_01s_features_in_a_shuffled_order(processor):
    config = make_config("embedded", max_train_clips=6)
    rows, reports = training_rows(config, processor.tokenizer)
    assert len(rows) == 6 and reports["train"]["kept"] == 340
    stream = stream_features(rows, processor, seed=1, shuffle_buffer=6, batch_size=4)
    assert isinstance(stream, IterableDataset)
    streamed = {row["audio"]: row for row in stream}
    stored = prepare_features(rows, processor)
    assert set(streamed) == set(stored["audio"])
    for row in stored:
        assert streamed[row["audio"]]["labels"] == row["labels"]
        streamed_row = streamed[row["audio"]]
        # the same mel_frames code on both sides, but it may run with other thread counts
        assert streamed_row["mel_pad"] == pytest.approx(row["mel_pad"], abs=LOG_MEL_ATOL)
        assert_log_mel_close(streamed_row["mel_frames"], row["mel_frames"])
    assert [row["audio"] for row in stream] != list(stored["audio"])  # shuffled


def test_streaming_needs_max_steps(processor):
    with pytest.raises(ValueError, match="max_steps"):
        streaming_dataset(make_config("embedded", streaming=True, max_steps=-1), processor)


def test_streaming_training_runs_without_features_on_disk(tmp_path):
    model = tiny_model_dir(tmp_path / "tiny-whisper")
    run, config = start_run("stream", "embedded", tmp_path, model=str(model), streaming=True,
                            max_train_clips=6, batch_size=2, max_steps=4, save_steps=2,
                            logging_steps=1, warmup_steps=0, eval_steps=None)
    metrics = run_training(config, run)
    assert metrics["train_steps"] == 4 and not (run.path / "features").exists()
    log = run.read_json("train_log.json", "04")
    assert [entry["step"] for entry in log] == [1, 2, 3, 4]
    assert all(np.isfinite(entry["loss"]) for entry in log)
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()
