"""The training stage (notebook 04 and `python -m helpers.train`): one implementation.

    run_training(config, run, resume)      the whole stage, as the script runs it
      prepare_output(run, resume, config)  clean half-written files; pick the checkpoint to resume
      load_training_model(config)          base (8bit/4bit/fp16/fp32; fp16 is fp32 off CUDA) + LoRA
      training_dataset(config, run, ...)   features/train from notebook 01, or a stream (streaming)
      eval_clips(config, run, tokenizer)   01's eval-split clips for WER during training (eval_steps)
      build_trainer(...)                   Seq2SeqTrainer + memory and WER callbacks
      train(trainer, resume_from)          trainer.train; returns steps, seconds, loss, memory
      finish_training(trainer, config, run, summary)   rank 0: adapter/, train_log.json, metrics
      finish_stage(run, "04", ...)         rank 0: the completion marker notebook 05 checks

Under `torchrun`/`accelerate launch` every process runs this same code; each places the
(quantized) base on its own device (`process_device`), and only rank 0 writes files
(`helpers.train.checkpoints`).
"""
from __future__ import annotations

import math
import os
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import PrinterCallback, Seq2SeqTrainer, Seq2SeqTrainingArguments, TrainerCallback
from transformers.trainer_callback import ExportableState

from helpers.config import RunConfig
from helpers.run import RunDir
from helpers.train.checkpoints import (BEST_ADAPTER, CHECKPOINT_NAME, checkpoint_identity, is_complete_checkpoint,
                                       keep_on_drive, prepare_output, process_rank, training_checkpoints_dir)
from helpers.train.collator import CLIP_COUNT_KEY, SpeechSeq2SeqCollator

CLIPS_SEEN = "clips_seen"  # log key: training clips processed so far, all processes (packed windows hold several)

# ---------------------------------------------------------------- processes and devices


def process_device() -> str:
    """The device this process trains on: cuda:<LOCAL_RANK> with GPUs, else "cpu"."""
    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return "cpu"


def check_training_config(config: RunConfig) -> None:
    """Raise ValueError for settings that cannot train; warn for dubious ones."""
    if config.streaming and (config.max_steps is None or config.max_steps <= 0):
        raise ValueError("streaming=True needs max_steps > 0 (a stream has no length); set MAX_STEPS.")
    if config.eval_steps is not None and config.eval_steps < 0:
        raise ValueError(f"eval_steps must be a number of steps (0 or None: never), got {config.eval_steps}")
    if config.precision == "fp16" and torch.cuda.is_available() and not config.fp16:
        raise ValueError("precision='fp16' (an fp16 base) trains only under fp16 mixed precision: "
                         "set FP16 = True (fp16=True), or pick precision 'fp32', '8bit' or '4bit'.")
    if config.eval_steps and config.eval_split in config.train_splits:
        warnings.warn(f"eval_split {config.eval_split!r} is also a training split: WER during "
                      "training will be measured on clips the model learns from.", stacklevel=2)


# ---------------------------------------------------------------- arguments, model, data


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
        eval_strategy="no",               # WER is measured by generate in WerCallback instead
        remove_unused_columns=False,      # the collator needs mel_frames/mel_pad and labels
        label_names=["labels"],           # PEFT wraps forward(); tell the Trainer the label key
        ddp_find_unused_parameters=False,  # DDP: the frozen base has no gradients to wait for
        # Whisper's loss is a mean over label tokens, but PEFT's forward(**kwargs) makes the
        # Trainer assume a sum-style loss and multiply it by the number of processes: under
        # DDP the loss and gradients would double. Each process's mean is averaged by DDP.
        average_tokens_across_devices=False,
        report_to=[],
        seed=config.seed,
        use_cpu=not on_gpu,
        dataloader_num_workers=0,
        # A stream is split by shards, one share per process, each computing its own
        # features; dispatching (rank 0 reads, then sends) would try to concatenate
        # batches padded to different label lengths.
        accelerator_config={"dispatch_batches": False} if config.streaming else None,
    )


