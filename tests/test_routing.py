"""helpers.transcribe.routing on a tiny random-weight multilingual Whisper with a seeded
adapter: the language recorded with an adapter, the Router's decisions, routed decoding
(each clip as its route says) and long-form windows. The real model, real clips and the
command: tests/test_routing_cli.py."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures.data_files import cv_mini_test_rows
from fixtures.tiny_runs import seeded_hindi_adapter, tiny_multilingual_dir

from helpers.audio import load_audio
from helpers.files import EMBEDDED_CORPUS
from helpers.model.adapters import ADAPTER_LANGUAGE, adapter_languages, attach_adapter
from helpers.model.load import load_model
from helpers.transcribe import routing
from helpers.transcribe.decode import transcribe_arrays
from helpers.transcribe.routing import Route, Router

pytestmark = pytest.mark.unit

EN_CLIPS = Path(EMBEDDED_CORPUS) / "clips"
TOKENS = 6  # a random model never stops: a few tokens are enough to compare transcripts


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_multilingual_dir(tmp_path_factory.mktemp("tiny-ml") / "model")


@pytest.fixture(scope="module")
def adapter_dir(tiny, tmp_path_factory):
    """A seeded LoRA adapter for `tiny` that changes its output, recorded as Hindi."""
    return seeded_hindi_adapter(str(tiny), tmp_path_factory.mktemp("adapter") / "adapter", 0.5)


@pytest.fixture(scope="module")
def loaded(tiny, adapter_dir):
    model, processor = load_model(str(tiny), device="cpu")
    return attach_adapter(model, adapter_dir).eval(), processor


@pytest.fixture(scope="module")
def audios():
    return [load_audio(EN_CLIPS / row["path"]) for row in cv_mini_test_rows(3)]


# ------------------------------------------------------------------ the recorded language
def test_the_adapter_records_its_languages_and_routing_reads_them(adapter_dir, tmp_path):
    assert json.loads((adapter_dir / ADAPTER_LANGUAGE).read_text()) == \
        {"language": "hindi", "replay_languages": []}
    assert adapter_languages(adapter_dir) == ["hindi"]
    (tmp_path / ADAPTER_LANGUAGE).write_text(json.dumps({"language": "hi",
                                                         "replay_languages": ["English"]}))
    assert adapter_languages(tmp_path) == ["hindi", "english"]


def test_an_adapter_without_the_file_reads_its_card_or_its_run(tmp_path):
    card = tmp_path / "hub" / "README.md"
    card.parent.mkdir()
    card.write_text("---\nlanguage: mr\nlibrary_name: peft\n---\n# an adapter\n")
    assert adapter_languages(card.parent) == ["marathi"]
    run = tmp_path / "runs" / "old"
    (run / "adapter").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"language": "hindi"}))
    assert adapter_languages(run / "adapter") == ["hindi"]
    (run / "config.json").write_text(json.dumps({"language": None}))
    assert adapter_languages(run / "adapter") == []


def test_adapter_codes_add_what_the_base_hears_a_language_as():
    assert routing.adapter_codes(["hindi"]) == {code: "hi" for code in routing.HEARD_AS["hi"]}
    both = routing.adapter_codes(["hindi", "english"])
    assert both["en"] == "en" and both["hi"] == "hi"
    assert routing.adapter_codes(["Marathi"]) == {"mr": "mr"}


def test_main_route_is_the_one_of_most_seconds():
    windows = [{"start": 0.0, "end": 30.0, "language": "hi", "adapter": True},
               {"start": 28.0, "end": 58.0, "language": "hi", "adapter": True},
               {"start": 58.0, "end": 70.0, "language": "en", "adapter": False}]
    assert routing.main_route(windows) == {"language": "hi", "adapter": True}
    assert routing.main_route(windows[2:]) == {"language": "en", "adapter": False}
    assert routing.main_route([]) == {}


# ------------------------------------------------------------------ the Router
def test_router_for_reads_the_adapter_and_the_model(loaded, adapter_dir):
    model, processor = loaded
    router = routing.router_for(model, processor, adapter_dir)
    assert router.routing and router.adapter_codes == routing.adapter_codes(["hindi"])
    assert not routing.router_for(model, processor, adapter_dir, routing=False).routing
    forced = routing.router_for(model, processor, adapter_dir, language="English")
    assert forced.forced == "en"
    assert forced.routes(model, processor, [np.zeros(16_000)]) == [Route("en", False)]
    assert routing.router_for(model, processor, adapter_dir, language="hindi").routes(
        model, processor, [np.zeros(16_000)]) == [Route("hi", True)]


def test_routes_follow_the_base_with_the_adapter_off(loaded, audios):
    """The codes a Router routes by are the base's (adapter off): they equal
    detect_languages under disable_adapter, and differ from the adapter's own."""
    model, processor = loaded
    with model.disable_adapter():
        base = routing.detect_languages(model, processor, audios)
    router = Router({base[0]: "hi"}, has_adapter=True)
    routes = router.routes(model, processor, audios)
    assert router.codes == base and router.detected == 3 and router.detect_seconds > 0
    assert routes == [Route("hi", True) if code == base[0] else Route(code, False) for code in base]
    unrouted = Router(None, has_adapter=True).routes(model, processor, audios)
    assert unrouted == [Route(code, True) for code in routing.detect_languages(model, processor, audios)]


