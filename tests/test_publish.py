"""Publishing an adapter (helpers.publish) and loading one by Hub id (helpers.model.adapters.
resolve_adapter), with no network: the model card is made from a real run (the embedded
model trained 2 steps, its test clips transcribed and scored as notebooks 05 and 06 do), the
push goes to a stand-in for huggingface_hub.HfApi, and loading by id reads a Hub cache
folder laid out as huggingface_hub lays it out, with HF_HUB_OFFLINE=1."""
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub import ModelCard, constants

from fixtures.hub_cache import cache_folder, cache_repo
from fixtures.hub_standin import StandInHfApi
from helpers.publish import __main__ as publish
from helpers.publish import card as card_module
from helpers.model.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS, resolve_adapter
from helpers.run import RunDir

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
STANDIN = Path(__file__).resolve().parent / "colab_standin"
REPO = "someone/whisper-tiny-test"
TOKEN = "hf_PublishFakeToken0123456789abcdefXYZ"  # fake; must never be printed or written
RUN_FILES = ("config.json", "metrics.json", "corpus_report.json", "train_durations.json",
             "test_clips.jsonl", "adapter")


def copy_run(source: RunDir, root: Path, name: str) -> RunDir:
    """Copy a run's card-relevant files (times kept, as copy2 does) into root/name."""
    target = root / name
    target.mkdir(parents=True)
    for item in RUN_FILES:
        copy = shutil.copytree if (source.path / item).is_dir() else shutil.copy2
        copy(source.path / item, target / item)
    return RunDir(name, root)


@pytest.fixture(scope="module")
def trained(trained_embedded):
    """The shared 2-step embedded run (tests/conftest.py trained_embedded), as (RunDir, RunConfig)."""
    run, config, _ = trained_embedded
    return run, config


@pytest.fixture(scope="module")
def evaluated(trained, tmp_path_factory):
    """A copy of the trained run whose test clips were transcribed with the adapter off and
    on, and scored, by the functions notebooks 05 and 06 call. Returns the RunDir."""
    from helpers.model.adapters import attach_adapter
    from helpers.evaluate.scoring import compare_predictions, predict
    from helpers.model.load import load_model

    source, config = trained
    run = copy_run(source, tmp_path_factory.mktemp("published"), "cardrun")
    clips = run.read_jsonl("test_clips.jsonl", "01")
    model, processor = load_model(config.model, precision=config.precision, language=config.language)
    model = attach_adapter(model, run.adapter_dir).eval()
    with model.disable_adapter():
        base = predict(model, processor, clips, config.eval_batch_size, progress=False)
    tuned = predict(model, processor, clips, config.eval_batch_size, progress=False)
    rows = [{"path": clip["path"], "reference": clip["sentence"], "base": b, "finetuned": t}
            for clip, b, t in zip(clips, base, tuned)]
    run.write_jsonl("predictions.jsonl", rows)
    run.update_metrics(**compare_predictions(rows))
    return run


@pytest.fixture
def hub(monkeypatch):
    """huggingface_hub.HfApi replaced by the stand-in; the token in HF_TOKEN."""
    StandInHfApi.reset()
    monkeypatch.setattr(huggingface_hub, "HfApi", StandInHfApi)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    return StandInHfApi


# ------------------------------------------------------------------ the model card


