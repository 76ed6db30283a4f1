"""`python -m helpers.export`: the adapter merged into a plain Whisper, and converted for
CTranslate2; both transcribe cv-mini test clips with the adapter model's WER (within a point)."""
import json

import pytest
from safetensors import safe_open
from transformers import WhisperForConditionalGeneration

from fixtures.tolerances import assert_int8_words_close
from helpers.model.adapters import attach_adapter
from helpers.evaluate.scoring import predict, score
from helpers.export.ctranslate2 import ct2_transcribe
from helpers.export.__main__ import main
from helpers.model.load import load_model, load_processor

pytestmark = pytest.mark.integration

ONE_POINT = 0.01


def adapter_wer(run, config, clips, precision: str) -> dict:
    """WER of the base at `precision` + the unmerged adapter (PEFT) on the clips."""
    model, processor = load_model(config.model, precision=precision)
    model = attach_adapter(model, run.adapter_dir)
    return score(clips, predict(model, processor, clips, progress=False))


@pytest.fixture(scope="module")
def trained(trained_embedded):
    """(run, test clips, WER of the fp32 base + unmerged adapter on them).

    The merge is done in fp32, so the unmerged reference is the fp32 base + adapter. (On
    the 8-bit base the adapter model differs by int8 rounding alone: on these 6 clips by
    one word or none, too few words to hold it to one point.)
    """
    run, config, _ = trained_embedded
    clips = run.read_jsonl("test_clips.jsonl", "01")
    return run, clips, adapter_wer(run, config, clips, "fp32")


@pytest.fixture(scope="module")
def merged_dir(trained, tmp_path_factory):
    run, _, _ = trained
    out = tmp_path_factory.mktemp("export") / "merged"
    assert main(["--adapter", str(run.adapter_dir), "--to", "merged", "--out", str(out)]) == 0
    return out


def test_merged_model_is_a_plain_whisper_with_processor_files(merged_dir):
    names = {p.name for p in merged_dir.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
            "preprocessor_config.json", "processor_config.json"} <= names
    assert not any(name.startswith("adapter") or name.endswith((".bin", ".pt")) for name in names)
    with safe_open(str(merged_dir / "model.safetensors"), "pt") as weights:
        keys = list(weights.keys())
        assert not [k for k in keys if "lora" in k or "base_layer" in k]
        assert weights.get_tensor("model.encoder.layers.0.self_attn.q_proj.weight").dtype.is_floating_point
    assert not list(merged_dir.parent.glob(".merged-*"))  # staging folder renamed away


def test_merged_model_transcribes_with_the_adapter_models_wer(trained, merged_dir):
    _, clips, adapter_wer = trained
    model = WhisperForConditionalGeneration.from_pretrained(str(merged_dir)).eval()
    assert not hasattr(model, "peft_config")
    merged_wer = score(clips, predict(model, load_processor(str(merged_dir)), clips, progress=False))
    print("adapter", adapter_wer, "merged", merged_wer)
    assert merged_wer["wer"] == pytest.approx(adapter_wer["wer"], abs=ONE_POINT)


def test_ct2_export_transcribes_with_the_adapter_models_wer(trained, tmp_path):
    run, clips, adapter_wer = trained
    out = tmp_path / "ct2"
    assert main(["--adapter", str(run.adapter_dir), "--to", "ct2", "--out", str(out),
                 "--quantization", "float16"]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"model.bin", "config.json", "vocabulary.json", "tokenizer.json",
            "preprocessor_config.json"} <= names
    assert json.loads((out / "preprocessor_config.json").read_text())["feature_size"] == 80
    paths = [clip["path"] for clip in clips]
    float32 = score(clips, ct2_transcribe(out, paths, compute_type="float32"))
    int8 = score(clips, ct2_transcribe(out, paths, compute_type="int8"))
    print("ct2 float32", float32, "int8", int8, "adapter", adapter_wer)
    assert float32["wer"] == pytest.approx(adapter_wer["wer"], abs=ONE_POINT)
    assert_int8_words_close(int8, adapter_wer, clips)  # int8 kernels differ by CPU
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
