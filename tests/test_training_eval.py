"""QLoRA (4-bit) training, and WER measured by generate during training (WerCallback)."""
import json
import math
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerControl, TrainerState, TrainingArguments

from fixtures.tiny_runs import prepared_run, tiny_model_dir
from helpers.model.adapters import attach_adapter
from helpers.data.corpora import load_corpus
from helpers.evaluate.scoring import predict, score
from helpers.model.load import load_model
from helpers.train.trainer import (WerCallback, build_trainer, load_training_model, train, transcription_wer)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("qlora")
    model = tiny_model_dir(root / "tiny-whisper")
    return prepared_run(root, "qlora", model=str(model), train_clips=4, test_clips=2,
                        precision="4bit", batch_size=2, max_steps=2, save_steps=2,
                        logging_steps=1, warmup_steps=0, learning_rate=1e-2)


def lora_weights(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


def test_qlora_trains_two_steps_on_a_4bit_nf4_base(tiny_run):
    import bitsandbytes as bnb

    run, config = tiny_run
    model, processor = load_training_model(config)
    linears = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert linears and all(m.weight.quant_type == "nf4" for m in linears)
    assert model.base_model.model.is_loaded_in_4bit
    before = lora_weights(model)
    from datasets import load_from_disk

    trainer = build_trainer(model, processor, load_from_disk(str(run.features_dir("train"))),
                            config, run)
    summary = train(trainer)
    assert summary["train_steps"] == 2 and math.isfinite(summary["final_loss"])
    after = lora_weights(model)
    changed = [n for n in before if not torch.equal(before[n], after[n])]
    assert changed and all(after[n].dtype == torch.float32 for n in after)
    assert (run.checkpoints_dir / "checkpoint-2" / "adapter_model.safetensors").is_file()


def test_transcription_wer_uses_generate_and_restores_train_mode(tiny_run):
    run, config = tiny_run
    model, processor = load_training_model(replace(config, precision="fp32"))  # fp32: faster generate
    model.train()
    clips = run.read_jsonl("test_clips.jsonl", "01")
    calls = []
    original = model.generate
    model.generate = lambda *a, **k: calls.append(k) or original(*a, **k)
    result = transcription_wer(model, processor, clips, batch_size=2, max_new_tokens=8)
    assert len(calls) == 1 and result["eval_clips"] == 2 and result["eval_wer"] >= 0
    assert all(module.training for module in model.modules())  # back in train mode, dropout on
    assert model.config.use_cache is False  # restored for training


def test_wer_callback_resumes_its_best_and_keeps_ranks_in_step(tmp_path):
    callback = WerCallback(processor=None, clips=[{"path": "x", "sentence": "y"}], eval_steps=2)
    state = TrainerState(log_history=[{"loss": 1.0, "step": 2, "eval_wer": 0.4},
                                      {"loss": 0.9, "step": 4, "eval_wer": 0.3}])
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[])
    callback.on_train_begin(args, state, TrainerControl())
    assert callback.best == 0.3
    state.global_step, state.is_world_process_zero = 6, False  # another rank: no generate
    control = TrainerControl()
    callback.on_step_end(args, state, control, model=None)
    assert control.should_log and callback.pending is None
    state.global_step, control = 7, TrainerControl()
    callback.on_step_end(args, state, control, model=None)
    assert not control.should_log


def test_wer_is_logged_with_the_loss_and_is_the_real_transcription_wer(trained_embedded):
    run, config, metrics = trained_embedded
    log = run.read_json("train_log.json", "04")
    assert [entry["step"] for entry in log] == [1, 2]
    assert all({"loss", "eval_wer", "eval_cer", "eval_raw_wer"} <= set(entry) for entry in log)
    clips = run.read_jsonl("eval_clips.jsonl", "04")
    dev = set(load_corpus(config.corpus, split="dev")["audio"])
    assert len(clips) == 2 and all(clip["path"] in dev for clip in clips)  # the dev split
    listed = run.read_jsonl("dev_clips.jsonl", "01")  # as notebook 01 kept them, in order
    assert clips == [{"path": row["path"], "sentence": row["sentence"]} for row in listed[:2]]
    # The final adapter transcribes the dev clips again, outside training: same WER as logged.
    model, processor = load_model(config.model, precision=config.precision)
    model = attach_adapter(model, run.adapter_dir)
    again = score(clips, predict(model, processor, clips, progress=False))
    assert again["wer"] == pytest.approx(log[-1]["eval_wer"], abs=1e-4)
    assert metrics["best_eval_wer"] == min(entry["eval_wer"] for entry in log)


def test_best_adapter_is_the_checkpoint_with_the_lowest_wer(trained_embedded):
    run, _, metrics = trained_embedded
    best_step = metrics["best_eval_step"]
    kept = load_file(str(run.path / "adapter_best" / "adapter_model.safetensors"))
    at_best = load_file(str(run.checkpoints_dir / f"checkpoint-{best_step}" / "adapter_model.safetensors"))
    assert kept.keys() == at_best.keys()
    assert all(torch.equal(kept[k], at_best[k]) for k in kept)
    config = json.loads((run.path / "adapter_best" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "embedded"
    assert not [p.name for p in run.path.iterdir() if p.name.startswith(".")]