def test_the_card_is_made_from_the_runs_files(evaluated, tmp_path):
    metrics = evaluated.metrics()
    path = tmp_path / "README.md"
    card_module.model_card(evaluated.adapter_dir, REPO).save(path)
    card = ModelCard.load(path)  # the metadata parses as the Hub parses it
    data, text = card.data, card.text
    assert data.base_model == "openai/whisper-tiny.en" and data.library_name == "peft"
    assert data.language == "en" and data.license == card_module.DEFAULT_LICENSE
    assert {"whisper", "lora", "peft"} <= set(data.tags)
    results = {(r.metric_type, r.metric_name): r.metric_value for r in data.eval_results}
    assert results == {("wer", "WER (normalized)"): round(100 * metrics["finetuned_wer"], 2),
                       ("cer", "CER (normalized)"): round(100 * metrics["finetuned_cer"], 2),
                       ("wer", "WER (raw text)"): round(100 * metrics["raw_finetuned_wer"], 2)}
    assert {r.dataset_split for r in data.eval_results} == {"test"}
    assert data.model_name == "whisper-tiny-test"
    # the body: figures from metrics.json, data splits, size, how to load it, how to reproduce
    for key in ("base_wer", "finetuned_wer", "base_cer", "finetuned_cer"):
        assert f"{100 * metrics[key]:.2f}%" in text
    assert f"{metrics['n_test']} clips" in text and "`train` (training): 340 clips" in text
    assert "8 clips were trained on" in text and "the first 6 were scored" in text
    assert f"{metrics['trainable_params']:,} trainable parameters" in text
    assert f"{(evaluated.adapter_dir / ADAPTER_WEIGHTS).stat().st_size:,} bytes" in text
    assert f"python -m helpers.transcribe --adapter {REPO} clip.mp3" in text
    assert f'PeftModel.from_pretrained(model, "{REPO}")' in text
    assert 'base = "openai/whisper-tiny.en"' in text
    assert "r=32, alpha=64, dropout=0.05, on q_proj, v_proj" in text
    assert "/tmp" not in card.content and str(evaluated.path.parent) not in card.content


def test_the_reproduce_command_rebuilds_the_runs_settings(evaluated):
    """Its --set values, applied to the preset, give the run's config.json back."""
    from helpers.config import make_config
    from helpers.demo import parse_assignments

    config = evaluated.read_json("config.json", "01")
    command, _, note = card_module.reproduce_command(config, "cardrun").partition("\n")
    words = shlex.split(command)
    assert words[:7] == ["python", "-m", "helpers.demo", "--run-name", "cardrun", "--preset", "embedded"]
    sets = parse_assignments([words[i + 1] for i, word in enumerate(words) if word == "--set"])
    by_hand = parse_assignments(note.split(": ", 1)[1].split(", ")) if note else {}
    assert "WARMUP_STEPS" in by_hand  # 0 here: no notebook takes it
    rebuilt = make_config("embedded", **{k.lower(): v for k, v in {**sets, **by_hand}.items()}).to_dict()
    differing = {key for key in config if rebuilt[key] != config[key]}
    assert differing <= {"corpus", "cell_timeout"}  # the corpus is the same cv-mini, elsewhere
    assert Path(rebuilt["corpus"]).parts[-3:] == Path(config["corpus"]).parts[-3:]


def test_without_test_figures_the_card_says_not_evaluated_yet(trained, evaluated, tmp_path):
    card = card_module.model_card(copy_run(trained[0], tmp_path, "fresh").adapter_dir, REPO)
    assert "not evaluated yet" in card.text and not card.data.eval_results
    assert "model-index" not in card.content
    # figures older than the adapter (trained again after notebook 06) are not shown either
    stale = RunDir("stale", tmp_path)
    shutil.copytree(evaluated.path, stale.path, dirs_exist_ok=True)
    later = (stale.path / "predictions.jsonl").stat().st_mtime + 60
    os.utime(stale.adapter_dir / ADAPTER_WEIGHTS, (later, later))
    card = card_module.model_card(stale.adapter_dir, REPO)
    assert "predate this adapter" in card.text and "model-index" not in card.content


# ------------------------------------------------------------------ the push