def load_training_model(config: RunConfig):
    """(PEFT model with a fresh LoRA adapter, processor) on this process's device.

    The base is loaded at `config.precision` ("8bit", "4bit" = QLoRA's NF4, "fp16", "fp32");
    LoRA gets `config.lora` (r, alpha, dropout, target_modules, bias); its random
    initialization is seeded with `config.seed`, so two runs of one config start alike.
    """
    from transformers import set_seed

    from helpers.model.adapters import add_lora
    from helpers.model.load import load_model

    device = process_device()
    model, processor = load_model(config.model, precision=training_precision(config.precision, device),
                                  language=config.language, task=config.task, device=device)
    set_seed(config.seed)
    model = add_lora(model, config.lora_settings(),
                     gradient_checkpointing=config.gradient_checkpointing)
    return model, processor


def training_precision(precision: str, device: str) -> str:
    """The precision the base is trained at: `precision`, except "fp16" off CUDA -> "fp32".

    An fp16 base trains under the Trainer's fp16 autocast, which only a CUDA GPU has; on a
    CPU its float16 convolution would meet the collator's float32 features ("Input type
    (float) and bias type (c10::Half) should be the same"), and CPU float16 kernels are
    slow. The fp32 copy holds the same values (openai's large-v3 checkpoints are stored in
    float16) in twice the memory; a warning says so.
    """
    if precision == "fp16" and not str(device).startswith("cuda"):
        warnings.warn("precision='fp16' trains on a CUDA GPU only (fp16 mixed precision); on "
                      f"{device} the base is loaded in fp32 instead: the same weights, twice "
                      "the memory.", stacklevel=2)
        return "fp32"
    return precision


def training_dataset(config: RunConfig, run: RunDir, processor):
    """features/train from notebook 01, or with `config.streaming` a stream from the corpus."""
    if config.streaming:
        from helpers.data.streaming import streaming_dataset

        return streaming_dataset(config, processor)
    from datasets import load_from_disk

    return load_from_disk(str(run.require("features/train", "notebook 01")))


def measures_wer(config: RunConfig) -> bool:
    """True when WER will be measured during training (eval_steps set, not 0, and reached)."""
    steps = config.eval_steps
    return bool(steps) and (config.max_steps is None or config.max_steps <= 0 or steps <= config.max_steps)


def eval_clips(config: RunConfig, run: RunDir, tokenizer) -> list[dict]:
    """The first `config.eval_max_clips` kept clips of `config.eval_split`, as notebook 01
    listed them (test_clips.jsonl, or <split>_clips.jsonl: `clips_file`): {"path", "sentence"}.

    A run whose notebook 01 did not list that split (WER was off then, or the split was
    changed since) has it filtered here, up to the clips needed, with a printed note. Listed
    clips missing from this disk (a new Colab runtime) are fetched again (`ensure_clips`).
    """
    from helpers.data.prepare import clips_file, ensure_clips, load_filtered_split

    name = clips_file(config, config.eval_split)
    if (run.path / name).is_file():
        ensure_clips(config, run, config.eval_split)
        rows = run.read_jsonl(name, "notebook 01")[:config.eval_max_clips]
    else:
        print(f"{name} is not in the run (notebook 01 lists the {config.eval_split!r} clips when "
              f"EVAL_STEPS is set there): filtering the {config.eval_split!r} split now", flush=True)
        kept, _ = load_filtered_split(config, config.eval_split, tokenizer, config.eval_max_clips)
        rows = [{"path": row["audio"], "sentence": row["sentence"]} for row in kept]
    return [{"path": row["path"], "sentence": row["sentence"]} for row in rows]


# ---------------------------------------------------------------- callbacks


def peak_memory_bytes() -> dict[str, int]:
    """Peak memory so far: on CUDA allocated, reserved and device-level; else the peak RSS.

    "gpu_device" is what nvidia-smi shows at the peak: the peak reservation plus what the
    GPU holds beyond the allocator's current reservation (the CUDA context, cuBLAS). It
    counts every process on the GPU, so it is this run's figure when the run is alone there
    (as on Colab).
    """
    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        outside = max(total - free - torch.cuda.memory_reserved(), 0)
        return {"gpu_allocated": torch.cuda.max_memory_allocated(),
                "gpu_reserved": torch.cuda.max_memory_reserved(),
                "gpu_device": outside + torch.cuda.max_memory_reserved()}
    from helpers.footprint.process_memory import peak_rss_bytes

    return {"process_rss": peak_rss_bytes()}


class MemoryCallback(TrainerCallback):
    """Record peak memory at every logging step, in the printed logs and the log history."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        """Add peak_<kind>_bytes to this step's log entry."""
        memory = {f"peak_{key}_bytes": value for key, value in peak_memory_bytes().items()}
        if logs is not None:
            logs.update(memory)
        if state.log_history:
            state.log_history[-1].update(memory)


