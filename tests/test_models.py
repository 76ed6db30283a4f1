"""helpers.model.load: sources, processors, precisions, languages, the conversion cache."""
import json
import shutil
import warnings
from pathlib import Path

import bitsandbytes as bnb
import jiwer
import numpy as np
import pytest
from fixtures.data_files import cv_mini_test_rows
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration
from transformers.models.whisper.english_normalizer import BasicTextNormalizer

from helpers.model import ct2, load as models
from helpers.audio import load_audio

pytestmark = pytest.mark.integration

CV_MINI = Path(__file__).resolve().parents[1] / "data" / "cv-mini" / "en"
SOT_EN, EOT_EN = 50257, 50256
SOT, HI, TRANSCRIBE, NOTIMESTAMPS = 50258, 50276, 50359, 50363


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    """Every conversion in this module goes to a fresh cache folder (never ~/.cache)."""
    root = tmp_path_factory.mktemp("converted")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(models.CACHE_ENV, str(root))
        yield root


def transcribe(model, processor, rows, **generate_kwargs) -> list:
    """Greedy transcripts of cv-mini rows."""
    audio = [load_audio(CV_MINI / "clips" / r["path"]) for r in rows]
    features = processor(audio, sampling_rate=16_000, return_tensors="pt").input_features
    with torch.no_grad():
        ids = model.generate(features.to(model.device, torch.float32), max_new_tokens=120,
                             **generate_kwargs)
    return processor.batch_decode(ids, skip_special_tokens=True)


def norm(text: str) -> str:
    """Whisper's basic normalizer (case, punctuation)."""
    return BasicTextNormalizer()(text).strip()


def tiny_multilingual_ct2_dir(path: Path) -> Path:
    """A CTranslate2 dir with a random tiny multilingual Whisper and the base tokenizer."""
    torch.manual_seed(0)
    config = WhisperConfig(vocab_size=51865, d_model=64, encoder_layers=2, decoder_layers=2,
                           encoder_attention_heads=4, decoder_attention_heads=4,
                           encoder_ffn_dim=128, decoder_ffn_dim=128)
    model = WhisperForConditionalGeneration(config)
    path.mkdir(parents=True)
    ct2.write_model_bin(path / "model.bin", ct2.ct2_variables_from_hf(model), ct2.PROJECTION_ALIAS)
    base = models.embedded_source(models.EMBEDDED_BASE).data_dir
    shutil.copy(base / "tokenizer.json", path / "tokenizer.json")
    base_config = json.loads((base / "config.json").read_text())
    base_config["alignment_heads"] = [[1, 0]]
    (path / "config.json").write_text(json.dumps(base_config))
    return path


# ---------------------------------------------------------------- processors


def test_embedded_processor_is_english_only_tiny_en():
    processor = models.load_processor()
    tok = processor.tokenizer
    ids = tok("hello world").input_ids
    assert ids[0] == SOT_EN and ids[-1] == EOT_EN and 50362 in ids
    assert tok.decode(ids, skip_special_tokens=True) == "hello world"
    assert tok.pad_token_id == EOT_EN and tok.convert_tokens_to_ids("<|30.00|>") == 51863
    assert processor.feature_extractor.feature_size == 80
    assert not models.is_multilingual(processor)


def test_base_processor_labels_carry_language_and_task():
    processor = models.load_processor(models.EMBEDDED_BASE, language="hindi")
    ids = processor.tokenizer("नमस्ते दुनिया").input_ids
    assert ids[:4] == [SOT, HI, TRANSCRIBE, NOTIMESTAMPS] and ids[-1] == 50257
    assert processor.tokenizer.decode(ids, skip_special_tokens=True) == "नमस्ते दुनिया"
    assert models.is_multilingual(processor)
    translate = models.load_processor(models.EMBEDDED_BASE, language="mr", task="translate")
    assert translate.tokenizer("x").input_ids[:3] == [SOT, 50320, 50358]  # <|mr|>