def test_publish_pushes_the_adapter_and_card_and_never_shows_the_token(evaluated, hub, capsys):
    status = publish.main(["--adapter", str(evaluated.adapter_dir), "--repo", REPO, "--private"])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert json.loads(out) == {"repo": REPO, "url": f"https://huggingface.co/{REPO}",
                               "private": True, "files": publish.pushed_files(evaluated.adapter_dir)}
    [api] = hub.instances
    assert api.token == TOKEN  # the client got the token from HF_TOKEN
    (create, args), (upload, uploaded) = api.calls
    assert create == "create_repo" and args == {"repo_id": REPO, "private": True,
                                                 "repo_type": "model", "exist_ok": True}
    assert upload == "upload_folder" and uploaded["repo_id"] == REPO
    assert sorted(uploaded["files"]) == sorted(publish.pushed_files(evaluated.adapter_dir))
    pushed = api.repos[REPO]
    assert (pushed / ADAPTER_WEIGHTS).read_bytes() == (evaluated.adapter_dir / ADAPTER_WEIGHTS).read_bytes()
    assert (pushed / "README.md").read_text() == \
        str(card_module.model_card(evaluated.adapter_dir, REPO))  # the generated card, not PEFT's
    assert not Path(uploaded["folder_path"]).exists()  # the staging folder is gone
    for text in (out, err, *[(pushed / name).read_text(errors="replace") for name in publish.pushed_files(evaluated.adapter_dir)]):
        assert TOKEN not in text


def test_the_token_can_come_from_colabs_secret_store(evaluated, hub, monkeypatch, capsys):
    import importlib

    monkeypatch.setenv("HF_TOKEN", "")  # restored afterwards, whatever the code sets
    monkeypatch.syspath_prepend(str(STANDIN))
    monkeypatch.setenv("COLAB_STANDIN_SECRET_HF_TOKEN", TOKEN + "colab")
    importlib.import_module("google.colab")  # this process now looks like a Colab runtime
    try:
        status = publish.main(["--adapter", str(evaluated.adapter_dir), "--repo", REPO])
    finally:
        for name in [n for n in sys.modules if n == "google" or n.startswith("google.colab")]:
            del sys.modules[name]
    out, err = capsys.readouterr()
    assert status == 0, err
    assert hub.instances[0].token == TOKEN + "colab" and hub.instances[0].calls[0][1]["private"] is False
    assert TOKEN not in out + err


def test_no_token_is_a_clear_error_and_nothing_is_pushed(evaluated, hub, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))  # no saved login
    assert publish.main(["--adapter", str(evaluated.adapter_dir), "--repo", REPO]) == 2
    err = capsys.readouterr().err
    assert "no Hugging Face token" in err and "HF_TOKEN" in err and "Traceback" not in err
    assert not hub.instances


def test_an_adapter_without_safetensors_is_refused(evaluated, hub, tmp_path, capsys):
    folder = tmp_path / "adapter"
    folder.mkdir()
    shutil.copy2(evaluated.adapter_dir / ADAPTER_CONFIG, folder)
    (folder / "adapter_model.bin").write_bytes(b"a pickle, which could run code when loaded")
    assert publish.main(["--adapter", str(folder), "--repo", REPO]) == 2
    err = capsys.readouterr().err
    assert "adapter_model.bin" in err and "Nothing was pushed" in err and "safetensors" in err
    assert not hub.instances


# ------------------------------------------------------------------ loading by Hub id


def test_an_adapter_loads_by_hub_id_from_the_cache_offline_and_transcribes(evaluated, hub, tmp_path):
    """What publish pushed, laid out in a Hub cache, is loaded by `--adapter USER/NAME` with
    HF_HUB_OFFLINE=1 and transcribes the test clips exactly as the run's adapter folder did
    (same code, same clips, same batch as the evaluation)."""
    publish.publish(evaluated.adapter_dir, REPO)
    cache = tmp_path / "hub-cache"
    cache_folder(cache, REPO, hub.instances[0].repos[REPO])
    rows = evaluated.read_jsonl("predictions.jsonl", "05")
    batch = evaluated.read_json("config.json", "01")["eval_batch_size"]
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_TOKEN", None)
    result = subprocess.run([sys.executable, "-m", "helpers.transcribe", "--adapter", REPO,
                             "--precision", "8bit", "--batch-size", str(batch),
                             *[row["path"] for row in rows]],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["text"] for line in result.stdout.splitlines()] == \
        [row["finetuned"] for row in rows]


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hub cache that this process's huggingface_hub uses (offline, as conftest sets)."""
    assert constants.HF_HUB_OFFLINE
    cache = tmp_path / "hub-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_the_card_s_peft_instructions_load_the_adapter_by_id(evaluated, hub_cache):
    """PeftModel.from_pretrained(model, "USER/NAME"), as the card says, finds the same weights."""
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file

    from helpers.model.load import load_model

    cache_folder(hub_cache, REPO, evaluated.adapter_dir)
    model, _ = load_model("embedded", precision="fp32")
    model = PeftModel.from_pretrained(model, REPO)
    saved = load_file(str(evaluated.adapter_dir / ADAPTER_WEIGHTS))
    loaded = {name: parameter for name, parameter in model.named_parameters() if "lora_" in name}
    assert len(loaded) == len(saved) > 0
    for name, tensor in saved.items():
        match = [value for key, value in loaded.items()
                 if key.replace(".default.", ".") == name]
        # exact: PEFT copies the saved safetensors values into the parameters, no arithmetic
        assert len(match) == 1 and torch.equal(match[0].detach(), tensor), name


