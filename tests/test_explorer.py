"""The transcript explorer widget, driven from code."""
import pytest
from pathlib import Path

import soundfile
import numpy as np

from helpers.notebook.explorer import TranscriptExplorer, word_diff_html

pytestmark = pytest.mark.unit


def test_word_diff_marks_substitutions_and_deletions():
    html = word_diff_html("the cat sat down", "the bat sat")
    assert "<del" in html and "cat" in html and "down" in html
    assert '<ins style="color:#2a9d3f">bat</ins>' in html
    assert word_diff_html("Hello, world!", "hello world") == "hello world"


def test_selecting_a_clip_shows_its_texts(tmp_path):
    rows = []
    for i in range(3):
        path = tmp_path / f"clip{i}.wav"
        soundfile.write(path, np.zeros(1600, dtype="float32"), 16000)
        rows.append({"path": str(path), "reference": f"reference {i}",
                     "base": f"base {i}", "finetuned": f"tuned {i}"})
    explorer = TranscriptExplorer(rows)
    assert explorer.texts == {"reference": "reference 0", "base": "base 0", "finetuned": "tuned 0"}
    explorer.picker.value = 2  # what a person's click does
    assert explorer.texts["finetuned"] == "tuned 2"
    assert "reference 2" in explorer.table.value and "tuned" in explorer.table.value
    assert explorer.player.value == Path(rows[2]["path"]).read_bytes()
    assert explorer.select(1)["base"] == "base 1" and explorer.picker.value == 1
