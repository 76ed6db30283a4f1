"""The tuned model in the engines users deploy to, run by those engines themselves:
faster-whisper 1.2.1 loads `--to ct2` as it is (`WhisperModel(folder)`), whisper.cpp
(pywhispercpp 1.5.1) loads `--to ggml`; their WER on cv-mini test clips against the adapter's
in our path; `python -m helpers.transcribe --engine faster-whisper --vad --word-timestamps`
on a long recording; the page's faster-whisper models. The engines come from
requirements-engines.txt, which `make test` installs."""
import json

import pytest

from fixtures.tolerances import assert_engine_words_close
from helpers.audio import load_audio
from helpers.evaluate.scoring import predict, score
from helpers.export.__main__ import main as export_main

pytestmark = pytest.mark.integration

CLIPS = 24  # cv-mini test clips (about 190 words): enough that one flipped word is half a point


@pytest.fixture(scope="module")
def adapter(trained_embedded):
    """The adapter of the shared 2-step training run (tests/fixtures/tiny_runs.py)."""
    run, _, _ = trained_embedded
    return run.adapter_dir


@pytest.fixture(scope="module")
def clips():
    """The first CLIPS cv-mini test clips, {"path", "sentence", "audio" (16 kHz samples)}."""
    from helpers.data.corpora import load_corpus
    from helpers.files import EMBEDDED_CORPUS

    rows = load_corpus(str(EMBEDDED_CORPUS), split="test").select(range(CLIPS))
    return [{"path": row["audio"], "sentence": row["sentence"], "audio": load_audio(row["audio"])}
            for row in rows]


@pytest.fixture(scope="module")
def ours(adapter, clips):
    """WER of the fp32 base + the unmerged adapter in our path (`python -m helpers.transcribe`)."""
    from helpers.model.adapters import load_for_transcription

    model, processor = load_for_transcription(None, str(adapter), None, "fp32")
    return score(clips, predict(model, processor, clips, progress=False))


@pytest.fixture(scope="module")
def ct2_export(adapter, tmp_path_factory):
    """`python -m helpers.export --to ct2 --quantization float32` of the adapter."""
    out = tmp_path_factory.mktemp("engines") / "ct2"
    assert export_main(["--adapter", str(adapter), "--to", "ct2", "--out", str(out),
                        "--quantization", "float32"]) == 0
    return out


def faster_whisper_wer(model, clips) -> dict:
    """WER of faster-whisper's own transcribe (its defaults, beam size 1) on the clips."""
    texts = []
    for clip in clips:
        segments, _ = model.transcribe(clip["audio"], beam_size=1)
        texts.append(" ".join(segment.text.strip() for segment in segments))
    return score(clips, texts)


def test_faster_whisper_loads_the_export_as_it_is_with_the_adapters_wer(ct2_export, clips, ours):
    from faster_whisper import WhisperModel

    float32 = faster_whisper_wer(WhisperModel(str(ct2_export)), clips)  # float32 on a CPU
    int8 = faster_whisper_wer(WhisperModel(str(ct2_export), compute_type="int8"), clips)
    print("ours", ours, "faster-whisper float32", float32, "int8", int8)
    assert_engine_words_close(float32, ours, clips, "float32")
    assert_engine_words_close(int8, ours, clips, "int8")


def test_whisper_cpp_loads_the_ggml_export_with_the_adapters_wer(adapter, clips, ours, tmp_path):
    from helpers.export.engines import engine_text
    from helpers.export.ggml import load_whisper_cpp, whisper_cpp_segments

    rates = {}
    for quantization in ("f16", "q8_0"):
        out = tmp_path / f"ggml-{quantization}.bin"
        assert export_main(["--adapter", str(adapter), "--to", "ggml", "--out", str(out),
                            "--quantization", quantization]) == 0
        model = load_whisper_cpp(out)
        rates[quantization] = score(clips, [engine_text(whisper_cpp_segments(model, clip["audio"]))
                                            for clip in clips])
    print("ours", ours, "whisper.cpp", rates)
    assert (tmp_path / "ggml-q8_0.bin").stat().st_size < 0.6 * (tmp_path / "ggml-f16.bin").stat().st_size
    assert_engine_words_close(rates["f16"], ours, clips, "whisper.cpp")
    assert_engine_words_close(rates["q8_0"], ours, clips, "whisper.cpp int8")


