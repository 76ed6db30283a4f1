"""Training with Seq2SeqTrainer: arguments from a RunConfig, memory and loss records.

With a PEFT model the Trainer's checkpoints hold only the adapter (plus optimizer and
scheduler state), never the base weights.
"""
from __future__ import annotations

import resource
import time
from pathlib import Path

import torch
from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments, TrainerCallback

from helpers.collator import SpeechSeq2SeqCollator
from helpers.config import RunConfig
from helpers.run import RunDir


def training_arguments(config: RunConfig, output_dir: str | Path) -> Seq2SeqTrainingArguments:
    """Seq2SeqTrainingArguments for the recipe; fp16 only where a GPU is present."""
    on_gpu = torch.cuda.is_available()
    return Seq2SeqTrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_steps,
        lr_scheduler_type=config.lr_scheduler,
        max_steps=config.max_steps,
        num_train_epochs=config.num_train_epochs,
        fp16=config.fp16 and on_gpu,
        logging_steps=config.logging_steps,
        save_steps=config.save_steps,
        save_total_limit=2,               # checkpoints are adapter-sized; keep the last two
        eval_strategy="no",               # WER is measured by real transcription in 05/06
        remove_unused_columns=False,      # the collator needs input_features and labels
        label_names=["labels"],           # PEFT wraps forward(); tell the Trainer the label key
        report_to=[],
        seed=config.seed,
        use_cpu=not on_gpu,
        dataloader_num_workers=0,
        generation_max_length=config.generation_max_length,
    )


def peak_memory_bytes() -> dict[str, int]:
    """Peak memory so far: GPU allocated/reserved on CUDA, else the process's peak RSS."""
    if torch.cuda.is_available():
        return {"gpu_allocated": torch.cuda.max_memory_allocated(),
                "gpu_reserved": torch.cuda.max_memory_reserved()}
    return {"process_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


class MemoryCallback(TrainerCallback):
    """Record peak memory at every logging step into the Trainer's log history."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is not None:
            logs.update({f"peak_{key}_bytes": value for key, value in peak_memory_bytes().items()})


def build_trainer(model, processor, train_dataset, config: RunConfig, run: RunDir,
                  callbacks: list | None = None) -> Seq2SeqTrainer:
    """A Seq2SeqTrainer over `train_dataset` whose checkpoints go to run/checkpoints."""
    collator = SpeechSeq2SeqCollator(
        processor=processor,
        decoder_start_token_id=model.config.decoder_start_token_id)
    return Seq2SeqTrainer(
        model=model,
        args=training_arguments(config, run.checkpoints_dir),
        data_collator=collator,
        train_dataset=train_dataset,
        processing_class=processor.feature_extractor,
        callbacks=[MemoryCallback(), *(callbacks or [])],
    )


def train(trainer: Seq2SeqTrainer, resume: bool = False) -> dict:
    """Run training; returns steps, seconds, final loss and peak memory."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=True if resume else None)
    seconds = time.perf_counter() - started
    memory = peak_memory_bytes()
    return {
        "train_steps": trainer.state.global_step,
        "train_seconds": round(seconds, 1),
        "train_loss": round(float(result.training_loss), 4),
        "peak_memory_bytes": memory.get("gpu_allocated", memory.get("process_rss")),
        "peak_memory_kind": "gpu_allocated" if "gpu_allocated" in memory else "process_rss",
        **{f"peak_{key}_bytes": value for key, value in memory.items()},
    }


def loss_history(trainer: Seq2SeqTrainer) -> list[dict]:
    """The logged training steps: step, loss, learning rate and memory."""
    return [entry for entry in trainer.state.log_history if "loss" in entry]