class StepPrinter(TrainerCallback):
    """Print one line per logging step: step, loss, seconds per step, time left.

    The Trainer's own progress bar is a widget in a notebook, invisible where notebooks run
    headless (`make demo`, papermill); a printed line reaches the terminal there too.
    """

    def on_train_begin(self, args, state, control, **kwargs):
        """Remember where (and when) this training, or this resume, started."""
        self.started, self.first_step = time.perf_counter(), state.global_step
        self.first_clips = clips_logged(state.log_history)

    def on_log(self, args, state, control, logs=None, **kwargs):
        """Print the line for a log entry that carries a training loss."""
        if not state.is_world_process_zero or "loss" not in (logs or {}):
            return
        done, elapsed = state.global_step - self.first_step, time.perf_counter() - self.started
        per_step = elapsed / max(done, 1)
        left = per_step * (state.max_steps - state.global_step)
        clips = logs.get(CLIPS_SEEN)
        rate = f", {(clips - self.first_clips) / elapsed:.2f} clips/s" if clips is not None else ""
        print(f"step {state.global_step}/{state.max_steps}: loss {logs['loss']:.4f}, "
              f"{per_step:.1f} s/step{rate}, about {left / 60:.0f} min left", flush=True)


def clips_logged(log_history: list[dict]) -> int:
    """Training clips seen up to the last log entry that counted them (0 if none did): where
    the count continues after a resume."""
    return max((entry.get(CLIPS_SEEN, 0) for entry in log_history), default=0)


@contextmanager
def generation_mode(model):
    """Eval mode and KV cache on for generate; restores train mode and the cache setting.

    On a CUDA GPU, generate runs under fp16 autocast as training does: `generate_ids` (every
    decoding path's) enters `helpers.transcribe.decode.decoding_autocast` itself.
    """
    was_training, config = model.training, model.config
    use_cache = config.use_cache
    model.eval()
    config.use_cache = True
    try:
        yield model
    finally:
        config.use_cache = use_cache
        if was_training:
            model.train()


def transcription_wer(model, processor, clips: list[dict], batch_size: int = 8,
                      max_new_tokens: int | None = None, fallback: bool = True) -> dict:
    """WER/CER of real transcription (`generate`, greedy) of clips; never teacher-forced.

    clips: {"path", "sentence"} dicts. Language and task come from the model's
    generation_config (set by load_model); each clip's transcript may take as many tokens
    as its length allows (`helpers.transcribe.decode.token_cap`; max_new_tokens: a lower cap,
    for random weights in tests); fallback: Whisper's temperature fallback (seeded; the
    training's random state is left as it was). Returns {"eval_wer", "eval_cer",
    "eval_raw_wer", "eval_raw_cer", "eval_loops" (transcripts that loop or reach their cap),
    "eval_clips", "eval_seconds"}.
    """
    from helpers.audio import load_audio
    from helpers.evaluate.scoring import score
    from helpers.transcribe.decode import transcribe_arrays

    started, texts = time.perf_counter(), []
    with generation_mode(model):
        for start in range(0, len(clips), batch_size):
            audios = [load_audio(clip["path"]) for clip in clips[start:start + batch_size]]
            texts += transcribe_arrays(model, processor, audios, max_new_tokens=max_new_tokens,
                                       fallback=fallback)
    rates = score(clips, texts)
    return {"eval_wer": rates["wer"], "eval_cer": rates["cer"], "eval_raw_wer": rates["raw_wer"],
            "eval_raw_cer": rates["raw_cer"], "eval_loops": rates["loops"], "eval_clips": rates["n"],
            "eval_seconds": round(time.perf_counter() - started, 1)}