def test_resolving_a_hub_id_revision_and_what_is_refused(evaluated, hub_cache, tmp_path, monkeypatch):
    files = {name: (evaluated.adapter_dir / name).read_bytes() for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS)}
    commit = cache_repo(hub_cache, REPO, files, revision="v1")
    folder = resolve_adapter(f"{REPO}@v1")
    assert folder == hub_cache / "models--someone--whisper-tiny-test" / "snapshots" / commit
    assert (folder / ADAPTER_WEIGHTS).read_bytes() == files[ADAPTER_WEIGHTS]
    with pytest.raises(FileNotFoundError, match=f"{REPO}: no such folder here.*HF_HUB_OFFLINE"):
        resolve_adapter(REPO)  # main was never downloaded: offline, nothing to fall back on
    with pytest.raises(FileNotFoundError, match="no such folder"):
        resolve_adapter("runs/nowhere/adapter")  # not shaped like a Hub id
    # a repo that holds pickled weights only is refused, as a folder would be
    cache_repo(hub_cache, "someone/pickled", {ADAPTER_CONFIG: files[ADAPTER_CONFIG],
                                              "adapter_model.bin": b"pickle"})
    with pytest.raises(ValueError, match="Only safetensors adapters are loaded"):
        resolve_adapter("someone/pickled")
    # a local folder that exists wins over the Hub id it looks like
    local = tmp_path / "someone" / "pickled"
    shutil.copytree(evaluated.adapter_dir, local)
    monkeypatch.chdir(tmp_path)
    assert resolve_adapter("someone/pickled") == Path("someone/pickled")


def test_the_command_line_names_an_unknown_hub_id(hub_cache, capsys):
    from helpers.transcribe.__main__ import main

    clip = sorted((ROOT / "data" / "cv-mini" / "en" / "clips").glob("*.mp3"))[0]
    assert main(["--adapter", "nobody/nothing", str(clip)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: nobody/nothing: no such folder here") and "HF_HUB_OFFLINE" in err


def test_a_local_base_model_path_is_not_published(evaluated, hub, tmp_path):
    """A base recorded as a folder on this machine goes out as its name only, and the card
    says to pass --model (the path would be of no use to others, and may name its owner)."""
    run = copy_run(evaluated, tmp_path, "localbase")
    local = str(tmp_path / "my-models" / "tiny-whisper")
    adapter_config = json.loads((run.adapter_dir / ADAPTER_CONFIG).read_text())
    run.write_json(f"adapter/{ADAPTER_CONFIG}", {**adapter_config, "base_model_name_or_path": local})
    run.write_json("config.json", {**run.read_json("config.json", "01"), "model": local})
    publish.publish(run.adapter_dir, REPO)
    pushed = hub.instances[0].repos[REPO]
    assert json.loads((pushed / ADAPTER_CONFIG).read_text())["base_model_name_or_path"] == "tiny-whisper"
    card = ModelCard.load(pushed / "README.md")
    assert card.data.base_model is None and "--model path/to/the/base/model" in card.text
    assert all(str(tmp_path) not in (pushed / name).read_text(errors="replace")
               for name in publish.pushed_files(run.adapter_dir))