def test_saved_processor_reloads_the_same(tmp_path):
    from transformers import WhisperProcessor

    processor = models.load_processor(models.EMBEDDED_BASE, language="hindi")
    processor.save_pretrained(tmp_path)
    again = WhisperProcessor.from_pretrained(tmp_path)
    assert again.tokenizer("नमस्ते").input_ids == processor.tokenizer("नमस्ते").input_ids
    assert len(again.tokenizer) == len(processor.tokenizer) == 51865  # incl. 1501 timestamps
    assert again.tokenizer.convert_tokens_to_ids("<|30.00|>") == 51864


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("source", ["no-such-model", "./missing/dir", "/nope/a/b"])
def test_nonexistent_source_names_it_and_the_accepted_kinds(source):
    with pytest.raises(FileNotFoundError) as err:
        models.load_model(source)
    assert source in str(err.value) and "CTranslate2" in str(err.value)


def test_directory_without_a_model_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="neither model.bin"):
        models.load_processor(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(models.UnsafeWeightsError, match="(?s)pickle.*safe_serialization.*"
                                                         + models.PICKLE_ENV):
        models.load_processor(tmp_path)


def test_offline_hub_id_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="openai/whisper-large-v2"):
        models.load_processor("openai/whisper-large-v2")


def test_bad_precision_lists_the_precisions():
    with pytest.raises(ValueError, match="8bit.*4bit.*fp16.*fp32"):
        models.load_model("embedded", precision="int3")


def test_non_english_language_on_english_only_model_is_refused():
    with pytest.raises(ValueError, match="English-only"):
        models.load_processor("embedded", language="hindi")
    with pytest.raises(ValueError, match="English-only"):
        models.load_model("embedded", language="marathi")
    with pytest.raises(ValueError, match="task"):
        models.load_processor("embedded", task="summarize")
    assert models.load_processor("embedded", language="english").tokenizer("a").input_ids[0] == SOT_EN


def test_precision_arguments_for_cuda():
    four = models.precision_kwargs("4bit", "cuda")["quantization_config"]
    assert four.bnb_4bit_quant_type == "nf4" and four.bnb_4bit_use_double_quant
    assert four.bnb_4bit_compute_dtype == torch.float16
    assert models.precision_kwargs("4bit", "cpu")["quantization_config"].bnb_4bit_compute_dtype \
        == torch.float32
    assert models.precision_kwargs("8bit", "cuda")["quantization_config"].load_in_8bit
    assert models.precision_kwargs("fp16", "cuda") == {"dtype": torch.float16}


# ---------------------------------------------------------------- the embedded model


@pytest.fixture(scope="module")
def fp32_embedded():
    """The embedded tiny.en at fp32 on CPU, and its transcripts of 5 cv-mini clips."""
    model, processor = models.load_model("embedded", device="cpu")
    rows = cv_mini_test_rows(5)
    return model, processor, rows, transcribe(model, processor, rows)


def test_embedded_fp32_transcribes_common_voice(fp32_embedded, cache):
    model, _, rows, hyps = fp32_embedded
    assert model.dtype == torch.float32 and model.config.forced_decoder_ids is None
    assert model.generation_config.is_multilingual is False
    wer = jiwer.wer([norm(r["sentence"]) for r in rows], [norm(h) for h in hyps])
    assert wer < 0.6, list(zip([r["sentence"] for r in rows], hyps))
    entries = [p for p in cache.iterdir() if p.name.startswith("embedded-")]
    assert len(entries) == 1 and not list(cache.glob(".*"))  # no temp dir left behind


def test_cache_is_reused_not_rebuilt(fp32_embedded, cache):
    src = models.embedded_source("embedded")
    target = models.converted_dir(src)
    stamp = (target / "model.safetensors").stat().st_mtime_ns
    assert models.converted_dir(src) == target
    assert (target / "model.safetensors").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("precision,linear", [("8bit", bnb.nn.Linear8bitLt),
                                              ("4bit", bnb.nn.Linear4bit)])
def test_quantized_embedded_matches_fp32_on_clean_clips(fp32_embedded, precision, linear):
    _, _, rows, fp32_hyps = fp32_embedded
    clean = [i for i, (r, h) in enumerate(zip(rows, fp32_hyps)) if norm(r["sentence"]) == norm(h)]
    assert clean, "fp32 got no clip right; the cv-mini clips or the conversion changed"
    model, processor = models.load_model("embedded", precision=precision, device="cpu")
    assert isinstance(model.model.encoder.layers[0].self_attn.q_proj, linear)
    assert isinstance(model.model.decoder.layers[-1].fc2, linear)
    hyps = transcribe(model, processor, [rows[i] for i in clean])
    assert hyps == [fp32_hyps[i] for i in clean]