class WerCallback(TrainerCallback):
    """Every `eval_steps`, transcribe `clips` with generate and log WER next to the loss.

    The measurement lands in the same log entry as that step's loss (logging is forced on
    eval steps). With `best_dir`, the adapter with the lowest WER so far is saved there
    (atomically, by save_adapter); after a resume the best so far is read back from the
    restored log history. Only rank 0 transcribes and writes; the other ranks only keep the
    logging decision in step (it is a collective operation under DDP).
    """

    def __init__(self, processor, clips: list[dict], eval_steps: int, batch_size: int = 8,
                 best_dir: str | Path | None = None, base_source: str = "embedded",
                 max_new_tokens: int | None = None, fallback: bool = True, record: dict | None = None):
        self.processor, self.clips, self.eval_steps = processor, clips, eval_steps
        self.batch_size = batch_size
        self.record = record or {"base_source": base_source}  # save_adapter's keywords
        self.max_new_tokens, self.fallback = max_new_tokens, fallback
        self.best_dir = Path(best_dir) if best_dir else None
        self.best, self.pending = math.inf, None

    def on_train_begin(self, args, state, control, **kwargs):
        """Best WER so far: from the log history (restored from the checkpoint on resume)."""
        self.best = min((e["eval_wer"] for e in state.log_history if "eval_wer" in e), default=math.inf)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        """On eval steps: force a log, and on rank 0 measure WER (and keep the best adapter)."""
        if not self.clips or state.global_step % self.eval_steps:
            return
        control.should_log = True
        if not state.is_world_process_zero:
            return
        self.pending = transcription_wer(model, self.processor, self.clips, self.batch_size,
                                         self.max_new_tokens, self.fallback)
        if self.best_dir is not None and self.pending["eval_wer"] < self.best:
            from helpers.model.adapters import save_adapter

            self.best = self.pending["eval_wer"]
            save_adapter(model, self.best_dir, **self.record)
            self.pending["best_adapter_saved"] = True
        print(f"step {state.global_step}: WER {self.pending['eval_wer']:.2%} on "
              f"{self.pending['eval_clips']} clips by generate ({self.pending['eval_seconds']} s)",
              flush=True)

    def on_log(self, args, state, control, logs=None, **kwargs):
        """Merge the pending measurement into the log entry of this step."""
        if self.pending is None or "loss" not in (logs or {}):
            return
        logs.update(self.pending)
        state.log_history[-1].update(self.pending)
        self.pending = None


class RunIdentity(TrainerCallback, ExportableState):
    """Keep the run id and training settings (helpers.config.TRAINING_SETTINGS) in every
    checkpoint's trainer_state.json, with the seconds trained so far.

    The Trainer writes the `state()` of such callbacks into trainer_state.json at each save
    (transformers' ExportableState), so a checkpoint says which training it belongs to, which
    RESUME = "auto" checks (helpers.train.checkpoints.check_same_training), and a resumed
    training adds its time to the seconds trained before the checkpoint.
    """

    def __init__(self, settings: dict, seconds_before: float = 0.0):
        self.settings, self.seconds_before, self.started = settings, seconds_before, None

    def on_train_begin(self, args, state, control, **kwargs):
        """Start this session's clock."""
        self.started = time.perf_counter()

    def train_seconds(self) -> float:
        """Seconds trained: before the resumed checkpoint, plus this session so far."""
        session = time.perf_counter() - self.started if self.started is not None else 0.0
        return round(self.seconds_before + session, 1)

    def state(self) -> dict:
        """What trainer_state.json keeps (read back by checkpoint_identity)."""
        return {"args": {"settings": self.settings}, "attributes": {"train_seconds": self.train_seconds()}}


