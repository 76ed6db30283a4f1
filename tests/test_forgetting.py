"""helpers.evaluate.forgetting (notebook 06's English check) on a tiny random-weight multilingual Whisper."""
from pathlib import Path

import pytest
import torch
from fixtures.data_files import cv_mini_test_rows
from fixtures.tiny_runs import tiny_multilingual_dir

from helpers.evaluate import forgetting
from helpers.model.adapters import add_lora, save_adapter
from helpers.audio import load_audio
from helpers.config import make_config
from helpers.model.load import load_model
from helpers.run import RunDir
from helpers.files import EMBEDDED_CORPUS

pytestmark = pytest.mark.integration

SOT, EN, HI, TRANSCRIBE, NOTIMESTAMPS = 50258, 50259, 50276, 50359, 50363
EN_CLIPS = Path(EMBEDDED_CORPUS) / "clips"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A random multilingual Whisper (d_model 64, 2 layers) saved as a local model folder."""
    return tiny_multilingual_dir(tmp_path_factory.mktemp("tiny-ml") / "model")


@pytest.fixture(scope="module")
def tiny_run(tiny, tmp_path_factory):
    """A run of `tiny` in Hindi whose adapter is not a no-op: LoRA's B matrices (zero when
    created) are filled with noise, so adapter on and off transcribe differently."""
    config = make_config("embedded-hindi", model=str(tiny), precision="fp32",
                         eval_batch_size=4, decode_fallback=False)
    run = RunDir("tiny-hindi", tmp_path_factory.mktemp("runs"))
    model, _ = load_model(config.model, precision="fp32", language="hindi", device="cpu")
    model = add_lora(model, config.lora_settings(), gradient_checkpointing=False)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if "lora_B" in name:
                weight.normal_(0, 0.5)
    save_adapter(model, run.adapter_dir, str(tiny))
    return config, run


def test_spoken_language_switches_the_prompt_and_restores_it(tiny):
    model, _ = load_model(str(tiny), language="hindi", device="cpu")
    features = torch.zeros(1, 80, 3000)
    with forgetting.spoken_language(model, "english"):
        english = model.generate(features, max_new_tokens=2, return_dict_in_generate=True)
    hindi = model.generate(features, max_new_tokens=2, return_dict_in_generate=True)
    assert english.sequences[0, :4].tolist() == [SOT, EN, TRANSCRIBE, NOTIMESTAMPS]
    assert hindi.sequences[0, :4].tolist() == [SOT, HI, TRANSCRIBE, NOTIMESTAMPS]
    assert model.generation_config.language == "hindi"


def test_detected_languages_are_the_best_language_token(tiny):
    """detect_language's answer, mapped to codes, equals the language token with the highest
    logit after <|startoftranscript|>, computed here by a plain forward pass."""
    model, processor = load_model(str(tiny), language="hindi", device="cpu")
    paths = [EN_CLIPS / row["path"] for row in cv_mini_test_rows(3)]
    audios = [load_audio(path) for path in paths]
    codes = forgetting.detected_languages(model, processor, audios)
    features = processor.feature_extractor(audios, sampling_rate=16_000,
                                           return_tensors="pt").input_features
    with torch.no_grad():
        logits = model(input_features=features,
                       decoder_input_ids=torch.full((3, 1), SOT)).logits[:, -1]
    lang_ids = list(model.generation_config.lang_to_id.values())
    best = [lang_ids[i] for i in logits[:, lang_ids].argmax(-1).tolist()]
    names = {v: k.strip("<|>") for k, v in model.generation_config.lang_to_id.items()}
    assert codes == [names[i] for i in best]
    clips = [{"path": path} for path in paths]
    assert forgetting.detected_share(model, processor, clips, codes[0], batch_size=2) == \
        codes.count(codes[0]) / 3


def test_english_check_transcribes_with_the_adapter_on_and_off(tiny_run, capsys):
    config, run = tiny_run
    result = forgetting.english_check(config, run, n_clips=3)
    assert result["english_clips"] == 3
    for key in ("english_base_wer", "english_finetuned_wer", "english_base_cer",
                "english_finetuned_cer"):
        assert result[key] >= 0
    rows = run.read_jsonl("english_check.jsonl", "test")
    assert len(rows) == 3 and all(Path(row["path"]).parent == EN_CLIPS for row in rows)
    assert any(row["base"] != row["finetuned"] for row in rows)  # the adapter was switched
    assert "WER" in capsys.readouterr().out


def test_english_check_skips_an_english_only_model_with_one_line(tmp_path, capsys):
    config = make_config("embedded")  # tiny.en
    assert forgetting.english_check(config, RunDir("x", tmp_path), n_clips=8) is None
    out = capsys.readouterr().out.strip()
    assert out.startswith("English check skipped: embedded is an English-only model")
    assert "\n" not in out and not (tmp_path / "x" / "english_check.jsonl").exists()


def test_english_check_skip_reasons(tiny_run):
    config, _ = tiny_run
    assert forgetting.english_check_skip_reason(config, 8) is None
    assert "0" in forgetting.english_check_skip_reason(config, 0)
    english = make_config("embedded-hindi", model=config.model, language="en")
    assert "in English" in forgetting.english_check_skip_reason(english, 8)