def test_fp16_on_cpu_warns_and_is_float16():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, _ = models.load_model("embedded", precision="fp16", device="cpu")
    assert model.dtype == torch.float16
    assert any("fp16" in str(w.message) for w in caught)


# ---------------------------------------------------------------- other sources


def test_local_hf_dir_source(tmp_path):
    torch.manual_seed(0)
    config = WhisperConfig(vocab_size=51864, d_model=64, encoder_layers=1, decoder_layers=1,
                           encoder_attention_heads=2, decoder_attention_heads=2,
                           encoder_ffn_dim=64, decoder_ffn_dim=64)
    WhisperForConditionalGeneration(config).save_pretrained(tmp_path)
    models.load_processor("embedded").save_pretrained(tmp_path)
    model, processor = models.load_model(str(tmp_path), device="cpu")
    assert model.config.d_model == 64 and not models.is_multilingual(processor)


def test_multilingual_ct2_dir_prompts_language_and_task(tmp_path):
    src = tiny_multilingual_ct2_dir(tmp_path / "tiny-ml")
    model, processor = models.load_model(src, language="hindi", device="cpu")
    assert models.is_multilingual(model) and models.is_multilingual(processor)
    gen = model.generation_config
    assert gen.language == "hindi" and gen.task == "transcribe"
    assert gen.lang_to_id["<|hi|>"] == HI and len(gen.lang_to_id) == 99
    assert gen.task_to_id == {"transcribe": TRANSCRIBE, "translate": 50358}
    assert gen.decoder_start_token_id == SOT and gen.no_timestamps_token_id == NOTIMESTAMPS
    labels = processor.tokenizer("नमस्ते").input_ids
    assert labels[:4] == [SOT, HI, TRANSCRIBE, NOTIMESTAMPS]
    features = torch.zeros(1, 80, 3000)
    out = model.generate(features, max_new_tokens=3, return_dict_in_generate=True)
    assert out.sequences[0, :4].tolist() == [SOT, HI, TRANSCRIBE, NOTIMESTAMPS]


def test_embedded_base_converts_and_transcribes_english():
    model, processor = models.load_model(models.EMBEDDED_BASE, language="english", device="cpu")
    config = model.config
    assert (config.d_model, config.encoder_layers, config.decoder_attention_heads,
            config.vocab_size) == (512, 6, 8, 51865)
    gen = model.generation_config
    assert gen.is_multilingual and gen.lang_to_id["<|hi|>"] == HI
    assert gen.begin_suppress_tokens == [220, 50257] and gen.eos_token_id == 50257
    rows = cv_mini_test_rows(3)
    hyps = transcribe(model, processor, rows)
    wer = jiwer.wer([norm(r["sentence"]) for r in rows], [norm(h) for h in hyps])
    assert wer < 0.6, list(zip([r["sentence"] for r in rows], hyps))


def test_is_multilingual_accepts_configs_and_models():
    assert models.is_multilingual(WhisperConfig(vocab_size=51865))
    assert not models.is_multilingual(WhisperConfig(vocab_size=51864))
    assert np.isscalar(models.is_multilingual(models.load_processor("embedded")))


@pytest.mark.parametrize("precision", ["8bit", "4bit"])
def test_a_quantized_model_lets_its_checkpoint_file_go(tmp_path, precision):
    """from_pretrained keeps float32 tensors as views of the memory-mapped safetensors file,
    which would keep the whole file (the quantized weights' originals too) mapped."""
    from fixtures.tiny_runs import tiny_model_dir

    path = tiny_model_dir(tmp_path / "tiny")
    model, _ = models.load_model(str(path), precision=precision, device="cpu")
    mapped = [line for line in Path("/proc/self/maps").read_text().splitlines()
              if str(path) in line]
    assert mapped == []
    assert model.get_encoder().embed_positions.weight.shape[0] == 1500   # still a model