class SaveLastStep(TrainerCallback):
    """Save a checkpoint at the last step too (not only every save_steps), so that a finished
    training can be continued from its end when MAX_STEPS is raised."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.max_steps > 0 and state.global_step >= state.max_steps:
            control.should_save = True


class KeepLatestOnDrive(TrainerCallback):
    """After each save, copy the new checkpoint (written on the runtime's disk) into the run's
    checkpoints/ on Google Drive, overwriting the older of two slots in place (rank 0)."""

    def __init__(self, run: RunDir):
        self.run = run

    def on_save(self, args, state, control, **kwargs):
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and is_complete_checkpoint(checkpoint):
            slot = keep_on_drive(checkpoint, self.run)
            print(f"step {state.global_step}: checkpoint kept on Google Drive ({slot.name})", flush=True)


class SpeechTrainer(Seq2SeqTrainer):
    """Seq2SeqTrainer whose loss is divided by the gradient accumulation steps.

    Whisper's (and PEFT's) forward takes **kwargs, so the Trainer assumes the model sums
    its loss over `num_items_in_batch` and leaves it undivided under accumulation; but
    Whisper's loss is a plain mean over the batch's label tokens. Undivided, N accumulated
    micro-batches log N times the loss and take N times the gradient (and clipping bites
    N times too early). `loss_is_scaled_for_ga = False` is the Trainer's switch for a loss
    that still needs the division (transformers 5 `Trainer.training_step`).
    """

    loss_is_scaled_for_ga = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.clips_seen, self.clips_before = 0, None

    def compute_loss(self, model, inputs, *args, **kwargs):
        """The Trainer's loss; first takes the collator's clip count out of the batch and adds
        it to `clips_seen` (this process's training clips since train() began)."""
        inputs = dict(inputs)
        self.clips_seen += int(inputs.pop(CLIP_COUNT_KEY, 0) or 0)
        return super().compute_loss(model, inputs, *args, **kwargs)

    def clips_total(self) -> int:
        """Clips seen by every process since train() began (a collective call under DDP)."""
        count = torch.tensor(self.clips_seen, device=self.args.device)
        return int(self.accelerator.reduce(count, reduction="sum").item())

    def log(self, logs: dict, *args, **kwargs):
        """The Trainer's log, with "clips_seen" (all processes, counted on across a resume)
        in every entry that carries a training loss. Every process logs at the same steps."""
        if "loss" in logs:
            if self.clips_before is None:
                self.clips_before = clips_logged(self.state.log_history)
            logs = {**logs, CLIPS_SEEN: self.clips_before + self.clips_total()}
        super().log(logs, *args, **kwargs)


def build_trainer(model, processor, train_dataset, config: RunConfig, run: RunDir,
                  callbacks: list | None = None, clips: list[dict] | None = None) -> Seq2SeqTrainer:
    """A Seq2SeqTrainer over `train_dataset` whose checkpoints go to run/checkpoints (for a
    run on Google Drive: to the runtime's disk, the latest kept on Drive, KeepLatestOnDrive).

    clips: dev clips for WER during training (see eval_clips); used when config.eval_steps
    is set, with the best adapter kept in run/adapter_best when config.keep_best_adapter.
    """
    from helpers.colab import on_drive
    from helpers.config import TRAINING_SETTINGS, settings_of

    collator = SpeechSeq2SeqCollator(
        processor=processor,
        decoder_start_token_id=model.config.decoder_start_token_id,
        zero_padding_share=config.zero_padding_share, seed=config.seed, count_clips=True)
    extra = [MemoryCallback(), StepPrinter(), RunIdentity(settings_of(config, TRAINING_SETTINGS)),
             SaveLastStep()]
    if on_drive(run.path):
        extra.append(KeepLatestOnDrive(run))
    if measures_wer(config) and clips:
        best = run.path / BEST_ADAPTER if config.keep_best_adapter else None
        extra.append(WerCallback(processor, clips, config.eval_steps, config.eval_batch_size,
                                 best, record=config.adapter_record(),
                                 fallback=config.decode_fallback))
    trainer = SpeechTrainer(
        model=model,
        args=training_arguments(config, training_checkpoints_dir(run)),
        data_collator=collator,
        train_dataset=train_dataset,
        processing_class=processor.feature_extractor,
        callbacks=[*extra, *(callbacks or [])],
    )
    # With transformers' logging quieted the Trainer has no progress bar and prints each log
    # as a raw dict instead (PrinterCallback); StepPrinter and WerCallback print the same
    # figures as sentences, and run/train_log.json keeps every log.
    trainer.remove_callback(PrinterCallback)
    return trainer


# ---------------------------------------------------------------- the stage


def train(trainer: Seq2SeqTrainer, resume_from: str | Path | None = None) -> dict:
    """Run training (from `resume_from`, a checkpoint folder, when given).

    Returns steps, seconds, final loss and peak memory (plus resumed_from_step), and
    "clips_seen" (training clips this call processed, all processes) and "clips_per_second"
    (clips_seen / this call's seconds): with packing a step holds several clips per sample.
    After a resume, train_seconds adds this session to the seconds trained before the
    checkpoint.
    """
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    identity = next((cb for cb in trainer.callback_handler.callbacks if isinstance(cb, RunIdentity)), None)
    if identity is not None and resume_from:
        identity.seconds_before = checkpoint_identity(resume_from).get("attributes", {}).get("train_seconds", 0.0)
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    session = time.perf_counter() - started
    seconds = identity.train_seconds() if identity is not None else session
    memory = peak_memory_bytes()
    resumed = int(CHECKPOINT_NAME.match(Path(resume_from).name).group(1)) if resume_from else 0
    clips = trainer.clips_total() if isinstance(trainer, SpeechTrainer) else None
    return {
        "train_steps": trainer.state.global_step,
        "resumed_from_step": resumed,
        "train_seconds": round(seconds, 1),
        "session_seconds": round(session, 1),
        "clips_seen": clips,
        "clips_per_second": round(clips / session, 3) if clips is not None else None,
        "train_loss": round(float(result.training_loss), 4),
        "final_loss": final_loss(trainer.state.log_history),
        "peak_memory_bytes": memory.get("gpu_allocated", memory.get("process_rss")),
        "peak_memory_kind": "gpu_allocated" if "gpu_allocated" in memory else "process_rss",
        **{f"peak_{key}_bytes": value for key, value in memory.items()},
    }


def speed_line(summary: dict) -> str:
    """One line for notebook 04: seconds per step beside clips per second (from `train`)."""
    steps = summary["train_steps"] - summary.get("resumed_from_step", 0)
    seconds = summary.get("session_seconds", summary["train_seconds"])
    per_step = seconds / max(steps, 1)
    clips = summary.get("clips_seen")
    beside = (f", {summary['clips_per_second']:.2f} clips per second ({clips} clips)"
              if clips is not None else "")
    return f"{steps} steps in {seconds:.0f} s: {per_step:.1f} s per step{beside}"


def final_loss(log_history: list[dict]) -> float | None:
    """The last logged training loss (4 decimals), or None when no loss was logged."""
    losses = [entry["loss"] for entry in log_history if "loss" in entry]
    return round(float(losses[-1]), 4) if losses else None


def loss_history(trainer: Seq2SeqTrainer) -> list[dict]:
    """The logged training steps: step, loss, learning rate, memory (and WER on eval steps)."""
    return [entry for entry in trainer.state.log_history if "loss" in entry]


def best_wer(history: list[dict]) -> dict:
    """{"best_eval_wer", "best_eval_step"} from a log history ({} when WER was never measured)."""
    measured = [entry for entry in history if "eval_wer" in entry]
    if not measured:
        return {}
    best = min(measured, key=lambda entry: entry["eval_wer"])
    return {"best_eval_wer": best["eval_wer"], "best_eval_step": best["step"]}


def wer_table(history: list[dict]):
    """The steps where WER was measured: step, loss, WER and CER (percent), as a DataFrame."""
    import pandas as pd

    rows = [{"step": e["step"], "loss": round(e["loss"], 4), "WER %": round(100 * e["eval_wer"], 2),
             "CER %": round(100 * e["eval_cer"], 2), "clips": e["eval_clips"],
             "seconds": e["eval_seconds"], "best so far": bool(e.get("best_adapter_saved"))}
            for e in history if "eval_wer" in e]
    return pd.DataFrame(rows).set_index("step") if rows else pd.DataFrame()


def finish_training(trainer: Seq2SeqTrainer, config: RunConfig, run: RunDir, summary: dict) -> dict:
    """Rank 0: write train_log.json, the adapter (adapter/) and metrics.json; returns the metrics.

    Other ranks write nothing and return the summary alone.
    """
    from helpers.model.adapters import parameter_counts, save_adapter

    if not trainer.is_world_process_zero():
        return summary
    history = loss_history(trainer)
    run.write_json("train_log.json", history)
    adapter_bytes = save_adapter(trainer.model, run.adapter_dir, **config.adapter_record())
    trainable, total = parameter_counts(trainer.model)
    return run.update_metrics(**summary, **best_wer(history), adapter_bytes=adapter_bytes,
                              trainable_params=trainable, total_params=total)


def run_training(config: RunConfig, run: RunDir, resume=False) -> dict:
    """The whole training stage: what `python -m helpers.train` runs; returns the metrics.

    resume: False (a new training), True or "auto" (continue the same training's last
    checkpoint; see prepare_output). Rank 0 ends with notebook 04's completion marker."""
    from helpers.run import finish_stage

    check_training_config(config)
    resume_from = prepare_output(run, resume, config)
    model, processor = load_training_model(config)
    dataset = training_dataset(config, run, processor)
    clips = eval_clips(config, run, processor.tokenizer) if measures_wer(config) else None
    if clips and process_rank() == 0:
        run.write_jsonl("eval_clips.jsonl", clips)
    trainer = build_trainer(model, processor, dataset, config, run, clips=clips)
    summary = train(trainer, resume_from)
    metrics = finish_training(trainer, config, run, summary)
    if process_rank() == 0:
        finish_stage(run, "04", config.run_id, train_steps=metrics["train_steps"])
    return metrics
