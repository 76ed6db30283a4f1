"""Gradient accumulation: batch 8 and batch 4 x 2 accumulated log the same loss and take the
same step on the same 8 clips (helpers.train.trainer.SpeechTrainer divides the loss)."""
from dataclasses import replace

import pytest
import torch
from datasets import load_from_disk

from fixtures.tiny_runs import prepared_run, tiny_model_dir
from helpers.train.trainer import build_trainer, load_training_model

pytestmark = pytest.mark.integration


def equal_length_labels(dataset):
    """The clips with their labels cut to the shortest one's length: Whisper's loss is a mean
    over label tokens, so only with equal counts is the mean of two half-batch means the mean
    over the whole batch (what accumulation must reproduce)."""
    shortest = min(len(labels) for labels in dataset["labels"])
    return dataset.map(lambda row: {"labels": row["labels"][:shortest]})


def one_step(config, run, dataset, batch_size: int, accumulation: int):
    """Train one optimizer step; returns (logged loss, logged grad norm, LoRA weights after)."""
    config = replace(config, batch_size=batch_size, gradient_accumulation_steps=accumulation)
    model, processor = load_training_model(config)  # seeded: both runs start from the same LoRA
    trainer = build_trainer(model, processor, dataset, config, run)
    # Plain SGD without clipping: the step is the gradient times the learning rate, so a loss
    # scaled N times shows as a step N times larger (AdamW's first step would hide it).
    trainer.args.optim, trainer.args.max_grad_norm = "sgd", 1e9
    trainer.train()
    logged = trainer.state.log_history[0]
    weights = {name: tensor.detach().clone() for name, tensor in model.named_parameters()
               if tensor.requires_grad}
    return logged["loss"], logged["grad_norm"], weights


def test_batch_8_and_batch_4_accumulated_twice_take_the_same_step(tmp_path):
    model = tiny_model_dir(tmp_path / "tiny-whisper")
    run, config = prepared_run(tmp_path, "accumulation", model=str(model), precision="fp32",
                               train_clips=8, test_clips=1, max_steps=1, logging_steps=1,
                               save_steps=100, warmup_steps=0, lr_scheduler="constant",
                               learning_rate=0.5, eval_steps=None, gradient_checkpointing=False,
                               lora={"r": 8, "alpha": 16, "dropout": 0.0,
                                     "target_modules": ["q_proj", "v_proj"], "bias": "none"})
    dataset = equal_length_labels(load_from_disk(str(run.features_dir("train"))))
    initial = {name: tensor.detach().clone() for name, tensor in
               load_training_model(config)[0].named_parameters() if tensor.requires_grad}

    loss_8, norm_8, after_8 = one_step(config, run, dataset, batch_size=8, accumulation=1)
    loss_4x2, norm_4x2, after_4x2 = one_step(config, run, dataset, batch_size=4, accumulation=2)

    # Float tolerance: the two paths sum the same terms in another order (measured gap ~1e-7).
    assert loss_4x2 == pytest.approx(loss_8, rel=1e-4)
    assert norm_4x2 == pytest.approx(norm_8, rel=1e-3)
    step_8 = torch.cat([(after_8[n] - initial[n]).flatten() for n in initial])
    step_4x2 = torch.cat([(after_4x2[n] - initial[n]).flatten() for n in initial])
    assert step_8.norm() > 0  # the step is not vacuous
    assert (step_4x2 - step_8).norm() <= 1e-3 * step_8.norm()
