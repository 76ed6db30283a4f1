"""The web page in a real browser: `python -m helpers.app` served on localhost, driven by
headless Chromium (Debian's chromium + chromium-driver) through selenium.

Run by `make test-browser` (which installs requirements-browser.txt; .ci/run installs
chromium first), never by `make test`: tests/conftest.py collects tests/browser/ only when
it is named on the command line.
"""
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixtures.page import embedded_adapter  # noqa: E402
from page import AppPage, chromium, serve_page  # noqa: E402

from helpers.app import BASE_ONLY, FINETUNED_ONLY, word_diff

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CLIP = ROOT / "data" / "cv-mini" / "en" / "clips" / "common_voice_en_39721904.mp3"  # test split


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(page URL, the transcripts the same model gives in this process): the page serves a
    seeded random adapter on the embedded model; while it starts, this process transcribes
    the clip with that adapter off and on."""
    from helpers.audio import load_audio
    from helpers.transcribe.decode import transcribe_arrays

    adapter_dir, model, processor = embedded_adapter(tmp_path_factory.mktemp("page") / "adapter")
    audio = load_audio(CLIP)

    def expected():
        with model.disable_adapter():
            base = transcribe_arrays(model, processor, [audio])[0]
        return base, transcribe_arrays(model, processor, [audio])[0]

    with ThreadPoolExecutor(1) as pool:
        texts = pool.submit(expected)
        with serve_page(adapter_dir) as url:
            yield url, texts


@pytest.fixture(scope="module")
def page(served):
    with chromium() as driver:
        yield AppPage(driver, served[0])


def test_an_uploaded_clip_is_transcribed_by_both_models_side_by_side(served, page):
    page.open().upload(CLIP)
    page.wait_for_upload()
    shown = page.transcribe()
    base, finetuned = served[1].result()
    assert shown.message == "3.4 s of audio transcribed."
    assert (shown.base, shown.finetuned) == (base, finetuned)
    assert len(base.split()) >= 5  # the reference: "The film was much better than the book."
    base_tokens, tuned_tokens = word_diff(base, finetuned)
    assert shown.base_marked == [text for text, mark in base_tokens if mark == BASE_ONLY]
    assert shown.finetuned_marked == [text for text, mark in tuned_tokens if mark == FINETUNED_ONLY]
    for shown_time in (shown.base_time, shown.finetuned_time):
        assert shown_time.startswith("transcribed in ") and shown_time.endswith(" s")
        assert float(shown_time.split()[-2]) > 0


def test_a_text_file_gets_a_message_not_a_traceback(page, tmp_path):
    named_as_audio = tmp_path / "notes.mp3"
    named_as_audio.write_text("a shopping list, not audio")
    page.open().upload(named_as_audio)
    page.wait_for_upload()
    shown = page.transcribe()
    assert shown.message.startswith("⚠️ notes.mp3 is not audio this page can read")
    assert "does not decode as WAV, FLAC, OGG, MP3" in shown.message
    assert (shown.base, shown.finetuned) == ("", "")
    assert "Traceback" not in page.driver.find_element("tag name", "body").text
    text_file = tmp_path / "notes.txt"
    text_file.write_text("a shopping list, not audio")
    page.open().upload(text_file)  # gradio's upload box refuses it by its type
    assert "Invalid file type: notes.txt" in page.toast()
    assert page.transcribe().message.startswith("⚠️ No audio yet")
