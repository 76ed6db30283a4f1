"""The whole pipeline on both Whisper input generations: 80 mel bins (tiny.en's vocabulary,
as every Whisper up to large-v2) and 128 mel bins with large-v3's vocabulary (51,866
tokens, <|yue|>), on tiny random-weight models (tests/fixtures/generations.py).

Per generation: features (compact log-mel vs the extractor), collator, LoRA training on an
8-bit and a 4-bit base, merged export, CTranslate2 export (and back), short-form
transcription by `python -m helpers.transcribe` with the adapter.
"""
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from fixtures.generations import GENERATIONS, MEL_BINS, V3_NOTIMESTAMPS, V3_YUE, VOCAB, tiny_generation_dir
from fixtures.tolerances import CT2_FLOAT32_ATOL, MERGE_RTOL, assert_log_mel_close

pytestmark = pytest.mark.integration

CV_MINI = Path(__file__).resolve().parents[1] / "data" / "cv-mini" / "en"
LANGUAGE = {"mel80": None, "mel128": "english"}   # training language (cv-mini/en is English)
TRAIN_CLIPS = 4
TRAINING = dict(batch_size=2, max_steps=2, save_steps=2,
                logging_steps=1, warmup_steps=0, learning_rate=1e-3, eval_steps=None)


@dataclass
class Generation:
    """One tiny model of a generation, and where its runs go."""
    name: str
    root: Path
    model: Path

    @property
    def mels(self) -> int:
        return MEL_BINS[self.name]

    @property
    def vocab(self) -> int:
        return VOCAB[self.name]

    @property
    def multilingual(self) -> bool:
        return self.name == "mel128"


@pytest.fixture(scope="module", params=GENERATIONS)
def generation(request, tmp_path_factory) -> Generation:
    root = tmp_path_factory.mktemp(request.param)
    return Generation(request.param, root, tiny_generation_dir(root / "model", request.param))


@pytest.fixture(scope="module")
def processor(generation):
    from helpers.model.load import load_processor

    return load_processor(str(generation.model), language=LANGUAGE[generation.name])


def train_features(generation: Generation):
    """helpers.data.features.prepare_features of the first TRAIN_CLIPS cv-mini training clips,
    with the generation's processor (what notebook 01 saves, without reading every split)."""
    from helpers.data.filter import filter_corpus
    from helpers.data.corpora import load_corpus
    from helpers.data.features import prepare_features
    from helpers.model.load import load_processor

    processor = load_processor(str(generation.model), language=LANGUAGE[generation.name])
    rows = load_corpus(str(CV_MINI), split="train").select(range(TRAIN_CLIPS))
    kept, _ = filter_corpus(rows, processor.tokenizer)
    return prepare_features(kept, processor)


_RUNS: dict = {}


def trained_run(generation: Generation, precision: str):
    """(run, config, metrics): the tiny model trained 2 LoRA steps on a `precision` base by
    helpers.train.trainer.run_training, on TRAIN_CLIPS cv-mini clips; made once per generation
    and precision. The 8-bit run computes the features, the others copy them."""
    from helpers.config import start_run
    from helpers.data.prepare import save_dataset_atomic
    from helpers.train.trainer import run_training

    key = (str(generation.root), precision)
    if key not in _RUNS:
        settings = dict(model=str(generation.model), language=LANGUAGE[generation.name],
                        precision=precision, **TRAINING)
        run, config = start_run(precision, "embedded", generation.root, **settings)
        if precision == "8bit":
            save_dataset_atomic(train_features(generation), run.features_dir("train"))
        else:
            first, _, _ = trained_run(generation, "8bit")
            shutil.copytree(first.features_dir("train"), run.features_dir("train"))
        _RUNS[key] = (run, config, run_training(config, run))
    return _RUNS[key]


def cv_mini_clips(count: int = 2) -> list[Path]:
    """The first `count` cv-mini test clips."""
    return sorted((CV_MINI / "clips").glob("*.mp3"))[:count]


# ---------------------------------------------------------------- model and processor


