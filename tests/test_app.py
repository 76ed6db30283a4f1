"""The web page's logic (helpers.app) without gradio: input checks, the word diff, the two
transcripts from one model, the command's errors, and that nothing but the page imports
gradio. The page itself in a real browser: tests/browser/ (`make test-browser`)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fixtures.data_files import tone, write_audio
from fixtures.page import embedded_adapter
from helpers.app import (BASE_ONLY, FINETUNED_ONLY, MAX_PAGE_SECONDS, PageError, PageModels, check_audio, run_page, word_diff)
from helpers.audio import load_audio
from helpers.metrics import normalize_text

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "data" / "cv-mini" / "en" / "clips" / "common_voice_en_39721904.mp3"  # test split


# ------------------------------------------------------------------ input

def test_a_clip_is_loaded_as_16k_audio():
    audio = check_audio(str(CLIP))
    # exact: check_audio decodes through load_audio itself, the same code on both sides
    assert audio.dtype == np.float32 and np.array_equal(audio, load_audio(CLIP))


def test_no_input_asks_for_audio():
    with pytest.raises(PageError, match="No audio yet"):
        check_audio(None)


@pytest.mark.parametrize("name", ["notes.mp3", "notes.txt", "empty.wav"])
def test_a_file_that_is_not_audio_is_named_without_its_temporary_path(tmp_path, name):
    path = tmp_path / name
    path.write_text("" if name == "empty.wav" else "this is not audio")
    with pytest.raises(PageError) as error:
        check_audio(str(path))
    message = str(error.value)
    assert message.startswith(f"{name} is not audio this page can read")
    assert "MP3" in message and str(tmp_path) not in message


def test_a_silent_clip_is_refused(tmp_path):
    path = write_audio(tmp_path / "quiet.wav", np.zeros(16_000, dtype=np.float32), 16_000)
    with pytest.raises(PageError, match="quiet.wav is silent"):
        check_audio(str(path))


def test_a_clip_longer_than_the_page_allows_is_refused(tmp_path):
    path = write_audio(tmp_path / "long.flac", tone(16_000, MAX_PAGE_SECONDS + 2), 16_000)
    with pytest.raises(PageError, match=rf"long.flac is {MAX_PAGE_SECONDS + 2:.1f} s long"):
        check_audio(str(path))
    ok = write_audio(tmp_path / "ok.flac", tone(16_000, MAX_PAGE_SECONDS), 16_000)
    assert len(check_audio(str(ok))) == MAX_PAGE_SECONDS * 16_000


# ------------------------------------------------------------------ diff

def test_word_diff_marks_the_changed_word_on_each_side():
    base, tuned = word_diff("The film was much better than the movie.",
                            "The film was much better than the book.")
    assert base == [("The film was much better than the ", None), ("movie.", BASE_ONLY)]
    assert tuned == [("The film was much better than the ", None), ("book.", FINETUNED_ONLY)]


def test_word_diff_ignores_case_and_punctuation_and_marks_missing_words():
    base, tuned = word_diff("Hello, world! It is late", "hello world it is very late")
    assert [text for text, mark in base if mark] == []
    assert tuned == [("hello world it is ", None), ("very", FINETUNED_ONLY), (" late", None)]


words = st.lists(st.sampled_from(["a", "b", "B.", "c", "dog", "x-y"]), max_size=8)


@settings(max_examples=200, deadline=None)
@given(words, words)
def test_word_diff_gives_back_both_texts_and_marks_only_differences(base_words, tuned_words):
    base, tuned = " ".join(base_words), " ".join(tuned_words)
    base_tokens, tuned_tokens = word_diff(base, tuned)
    assert "".join(text for text, _ in base_tokens) == base
    assert "".join(text for text, _ in tuned_tokens) == tuned
    same = [normalize_text(w) for w in base_words] == [normalize_text(w) for w in tuned_words]
    marked = any(mark for _, mark in base_tokens + tuned_tokens)
    assert marked != same
    for text, mark in base_tokens + tuned_tokens:
        assert not mark or text == text.strip()  # a highlight covers words, not spaces


# ------------------------------------------------------------------ models

@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    """(adapter dir, PEFT model, processor): a seeded random adapter on the embedded model."""
    return embedded_adapter(tmp_path_factory.mktemp("page") / "adapter")


@pytest.fixture(scope="module")
def expected(adapter):
    """The clip's transcripts by the adapter's model in this process: (adapter off, on)."""
    from helpers.transcribe.decode import transcribe_arrays

    _, model, processor = adapter
    audio = load_audio(CLIP)
    with model.disable_adapter():
        base = transcribe_arrays(model, processor, [audio])[0]
    return base, transcribe_arrays(model, processor, [audio])[0]


def test_the_page_loads_the_adapter_and_transcribes_with_it_off_then_on(adapter, expected):
    models = PageModels.load(None, str(adapter[0]))  # the base model named in the adapter
    assert models.description.startswith("embedded + adapter ")
    audio = check_audio(str(CLIP))
    comparison = models.transcribe(audio)
    # Same weights, same code, same process: the same words.
    assert (comparison.base, comparison.finetuned) == expected
    assert comparison.base_seconds > 0 and comparison.finetuned_seconds > 0
    assert comparison.audio_seconds == pytest.approx(len(audio) / 16_000)
    assert len(comparison.base.split()) >= 5  # the reference has 8 words


def test_run_page_shows_the_diff_or_a_message_never_raises(adapter, expected, tmp_path, capsys):
    _, model, processor = adapter
    models = PageModels(model, processor, "test")
    result = run_page(models, str(CLIP))
    assert (result.base, result.finetuned) == word_diff(*expected)
    assert result.message == "3.4 s of audio transcribed."
    assert result.base_time.startswith("transcribed in ") and result.base_time.endswith(" s")
    not_audio = tmp_path / "notes.mp3"
    not_audio.write_text("this is not audio")
    result = run_page(models, str(not_audio))
    assert result.message.startswith("⚠️ notes.mp3 is not audio") and result.base == []
    broken = PageModels(model, processor=None)  # fails inside transcription
    result = run_page(broken, str(CLIP))
    assert result.message.startswith("⚠️ Transcription failed (AttributeError)")
    assert "Traceback" not in result.message and "Traceback" in capsys.readouterr().err


def test_a_model_without_adapter_is_refused():
    with pytest.raises(ValueError, match="load an adapter"):
        PageModels(object(), None)


# ------------------------------------------------------------------ command, imports

def test_command_errors_are_one_line_without_traceback(tmp_path, capsys, monkeypatch):
    """`python -m helpers.app`'s main(): exit status 2 and one `error:` line naming the cause."""
    from helpers.app import main

    assert main(["--adapter", str(tmp_path / "nowhere")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and len(error.splitlines()) == 1
    assert "nowhere" in error or "requirements-app.txt" in error  # the latter without gradio
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` fails, as uninstalled
    assert main(["--adapter", str(tmp_path)]) == 2
    assert "pip install -r requirements-app.txt" in capsys.readouterr().err


def test_nothing_but_the_page_imports_gradio():
    """Importing every helpers module does not even try to import gradio (an import hook
    sees the attempt whether gradio is installed or not); only helpers/app.py names it,
    inside a function."""
    script = ("import importlib, pkgutil, sys\n"
              "tried = []\n"
              "class Watch:\n"
              "    def find_spec(self, name, path=None, target=None):\n"
              "        if name.split('.')[0] == 'gradio':\n"
              "            tried.append(name)\n"
              "sys.meta_path.insert(0, Watch())\n"
              "import helpers\n"
              "for module in pkgutil.iter_modules(helpers.__path__):\n"
              "    importlib.import_module('helpers.' + module.name)\n"
              "assert 'helpers.app' in sys.modules\n"
              "print(tried)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    sources = [*ROOT.glob("helpers/*.py"), *ROOT.glob("scripts/*.py"),
               *ROOT.glob("notebooks/src/*.py"), *ROOT.glob("benchmarks/*.py")]
    naming = [p.relative_to(ROOT).as_posix() for p in sources
              if "import gradio" in p.read_text(encoding="utf-8")]
    assert naming == ["helpers/app.py"]
    lines = [line for line in (ROOT / "helpers" / "app.py").read_text().splitlines()
             if "import gradio" in line]
    assert lines and all(line.startswith("        ") for line in lines)
