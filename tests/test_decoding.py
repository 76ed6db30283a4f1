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
from helpers.transcribe.decode import (FALLBACK_TEMPERATURES, decoding_arguments, generate_ids, transcribe_arrays)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
CLIPS = sorted((ROOT / "data" / "cv-mini" / "en" / "clips").glob("*.mp3"))


@pytest.fixture(scope="module")
def looping_model(tmp_path_factory):
    """A tiny random Whisper (tiny.en's vocabulary): greedy decoding repeats itself."""
    from helpers.model.load import load_model

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
    from helpers.model.load import load_model

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


# ------------------------------------------------ 8-bit layers on a CPU at inference
@pytest.fixture(scope="module")
def embedded_8bit():
    from helpers.model.load import load_model

    return load_model("embedded", precision="8bit", device="cpu")


def test_8bit_layers_compute_with_dequantized_weights_inside_the_block(embedded_8bit):
    """dequantized_8bit_on_cpu: an 8-bit layer's output inside the block is its input times
    the dequantized int8 weight (float32 matmul; the same arithmetic, other summation
    order: rtol 1e-5); outside it, LLM.int8 also rounds the input to int8, so the outputs
    differ by about that rounding (measured: 0.02 at most, on outputs up to 5.6). The layers'
    modes come back as they were."""
    import bitsandbytes as bnb

    from helpers.model.load import dequantized_8bit_on_cpu

    model, _ = embedded_8bit
    layer = model.model.encoder.layers[0].fc1
    assert isinstance(layer, bnb.nn.Linear8bitLt)
    x = torch.randn(2, 50, layer.in_features, generator=torch.Generator().manual_seed(0))
    # bitsandbytes moves the row scales from the weight to the layer's state on its first
    # forward pass; either place holds the same scales.
    scales = layer.weight.SCB if layer.weight.SCB is not None else layer.state.SCB
    weight = layer.weight.data.float() * scales.float().unsqueeze(1) / 127
    expected = torch.nn.functional.linear(x, weight, layer.bias.float())
    with torch.inference_mode():
        int8 = layer(x)
        with dequantized_8bit_on_cpu(model) as switched:
            dequantized = layer(x)
    assert switched == sum(isinstance(m, bnb.nn.Linear8bitLt) for m in model.modules()) > 0
    torch.testing.assert_close(dequantized, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(int8, expected, rtol=1e-3, atol=1e-3)  # int8 inputs differ
    torch.testing.assert_close(int8, expected, rtol=0.05, atol=0.05)
    assert not any(m.training for m in model.modules())  # eval() mode restored


def test_8bit_transcripts_match_llm_int8s_on_clean_speech(embedded_8bit, monkeypatch):
    """What the faster path changes in words: on 4 clean clips, the transcripts of
    generate_ids' default on a CPU (dequantized weights) and of bitsandbytes' own eval path
    (LLM.int8, with the block switched off) differ by at most 1 word in 10 (measured on the
    80 test clips: WER 37.0% vs 36.7% against the references)."""
    import contextlib

    import helpers.transcribe.decode
    from helpers.metrics import error_rates

    model, processor = embedded_8bit
    audios = [load_audio(path) for path in CLIPS[:4]]
    switched = []

    @contextlib.contextmanager
    def counting(model):  # the real block, recording how many layers it switched
        with real(model) as count:
            switched.append(count)
            yield count

    real = helpers.transcribe.decode.dequantized_8bit_on_cpu
    monkeypatch.setattr(helpers.transcribe.decode, "dequantized_8bit_on_cpu", counting)
    dequantized = transcribe_arrays(model, processor, audios)
    assert switched and switched[0] > 0  # generate_ids decoded through the block
    monkeypatch.setattr(helpers.transcribe.decode, "dequantized_8bit_on_cpu",
                        lambda model: contextlib.nullcontext())
    int8 = transcribe_arrays(model, processor, audios)
    assert all(dequantized) and error_rates(int8, dequantized)["wer"] <= 0.1, (int8, dequantized)