def test_model_and_processor_have_the_generations_shapes(generation, processor):
    from transformers import WhisperConfig

    from helpers.model.load import is_multilingual

    config = WhisperConfig.from_pretrained(generation.model)
    assert (config.num_mel_bins, config.vocab_size) == (generation.mels, generation.vocab)
    assert processor.feature_extractor.feature_size == generation.mels
    assert len(processor.tokenizer) == generation.vocab
    assert is_multilingual(processor) is generation.multilingual
    if generation.multilingual:   # large-v3's numbering: one language more, the rest moved up
        tok = processor.tokenizer
        assert tok.convert_tokens_to_ids(["<|yue|>", "<|notimestamps|>", "<|0.00|>", "<|30.00|>"]) \
            == [V3_YUE, V3_NOTIMESTAMPS, V3_NOTIMESTAMPS + 1, generation.vocab - 1]
        assert tok("hi").input_ids[:4] == [50258, 50259, 50360, V3_NOTIMESTAMPS]  # <|en|> <|transcribe|>


# ---------------------------------------------------------------- features and collator


@pytest.mark.parametrize("samples", [400, 16_000, 80_000])
def test_compact_features_equal_the_extractors(generation, processor, samples):
    from helpers.data.features import full_features, mel_frames

    audio = (0.1 * np.random.default_rng(samples).standard_normal(samples)).astype(np.float32)
    extractor = processor.feature_extractor
    direct = extractor(audio, sampling_rate=16_000, return_tensors="np").input_features[0]
    frames, pad = mel_frames(audio, extractor)
    assert frames.shape == ((samples + 400) // 160 + 1, generation.mels)
    assert_log_mel_close(full_features(frames, pad), direct)   # shape (mels, 3000) checked too


def test_stored_features_and_collated_batch(generation, processor):
    from datasets import load_from_disk

    from helpers.audio import load_audio
    from helpers.train.collator import SpeechSeq2SeqCollator

    run, config, _ = trained_run(generation, "8bit")
    stored = load_from_disk(str(run.features_dir("train")))   # rows as the Trainer gets them
    rows = [stored[0], stored[1]]
    assert all(np.shape(row["mel_frames"])[1] == generation.mels for row in rows)
    sot = processor.tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
    batch = SpeechSeq2SeqCollator(processor, sot)(rows)
    assert batch["input_features"].shape == (2, generation.mels, 3000)
    for got, path in zip(batch["input_features"], stored["audio"][:2]):
        direct = processor.feature_extractor(load_audio(path), sampling_rate=16_000,
                                             return_tensors="np").input_features[0]
        assert_log_mel_close(got.numpy(), direct)
    prefix = processor.tokenizer.prefix_tokens[1:]   # the start token is stripped
    assert batch["labels"][:, :len(prefix)].tolist() == [prefix, prefix]


# ---------------------------------------------------------------- training


@pytest.mark.parametrize("precision", ["8bit", "4bit"])
def test_lora_trains_on_a_quantized_base(generation, precision):
    from safetensors import safe_open

    from helpers.model.adapters import adapter_base_model

    run, _, metrics = trained_run(generation, precision)
    assert metrics["train_steps"] == 2 and math.isfinite(metrics["final_loss"])
    assert adapter_base_model(run.adapter_dir) == str(generation.model)
    with safe_open(str(run.adapter_dir / "adapter_model.safetensors"), "pt") as weights:
        lora_b = [weights.get_tensor(k) for k in weights.keys() if "lora_B" in k]
    assert lora_b and any(t.abs().sum() > 0 for t in lora_b)   # B starts at zero: it trained


# ---------------------------------------------------------------- exports


@pytest.fixture(scope="module")
def merged(generation):
    """The 8-bit run's adapter merged into its fp32 base by `python -m helpers.export`."""
    from helpers.export.__main__ import main

    run, _, _ = trained_run(generation, "8bit")
    out = generation.root / "exports" / "merged"
    assert main(["--adapter", str(run.adapter_dir), "--to", "merged", "--out", str(out)]) == 0
    return out


def features_of(processor, paths) -> torch.Tensor:
    """The extractor's (batch, mels, 3000) features of audio files."""
    from helpers.audio import load_audio

    return processor.feature_extractor([load_audio(p) for p in paths], sampling_rate=16_000,
                                       return_tensors="pt").input_features


def test_merged_model_is_the_base_plus_adapter(generation, processor, merged):
    from transformers import WhisperForConditionalGeneration

    from helpers.model.adapters import attach_adapter
    from helpers.model.load import load_model

    config = json.loads((merged / "config.json").read_text())
    assert (config["num_mel_bins"], config["vocab_size"]) == (generation.mels, generation.vocab)
    assert json.loads((merged / "preprocessor_config.json").read_text())["feature_size"] \
        == generation.mels
    run, _, _ = trained_run(generation, "8bit")
    base, _ = load_model(str(generation.model), precision="fp32", device="cpu",
                         language=LANGUAGE[generation.name])
    features = features_of(processor, cv_mini_clips())
    decoder_ids = torch.tensor([processor.tokenizer("a test").input_ids[:-1]] * 2)
    with torch.no_grad():
        expected = attach_adapter(base, run.adapter_dir).eval()(
            input_features=features, decoder_input_ids=decoder_ids).logits
        got = WhisperForConditionalGeneration.from_pretrained(str(merged)).eval()(
            input_features=features, decoder_input_ids=decoder_ids).logits
    torch.testing.assert_close(got, expected, rtol=MERGE_RTOL, atol=MERGE_RTOL * expected.abs().max().item())


@pytest.fixture(scope="module")
def ct2_export(generation):
    """The 8-bit run's adapter exported for CTranslate2 (float32 weights)."""
    from helpers.export.__main__ import main

    run, _, _ = trained_run(generation, "8bit")
    out = generation.root / "exports" / "ct2"
    assert main(["--adapter", str(run.adapter_dir), "--to", "ct2", "--out", str(out),
                 "--quantization", "float32"]) == 0
    return out


def test_ct2_export_carries_the_mel_bins_and_the_vocabulary(generation, ct2_export):
    import ctranslate2

    vocabulary = json.loads((ct2_export / "vocabulary.json").read_text())
    assert len(vocabulary) == generation.vocab and vocabulary[-1] == "<|30.00|>"
    assert json.loads((ct2_export / "preprocessor_config.json").read_text())["feature_size"] \
        == generation.mels
    model = ctranslate2.models.Whisper(str(ct2_export), device="cpu", compute_type="float32")
    assert model.n_mels == generation.mels and model.is_multilingual is generation.multilingual
    if generation.multilingual:
        config = json.loads((ct2_export / "config.json").read_text())
        assert len(config["lang_ids"]) == model.num_languages == 100 and V3_YUE in config["lang_ids"]
        assert vocabulary[V3_YUE] == "<|yue|>" and vocabulary[V3_NOTIMESTAMPS] == "<|notimestamps|>"
        assert config["suppress_ids"][-5:] == list(range(50359, 50364))  # large-v3's ids


def test_ct2_logits_equal_the_merged_models(generation, processor, merged, ct2_export):
    """CTranslate2 (float32) and transformers on the same features: encoder output, the
    decoder's logits at each greedy step, and for multilingual models the language
    probabilities over all 100 language tokens."""
    import ctranslate2
    from transformers import WhisperForConditionalGeneration

    features = features_of(processor, cv_mini_clips())
    model = ctranslate2.models.Whisper(str(ct2_export), device="cpu", compute_type="float32")
    storage = ctranslate2.StorageView.from_array(np.ascontiguousarray(features.numpy()))
    reference = WhisperForConditionalGeneration.from_pretrained(str(merged)).eval()
    prompt = processor.tokenizer.prefix_tokens
    result = model.generate(storage, [prompt] * 2, beam_size=1, max_length=len(prompt) + 6,
                            return_logits_vocab=True, suppress_blank=False,
                            suppress_tokens=[])   # raw logits (suppressed ones are -3.4e38)
    with torch.no_grad():
        encoded = reference.model.encoder(features).last_hidden_state
        np.testing.assert_allclose(np.array(model.encode(storage, to_cpu=True)), encoded.numpy(),
                                   rtol=0, atol=CT2_FLOAT32_ATOL)
        for row, one in enumerate(result):
            ids = one.sequences_ids[0]
            logits = reference(encoder_outputs=(encoded[row:row + 1],),
                               decoder_input_ids=torch.tensor([prompt + ids])).logits[0]
            steps = logits[len(prompt) - 1:len(prompt) - 1 + len(ids)].numpy()
            np.testing.assert_allclose(np.array(one.logits[0])[:len(ids)], steps, rtol=0,
                                       atol=CT2_FLOAT32_ATOL)
        if generation.multilingual:
            languages = model.detect_language(storage)
            lang_ids = sorted(reference.generation_config.lang_to_id.values())
            first = reference(encoder_outputs=(encoded,),
                              decoder_input_ids=torch.tensor([[prompt[0]]] * 2)).logits[:, 0]
            probs = torch.softmax(first[:, lang_ids], dim=-1).numpy()
            names = processor.tokenizer.convert_ids_to_tokens(lang_ids)
            for row, pairs in enumerate(languages):
                got = dict(pairs)
                assert len(got) == 100 and "<|yue|>" in got
                np.testing.assert_allclose([got[n] for n in names], probs[row], rtol=0,
                                           atol=CT2_FLOAT32_ATOL)


def test_ct2_export_loads_back_as_the_same_model(generation, processor, merged, ct2_export,
                                                 monkeypatch, tmp_path):
    """helpers.model.load reads the CTranslate2 folder back (helpers.model.ct2): same shapes, ids, logits."""
    from transformers import WhisperForConditionalGeneration

    from helpers.model.load import CACHE_ENV, load_model

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "converted"))
    model, loaded = load_model(str(ct2_export), precision="fp32", device="cpu")
    assert model.config.num_mel_bins == generation.mels and model.config.vocab_size == generation.vocab
    assert loaded.feature_extractor.feature_size == generation.mels
    assert loaded.tokenizer.get_vocab() == processor.tokenizer.get_vocab()
    if generation.multilingual:
        assert model.generation_config.lang_to_id["<|yue|>"] == V3_YUE
        assert model.generation_config.no_timestamps_token_id == V3_NOTIMESTAMPS
    features = features_of(processor, cv_mini_clips(1))
    decoder_ids = torch.tensor([processor.tokenizer("a test").input_ids[:-1]])
    with torch.no_grad():
        got = model(input_features=features, decoder_input_ids=decoder_ids).logits
        expected = WhisperForConditionalGeneration.from_pretrained(str(merged)).eval()(
            input_features=features, decoder_input_ids=decoder_ids).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=CT2_FLOAT32_ATOL)