@pytest.fixture(scope="module")
def recording(clips, tmp_path_factory):
    """A 35-45 s recording of test clips joined with pauses (helpers.data.long_form)."""
    from helpers.data.long_form import build_long_form_from_clips

    return build_long_form_from_clips(clips, tmp_path_factory.mktemp("long"), count=1,
                                      min_seconds=35, max_seconds=45, seed=1)[0]


def test_transcribe_engine_prints_segments_with_timed_words(adapter, recording, tmp_path,
                                                            monkeypatch, capsys):
    from helpers.metrics import error_rates
    from helpers.model.load import CACHE_ENV
    from helpers.transcribe.__main__ import main

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    command = ["--engine", "faster-whisper", "--vad", "--word-timestamps", "--adapter",
               str(adapter), recording["path"]]
    assert main(command) == 0
    out, err = capsys.readouterr()
    assert "exporting" in err  # the adapter merged and converted, once
    (result,) = [json.loads(line) for line in out.splitlines()]
    assert result["path"] == recording["path"] and len(result["segments"]) >= 2
    for segment in result["segments"]:
        words = segment["words"]
        assert words and " ".join(w["word"] for w in words).split() == segment["text"].split()
        assert all(0 <= w["start"] <= w["end"] <= recording["duration"] + 0.5 for w in words)
        assert all(a["start"] <= b["start"] for a, b in zip(words, words[1:]))
    assert error_rates([recording["text"]], [result["text"]])["wer"] < 0.5
    assert main(command) == 0
    assert "exporting" not in capsys.readouterr().err  # cached: found again, not redone


def test_transcribe_engine_names_unreadable_files_and_refuses_vad_without_it(adapter, tmp_path,
                                                                             capsys):
    from helpers.transcribe.__main__ import main

    bad = tmp_path / "notes.wav"
    bad.write_text("not audio")
    with pytest.raises(SystemExit):
        main(["--vad", str(bad)])
    assert "--vad need --engine faster-whisper" in capsys.readouterr().err
    assert main(["--engine", "faster-whisper", str(bad)]) == 1
    assert str(bad) in capsys.readouterr().err


def test_page_runs_both_models_in_faster_whisper(adapter, clips, tmp_path, monkeypatch):
    from helpers.app import EnginePageModels, run_page
    from helpers.model.load import CACHE_ENV

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    models = EnginePageModels.load(None, str(adapter))
    assert "faster-whisper" in models.description
    result = run_page(models, clips[0]["path"])
    assert result.message.endswith("of audio transcribed.")
    assert "".join(text for text, _ in result.finetuned).strip()
    assert "".join(text for text, _ in result.base).strip()


def test_our_decoding_features_are_faster_whispers(clips):
    """Our decoding pads as faster-whisper does: its own feature extractor, on the same samples,
    gives the same 80 x 3000 input (the STFTs differ by float rounding: numpy's against torch's)."""
    import numpy as np
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.feature_extractor import FeatureExtractor

    from helpers.data.features import inference_features
    from helpers.model.load import load_processor

    extractor = load_processor("embedded").feature_extractor
    theirs = FeatureExtractor()
    for clip in clips[:4]:
        features = theirs(clip["audio"])
        expected = pad_or_trim(features[:, :features.shape[-1] - 1])  # transcribe's content frames
        ours = inference_features([clip["audio"]], extractor)[0]
        np.testing.assert_allclose(ours, expected, rtol=0, atol=5e-5)