def test_transcribe_routed_decodes_each_clip_as_its_route_says(loaded, audios):
    model, processor = loaded
    with model.disable_adapter():
        base = routing.detect_languages(model, processor, audios)
    for adapter_codes in ({base[0]: "hi"}, {"zz": "hi"}):  # first clip to the adapter, or none
        router = Router(adapter_codes, has_adapter=True)
        out = routing.transcribe_routed(model, processor, audios, router,
                                        max_new_tokens=TOKENS, fallback=False)
        for audio, (text, route) in zip(audios, out):
            with routing.decoding_as(model, route):
                assert text == transcribe_arrays(model, processor, [audio], TOKENS, fallback=False)[0]
        assert [route.adapter for _, route in out] == [code in adapter_codes for code in base]


def test_a_long_recording_is_routed_window_by_window(tiny, tmp_path):
    import soundfile as sf

    from helpers.transcribe.long_form import transcribe_long

    model, processor = load_model(str(tiny), device="cpu")
    rows = cv_mini_test_rows(12)
    audio = np.concatenate([load_audio(EN_CLIPS / row["path"]) for row in rows])[:40 * 16_000]
    sf.write(tmp_path / "long.wav", audio, 16_000)
    router = routing.router_for(model, processor, None)  # no adapter: the language detected
    result = transcribe_long(model, processor, tmp_path / "long.wav", fallback=False,
                             max_new_tokens=TOKENS, router=router)
    assert len(result["windows"]) >= 2 and router.detected == len(result["windows"])
    assert [w["language"] for w in result["windows"]] == router.codes
    assert all(w["adapter"] is False for w in result["windows"])
    assert {"language", "adapter"} <= set(result) and result["language"] in router.codes


# ------------------------------------------------------------------ stage two
def test_transcript_logprobs_equal_one_forward_pass_per_prefix(loaded, audios):
    from fixtures.tolerances import LOGPROB_ATOL

    from helpers.data.features import inference_features
    from helpers.transcribe.decode import generate_ids

    model, processor = loaded
    tokenizer, whisper = processor.tokenizer, routing.whisper_of(model)
    prompt = tokenizer.convert_tokens_to_ids(["<|startoftranscript|>", "<|en|>", "<|transcribe|>",
                                              "<|notimestamps|>"])
    with routing.adapter_off(model), routing.spoken_language(model, "en"):
        ids = generate_ids(model, processor, audios[:2], TOKENS, fallback=False)
        scores = routing.transcript_logprobs(model, processor, audios[:2], ids, "en")
        for audio, row, (score, language) in zip(audios[:2], ids, scores):
            tokens = row.tolist()[:TOKENS] + [tokenizer.eos_token_id]  # no end within the cap
            features = torch.from_numpy(inference_features([audio], processor.feature_extractor))
            steps = []
            with torch.no_grad():
                for k, token in enumerate([prompt[1], *tokens]):
                    prefix = prompt[:1] if k == 0 else prompt + tokens[:k - 1]
                    logits = whisper(input_features=features,
                                     decoder_input_ids=torch.tensor([prefix])).logits
                    steps.append(float(logits[0, -1].log_softmax(-1)[token]))
            assert language == pytest.approx(steps[0], abs=LOGPROB_ATOL)
            assert score == pytest.approx(sum(steps[1:]) / len(tokens), abs=LOGPROB_ATOL)


