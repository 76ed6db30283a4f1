"""`python -m helpers.transcribe` on the embedded model, with and without an adapter."""
import pytest
import json
import subprocess
import sys
from pathlib import Path

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
CLIPS = sorted((ROOT / "data" / "cv-mini" / "en" / "clips").glob("*.mp3"))


def transcribe(*args):
    return subprocess.run([sys.executable, "-m", "helpers.transcribe", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_bad_paths_get_one_line_errors_and_good_ones_are_transcribed(tmp_path):
    not_audio = tmp_path / "notes.mp3"
    not_audio.write_text("this is not audio")
    result = transcribe(CLIPS[0], tmp_path / "missing.wav", not_audio, CLIPS[1])
    assert result.returncode == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["path"] for line in lines] == [str(CLIPS[0]), str(CLIPS[1])]
    assert all(len(line["text"].split()) >= 2 for line in lines)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and "missing.wav" in errors[0] and "notes.mp3" in errors[1]
    assert "Traceback" not in result.stderr


def test_folder_input_and_clean_exit(tmp_path):
    for clip in CLIPS[:2]:
        (tmp_path / clip.name).write_bytes(clip.read_bytes())
    result = transcribe(tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2


def test_adapter_is_used(smoke_run):
    """The CLI finds the adapter's base model and reproduces notebook 05's fine-tuned texts.

    Exact: the same code on the same clips in the same batch (the run's eval_batch_size),
    with the same decoding seed, as notebook 05 ran them.
    """
    rows = smoke_run.read_jsonl("predictions.jsonl", "05")
    batch = smoke_run.read_json("config.json", "01")["eval_batch_size"]
    result = transcribe("--adapter", smoke_run.adapter_dir, "--precision", "8bit",
                        "--batch-size", batch, *[row["path"] for row in rows])
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["text"] for line in result.stdout.splitlines()] == \
        [row["finetuned"] for row in rows]