# ---------------------------------------------------------------- transcription


def test_transcribe_command_with_the_adapter(generation, ct2_export, capsys):
    """`python -m helpers.transcribe --adapter ...` (in-process) finds the adapter's base,
    feeds it features of its own width and prompts in the language asked (<|yue|>, the
    token large-v3 added, for the 128-bin model). Its greedy texts equal those of the
    CTranslate2 export of the same adapter: another implementation (merged weights, C++
    decoder) whose logits agree to 1e-6 (test above); random weights never stop, so each
    transcript fills its clip's token cap, the same in both (`token_cap`)."""
    from helpers.export.ctranslate2 import ct2_transcribe
    from helpers.transcribe.__main__ import main

    run, _, _ = trained_run(generation, "8bit")
    paths = cv_mini_clips()
    language = "cantonese" if generation.multilingual else None
    args = ["--adapter", str(run.adapter_dir), "--no-fallback", "--batch-size", "2",
            "--no-routing"]  # the adapter on every clip, as the export applies it
    assert main(args + (["--language", language] if language else []) + list(map(str, paths))) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["path"] for line in lines] == list(map(str, paths))
    expected = ct2_transcribe(ct2_export, paths, compute_type="float32", language=language)
    assert [line["text"] for line in lines] == expected and all(expected)
