"""Security: weights only from safetensors (pickles on opt-in only), trust_remote_code never
set, and no Hugging Face token ever written to the run directory, a log or a notebook."""
import pytest
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration

from helpers.model import load as models

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
CODE_DIRS = ("helpers", "notebooks", "scripts", "colab", "benchmarks")  # what users run
FAKE_TOKEN = "hf_ReliabilityFakeToken0123456789abcdefXYZ"  # the shape of a real token, not one
TOKEN_PATTERN = re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")  # what a Hugging Face token looks like


def code_files() -> list[Path]:
    """Every .py and .ipynb file users run (helpers, notebooks, scripts, colab, benchmarks)."""
    return sorted(p for d in CODE_DIRS if (REPO / d).is_dir() for p in (REPO / d).rglob("*")
                  if p.suffix in (".py", ".ipynb") and ".ipynb_checkpoints" not in p.parts)


def test_trust_remote_code_is_never_set():
    files = code_files()
    assert REPO / "helpers" / "model" / "load.py" in files and any(p.suffix == ".ipynb" for p in files)
    setting = re.compile(r"""trust_remote_code['"]?\s*[=:]\s*(?!False\b)\w""")
    offenders = [f"{p.relative_to(REPO)}: {m.group(0)}" for p in files
                 for m in setting.finditer(p.read_text(encoding="utf-8"))]
    assert not offenders, offenders


def test_no_code_unpickles_weights():
    """Nothing we run calls torch.load/pickle.load; pickled weights go only through
    transformers' loader, and only on the user's opt-in (WHISPER_LORA_ALLOW_PICKLE)."""
    loader = re.compile(r"\b(torch\.load|pickle\.loads?|joblib\.load|weights_only\s*=\s*False)\b")
    offenders = [f"{p.relative_to(REPO)}: {m.group(0)}" for p in code_files()
                 for m in loader.finditer(p.read_text(encoding="utf-8"))]
    assert not offenders, offenders


def test_no_token_in_committed_files():
    paths = (code_files() + sorted((REPO / "tests").rglob("*.py")) + [REPO / "README.md"]
             + sorted((REPO / "docs").glob("*.md")))
    assert REPO / "docs" / "bad-input.md" in paths
    found = [f"{p.relative_to(REPO)}: {m}" for p in paths if p.is_file()
             for m in TOKEN_PATTERN.findall(p.read_text(encoding="utf-8")) if "Fake" not in m]
    assert not found, found
    assert TOKEN_PATTERN.fullmatch(FAKE_TOKEN)  # the scan below would see a leaked token


def hub_cache_with_pickled_model(cache: Path, repo_id: str) -> Path:
    """An offline Hub cache holding `repo_id` with config, processor and pytorch_model.bin only."""
    entry = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = entry / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (entry / "refs").mkdir()
    (entry / "refs" / "main").write_text("0123abcd")
    torch.manual_seed(0)
    config = WhisperConfig(vocab_size=51864, d_model=64, encoder_layers=1, decoder_layers=1,
                           encoder_attention_heads=2, decoder_attention_heads=2,
                           encoder_ffn_dim=64, decoder_ffn_dim=64)
    config.save_pretrained(snapshot)
    torch.save(WhisperForConditionalGeneration(config).state_dict(), snapshot / "pytorch_model.bin")
    models.load_processor("embedded").save_pretrained(snapshot)
    return cache


HUB_SCRIPT = """
import os, json
from helpers.model import load as models
try:
    models.load_model("someone/pickled-whisper", device="cpu")
    refused = None
except models.UnsafeWeightsError as err:
    refused = str(err)
os.environ[models.PICKLE_ENV] = "1"
model, _ = models.load_model("someone/pickled-whisper", device="cpu")
print(json.dumps({"refused": refused, "d_model": model.config.d_model}))
"""


def test_hub_model_with_only_pickled_weights_needs_opt_in(tmp_path):
    """A real (offline-cached) Hub repo whose only weights are pytorch_model.bin."""
    cache = hub_cache_with_pickled_model(tmp_path / "hub", "someone/pickled-whisper")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache),
           "PYTHONPATH": str(REPO)}
    env.pop(models.PICKLE_ENV, None)
    proc = subprocess.run([sys.executable, "-c", HUB_SCRIPT], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "someone/pickled-whisper' has no safetensors weights" in result["refused"]
    assert models.PICKLE_ENV in result["refused"] and result["d_model"] == 64


def test_pickle_opt_in_is_explicit(monkeypatch):
    for value, allowed in (("", False), ("0", False), ("no", False), ("1", True),
                           ("true", True), ("YES", True)):
        monkeypatch.setenv(models.PICKLE_ENV, value)
        assert models.pickle_allowed() is allowed, value


def secret_holders(root: Path, secret: str) -> list[str]:
    """Files under `root` (any depth, binary or text) whose bytes contain `secret`."""
    needle = secret.encode()
    return [str(p.relative_to(root)) for p in sorted(root.rglob("*"))
            if p.is_file() and needle in p.read_bytes()]


def test_token_never_reaches_the_run_directory(tmp_path, monkeypatch, capfd):
    """Stages 01, 04, 05 and 06 (their helpers) with HF_TOKEN set: the run directory, the
    model cache and everything printed are scanned for the token."""
    from helpers.model.adapters import attach_adapter
    from helpers.config import start_run
    from helpers.evaluate.scoring import compare_predictions, predict
    from helpers.data.prepare import prepare_run_data
    from helpers.train.trainer import run_training

    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.setenv(name, FAKE_TOKEN)
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    run, config = start_run("token", "embedded", tmp_path / "runs", precision="fp32",
                            max_train_clips=2, max_test_clips=2, max_steps=1, batch_size=1,
                            save_steps=1, logging_steps=1, eval_max_clips=2,
                            gradient_checkpointing=False)  # one quick step: its files count
    prepare_run_data(config, run, models.load_processor(config.model))
    run_training(config, run)
    model, processor = models.load_model(config.model, precision=config.precision, device="cpu")
    model = attach_adapter(model, run.adapter_dir)
    clips = run.read_jsonl("test_clips.jsonl", "01")
    with model.disable_adapter():
        base = predict(model, processor, clips, progress=False)
    tuned = predict(model, processor, clips, progress=False)
    predictions = [{"path": c["path"], "reference": c["sentence"], "base": b, "finetuned": t}
                   for c, b, t in zip(clips, base, tuned)]
    run.write_jsonl("predictions.jsonl", predictions)
    run.update_metrics(**compare_predictions(predictions))
    written = {str(p.relative_to(run.path)) for p in run.path.rglob("*") if p.is_file()}
    assert {"config.json", "corpus_report.json", "predictions.jsonl", "metrics.json",
            "adapter/adapter_model.safetensors", "train_log.json"} <= written
    assert any(name.startswith("checkpoints/checkpoint-1/") for name in written)
    assert secret_holders(run.path, FAKE_TOKEN) == []
    assert secret_holders(tmp_path / "cache", FAKE_TOKEN) == []
    out, err = capfd.readouterr()
    assert FAKE_TOKEN not in out and FAKE_TOKEN not in err


def test_the_scan_finds_a_token(tmp_path):
    """secret_holders really looks inside files, text or binary, at any depth."""
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.bin").write_bytes(b"\0\1" + FAKE_TOKEN.encode() + b"\2")
    (tmp_path / "clean.json").write_text("{}")
    assert secret_holders(tmp_path, FAKE_TOKEN) == ["a/b/x.bin"]