def test_doubtful_clips_are_settled_and_recorded(loaded, audios, adapter_dir):
    """Stage two on the tiny model: no transcript ends within TOKENS tokens, so both sides
    fail, every doubt goes to the base, and each is recorded with both confidences None."""
    model, processor = loaded
    router = routing.router_for(model, processor, adapter_dir)
    assert router.settles and router.primary == "hi"
    out = routing.transcribe_routed(model, processor, audios, router, max_new_tokens=TOKENS,
                                    fallback=False)
    doubtful = [code for code in router.codes if code not in routing.HEARD_AS["hi"]]
    assert [d["code"] for d in router.doubts] == doubtful and router.settled == len(doubtful)
    assert all(d["base"] is None and d["adapter"] is None and not d["to_adapter"]
               for d in router.doubts)
    assert [route for _, route in out] == [Route("hi", True) if code in routing.HEARD_AS["hi"]
                                           else Route(code, False) for code in router.codes]
    for audio, (text, route) in zip(audios, out):  # the greedy transcripts stage two made
        with routing.decoding_as(model, route):
            assert text == transcribe_arrays(model, processor, [audio], TOKENS, fallback=False)[0]
    assert not routing.router_for(model, processor, adapter_dir, language="en").settles


def test_the_longest_transcript_of_a_batch_ended_unless_it_reached_its_cap():
    """generate returns no <|endoftext|> in the longest row of a batch (the others are padded
    with it): that row ended, unless it reached its clip's cap. Stage two once called it a
    failure, and sent clean English clips to the adapter whenever they were the longest of
    their batch (the forgetting benchmark, 2026-12-08)."""
    eot = 50257
    ids = torch.tensor([[7, 8, eot, eot], [1, 2, 3, 4], [5, 6, 9, 4]])
    rows, capped = routing.ended_rows(ids, caps=[10, 10, 3], eot=eot)
    assert capped == [False, False, True]
    assert rows.tolist() == [[7, 8, eot, eot, eot], [1, 2, 3, 4, eot], [5, 6, 9, eot, eot]]


def test_evaluation_and_notebook_05_settle_doubts_as_the_command_does(loaded, audios, adapter_dir):
    """`predict_routed` (helpers.evaluate, notebooks 05/06) routes by both stages, as
    `transcribe_routed` (helpers.transcribe) does: it once identified clips only, and on
    make demo-hindi sent 19 of 24 Hindi test clips to the base (2026-12-08)."""
    from helpers.evaluate.scoring import predict_routed

    model, processor = loaded
    clips = [{"path": str(EN_CLIPS / row["path"])} for row in cv_mini_test_rows(3)]
    command = routing.router_for(model, processor, adapter_dir)
    expected = [route for _, route in routing.transcribe_routed(
        model, processor, audios, command, max_new_tokens=TOKENS, fallback=False)]
    router = routing.router_for(model, processor, adapter_dir)
    routes = routing.routes_of(model, processor, [Path(clip["path"]) for clip in clips], router)
    doubtful = [code for code in router.codes if code not in routing.HEARD_AS["hi"]]
    assert routes == expected and router.settled == len(doubtful) > 0, router.codes
    assert router.doubts == command.doubts
    _, routed = predict_routed(model, processor, clips, routing.router_for(model, processor, adapter_dir),
                               progress=False, fallback=False)
    assert routed == expected
