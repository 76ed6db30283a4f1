"""Whisper's temperature fallback in helpers.transcribe, on a real random-weight Whisper
(whose greedy output is a repetition loop) and on the embedded model."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fixtures.tiny_runs import tiny_model_dir
from helpers.audio import load_audio
from helpers.metrics import is_loop
from helpers.transcribe import (FALLBACK_TEMPERATURES, decoding_arguments, generate_ids,
                                transcribe_arrays)

ROOT = Path(__file__).resolve().parent.parent
CLIPS = sorted((ROOT / "data" / "cv-mini" / "en" / "clips").glob("*.mp3"))


@pytest.fixture(scope="module")
def looping_model(tmp_path_factory):
    """A tiny random Whisper (tiny.en's vocabulary): greedy decoding repeats itself."""
    from helpers.models import load_model

    return load_model(str(tiny_model_dir(tmp_path_factory.mktemp("tiny"))), precision="fp32")


@pytest.fixture(scope="module")
def audios():
    return [load_audio(path) for path in CLIPS[:3]]


def test_arguments_follow_openais_decoder():
    assert decoding_arguments(False) == {"temperature": 0.0}
    on = decoding_arguments(True)
    assert on["temperature"] == FALLBACK_TEMPERATURES == (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    assert on["compression_ratio_threshold"] > 1 and on["logprob_threshold"] == -1.0


def test_greedy_loops_and_fallback_decodes_again(looping_model, audios):
    model, processor = looping_model
    greedy = transcribe_arrays(model, processor, audios, max_new_tokens=48, fallback=False)
    assert all(is_loop(text) for text in greedy), greedy
    guarded = transcribe_arrays(model, processor, audios, max_new_tokens=48, fallback=True)
    assert guarded != greedy  # each loop was thrown away and sampled again


def test_fallback_is_seeded_and_leaves_the_callers_random_state(looping_model, audios):
    model, processor = looping_model
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = transcribe_arrays(model, processor, audios, max_new_tokens=48)
    assert torch.equal(torch.get_rng_state(), state)  # training's dropout etc. unaffected
    torch.manual_seed(7)  # another caller state: the transcripts do not depend on it
    assert transcribe_arrays(model, processor, audios, max_new_tokens=48) == first


@pytest.mark.parametrize("max_new_tokens", [5, 17])
def test_max_new_tokens_caps_the_generated_tokens(looping_model, audios, max_new_tokens):
    """A greedy loop never ends by itself: it stops at exactly max_new_tokens new tokens."""
    model, processor = looping_model
    ids = generate_ids(model, processor, audios[:1], max_new_tokens, fallback=False)
    assert ids.shape == (1, max_new_tokens), ids  # Whisper returns the new tokens only


def test_embedded_model_keeps_its_transcripts_on_clean_speech():
    """On speech the model handles, the guard changes nothing: greedy is accepted."""
    from helpers.models import load_model

    model, processor = load_model("embedded", precision="fp32")
    audio = [load_audio(CLIPS[0])]
    assert transcribe_arrays(model, processor, audio) == \
        transcribe_arrays(model, processor, audio, fallback=False)


def test_cli_stderr_holds_only_the_progress_bar():
    """`python -m helpers.transcribe CLIP` (8-bit): JSON on stdout, the bar alone on stderr."""
    result = subprocess.run([sys.executable, "-m", "helpers.transcribe", "--precision", "8bit",
                             str(CLIPS[0])], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["path"] == str(CLIPS[0])
    pieces = [piece for piece in re.split(r"[\r\n]+", result.stderr) if piece.strip()]
    assert pieces and all(piece.startswith("transcribing:") for piece in pieces), pieces


def test_cli_no_fallback_flag(tmp_path):
    result = subprocess.run([sys.executable, "-m", "helpers.transcribe", "--no-fallback",
                             str(CLIPS[1])], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["text"].split()) >= 2
