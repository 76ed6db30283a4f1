"""`python -m helpers.train`: errors, and two processes under torchrun / accelerate launch (gloo, CPU)."""
import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from datasets import load_from_disk

from fixtures.tiny_runs import prepared_run, tiny_model_dir
from helpers.train.collator import SpeechSeq2SeqCollator
from helpers.files import REPO_ROOT
from helpers.train.__main__ import main, parse_overrides
from helpers.train.checkpoints import is_complete_checkpoint
from helpers.train.trainer import load_training_model

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(*command: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1",
           "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True,
                          env=env, cwd=REPO_ROOT, timeout=400)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def printed_metrics(done) -> list[dict]:
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{\"")]
    return [row for row in rows if "train_steps" in row]


def test_bad_config_path_and_unknown_setting_are_named(tmp_path, capsys):
    assert main(["--config", str(tmp_path / "nowhere" / "config.json")]) == 2
    assert "nowhere/config.json" in capsys.readouterr().err
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.json").write_text("{}")
    assert main(["--config", str(tmp_path / "r" / "config.json"), "--set", "max_stepz=3"]) == 2
    assert "max_stepz" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "r" / "config.json")]) == 2  # no features/train yet
    err = capsys.readouterr().err
    assert "features/train" in err and "notebook 01" in err
    assert main(["--config", str(tmp_path / "r" / "config.json"), "--set", "streaming=True"]) == 2
    assert "max_steps" in capsys.readouterr().err
    assert parse_overrides(["max_steps=3", "language=hindi", "eval_steps=None"]) == \
        {"max_steps": 3, "language": "hindi", "eval_steps": None}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_overrides(["max_steps"])


def base_losses(config, dataset) -> list[float]:
    """Loss of the untrained model (LoRA B is zero at init) on each training clip alone."""
    model, processor = load_training_model(config)
    model.eval()
    collate = SpeechSeq2SeqCollator(processor, model.config.decoder_start_token_id,  # padded as training pads
                                    zero_padding_share=config.zero_padding_share, seed=config.seed)
    with torch.no_grad():
        return [model(**collate([row])).loss.item() for row in dataset]


def test_torchrun_two_processes_train_the_embedded_default(tmp_path):
    # The embedded default (tiny.en, 8-bit, LoRA r=32) on 4 clips, batch 1 per process. The
    # warmup makes step 1's learning rate 0, so both logged losses are the untrained model's:
    # their mean must be the mean loss of the 4 clips (each process sees 2 of them).
    run, config = prepared_run(tmp_path, "ddp", train_clips=4, test_clips=2, batch_size=1,
                               max_steps=2, save_steps=2, logging_steps=1, warmup_steps=2,
                               eval_steps=None)
    done = launch("torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
                  "-m", "helpers.train", "--config", str(run.path / "config.json"))
    assert len(printed_metrics(done)) == 1  # rank 0 alone reports (and writes)
    log = run.read_json("train_log.json", "04")
    assert [e["step"] for e in log] == [1, 2] and log[-1]["epoch"] == 1.0  # 4 clips = 2 x 2 x 1
    checkpoint = run.checkpoints_dir / "checkpoint-2"
    assert is_complete_checkpoint(checkpoint)
    assert {"rng_state_0.pth", "rng_state_1.pth"} <= {p.name for p in checkpoint.iterdir()}
    expected = sum(base_losses(config, load_from_disk(str(run.features_dir("train"))))) / 4
    assert (log[0]["loss"] + log[1]["loss"]) / 2 == pytest.approx(expected, rel=0.02)
    assert run.metrics()["train_steps"] == 2 and (run.adapter_dir / "adapter_model.safetensors").is_file()


def test_accelerate_launch_runs_two_processes(tmp_path):
    model = tiny_model_dir(tmp_path / "tiny-whisper")
    run, _ = prepared_run(tmp_path, "acc", model=str(model), train_clips=8, test_clips=2,
                          batch_size=2, max_steps=2, save_steps=2, logging_steps=1,
                          warmup_steps=0, eval_steps=None)
    done = launch("accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                  "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                  "--main_process_port", str(free_port()),
                  "-m", "helpers.train", "--config", str(run.path / "config.json"))
    assert len(printed_metrics(done)) == 1
    log = run.read_json("train_log.json", "04")
    assert log[0]["epoch"] == 0.5  # 8 clips, 2 processes x batch 2: 2 steps per epoch
    assert {"rng_state_0.pth", "rng_state_1.pth"} <= {p.name for p in (run.checkpoints_dir / "checkpoint-2").iterdir()}
