# %% [markdown]
# # 04 · Training the adapter with Seq2SeqTrainer
#
# The Trainer runs the usual loop (forward, loss, backward, AdamW step) but only the LoRA
# weights receive gradients, so the optimizer state is tiny and the 8-bit base stays
# frozen. Every checkpoint holds the adapter and optimizer state only, never the base.
#
# The `embedded` preset trains 30 steps of batch 8 (240 of cv-mini's 340 clips) with a
# short warmup and a constant learning rate, without gradient checkpointing (tiny.en needs
# no memory saving on a CPU, and each step is about 30% faster), to finish in minutes on a
# laptop CPU. The `embedded-hindi` preset trains 30 steps of the same batch on the
# multilingual `base`. The
# `blog` preset uses the recipe's schedule: warmup 50, 3 epochs, fp16.
#
# Beyond the recipe, each switchable from the parameters cell:
# - **QLoRA**: `PRECISION = "4bit"` trains on a 4-bit NF4 base (double quantization,
#   float16 compute on a GPU, float32 on a CPU) instead of 8-bit.
# - **LoRA shape**: rank, alpha, dropout and target modules (the recipe's r=32, alpha=64,
#   dropout 0.05 on `q_proj`/`v_proj` by default).
# - **WER during training, by real transcription**: every `EVAL_STEPS` steps a few dev
#   clips are transcribed with `generate`, and the WER is logged next to the loss. The
#   adapter with the lowest WER is kept in `adapter_best/`.
# - **Resume by default**: run this notebook again after a disconnect (or a `kill -9`), with
#   the same parameters, and it continues the same training from its last complete
#   checkpoint, with optimizer, scheduler, RNG and step restored (`RESUME = "auto"`).
# - **Streaming**: `STREAMING = True` computes features on the fly from the corpus instead
#   of reading the ones notebook 01 saved, for corpora whose features would not fit on disk.
# - **Packing** (notebook 01's `PACK`): a sample is a 30 s window of several clips instead
#   of one clip padded to 30 s. `BATCH_SIZE` then counts windows, `MAX_STEPS` optimizer
#   steps of that many windows, and `NUM_TRAIN_EPOCHS` passes over the clips, as before:
#   an epoch takes fewer steps. The log prints clips per second beside seconds per step.
# - The same stage as a **script**, also for several GPUs or processes, and the **export**
#   of a merged model or a CTranslate2 (faster-whisper) model: see the end.

# %% parameters
RUN_NAME = None            # the run directory written by 01 (None: the run notebook 01 started last; or the PRESET's name when PRESET is set)
RUNS_ROOT = None           # None: Google Drive on Colab (how the notebooks' runtimes share a run), runs/ in this repository elsewhere; or a folder
PRESET = None              # None: the run's own preset (notebook 01's); a name here must match it
MAX_STEPS = None           # optimizer steps of BATCH_SIZE samples each (None: the preset's; -1 trains for NUM_TRAIN_EPOCHS)
NUM_TRAIN_EPOCHS = None    # passes over the training clips (packed or not) when MAX_STEPS is -1
LEARNING_RATE = None       # None: the preset's, 1e-3
BATCH_SIZE = None          # per-device batch: clips, or with PACK 30 s windows of several clips (None: the preset's)
LOGGING_STEPS = None       # log loss and memory every N steps
SAVE_STEPS = None          # write a checkpoint every N steps
PRECISION = None           # base precision: "8bit" (the recipe), "4bit" (QLoRA, NF4), "fp16", "fp32" (None: the run's)
GRADIENT_CHECKPOINTING = None  # recompute activations in the backward pass: less memory, slower steps (None: the preset's)
FP16 = None                # fp16 mixed precision on a GPU (None: the run's; the blog preset's True; ignored on a CPU)
LORA_R = None              # LoRA rank (None: the run's, 32)
LORA_ALPHA = None          # LoRA alpha (None: the run's, 64)
LORA_DROPOUT = None        # dropout on the LoRA branch (None: the run's, 0.05)
LORA_TARGET_MODULES = None  # adapted layers, e.g. ["q_proj", "k_proj", "v_proj", "out_proj"] (None: q_proj, v_proj)
EVAL_STEPS = None          # WER by generate on dev clips every N steps (None: the preset's; 0: never)
EVAL_MAX_CLIPS = None      # dev clips transcribed each time (None: the preset's)
DECODE_FALLBACK = None     # False: greedy decoding only in those transcriptions, no loop guard (None: the run's, True)
KEEP_BEST_ADAPTER = None   # keep the lowest-WER adapter in adapter_best/ (None: the preset's)
STREAMING = None           # True: features computed on the fly, never saved (needs MAX_STEPS > 0)
ZERO_PADDING_SHARE = None  # share of examples padded to 30 s with zeros in log-mel (faster-whisper's way), the rest with silence audio (transformers', whisper.cpp's) (None: the run's, 0.5)
RESUME = "auto"            # "auto": continue this training from its last complete checkpoint (after a disconnect; raising MAX_STEPS continues a finished one); False: start over, removing the checkpoints
EXPORT = None              # after training: "merged" (plain Whisper), "ct2" (CTranslate2, faster-whisper) or "ggml" (whisper.cpp) into exports/
PUBLISH_REPO = None        # after training: push the adapter and its model card to this Hub repo, "USER/NAME" (needs HF_TOKEN with write access)
PUBLISH_PRIVATE = False    # True: create that repo private

# %% [markdown]
# ## Settings
# Changes made here are recorded in the run's `config.json`, so notebooks 05-06 (and
# `python -m helpers.train`) use the same precision and LoRA shape.

# %%
from helpers.config import stage_config
from helpers.train.trainer import check_training_config

run, config = stage_config(RUN_NAME, RUNS_ROOT, PRESET, stage="04", max_steps=MAX_STEPS, num_train_epochs=NUM_TRAIN_EPOCHS,
                           learning_rate=LEARNING_RATE, batch_size=BATCH_SIZE,
                           logging_steps=LOGGING_STEPS, save_steps=SAVE_STEPS, precision=PRECISION, fp16=FP16,
                           eval_steps=EVAL_STEPS, eval_max_clips=EVAL_MAX_CLIPS,
                           decode_fallback=DECODE_FALLBACK, gradient_checkpointing=GRADIENT_CHECKPOINTING,
                           keep_best_adapter=KEEP_BEST_ADAPTER, streaming=STREAMING,
                           zero_padding_share=ZERO_PADDING_SHARE)
lora = {key: value for key, value in {"r": LORA_R, "alpha": LORA_ALPHA, "dropout": LORA_DROPOUT,
                                      "target_modules": LORA_TARGET_MODULES}.items() if value is not None}
if lora:
    run, config = stage_config(run.name, RUNS_ROOT, PRESET, lora={**config.lora, **lora})
check_training_config(config)
config

# %% [markdown]
# ## Resume, or start clean
# A free Colab runtime lasts at most 12 hours and goes after about 90 idle minutes; the
# recipe's training takes 6-8 hours on a T4. So this notebook continues by default: with
# `RESUME = "auto"` it picks up the last complete checkpoint of *this* training, printing
# `resuming from checkpoint-N`. Each checkpoint's `trainer_state.json` keeps the run id and
# the training settings (LoRA shape, batch, learning rate, precision, seed ...; not
# `MAX_STEPS`, so raising it continues a finished training); a checkpoint of another
# training stops here with what differs and the fix, and is never deleted unasked.
# `RESUME = False` starts over and says what it removes.
#
# The Trainer writes `checkpoint-N/` file by file, so a run killed while saving leaves a
# folder without its `trainer_state.json` or optimizer: only complete checkpoints are
# trusted, partial ones (and the hidden staging copies of interrupted atomic writes) are
# removed. On Colab the checkpoints are written on the runtime's own disk, and after each
# save the latest is copied to the run's `checkpoints/` on Drive, overwriting the older of
# two copies in place (deleted files would fill Drive's trash, which counts against the
# 15 GB quota); a new runtime copies it back before resuming.

# %%
from helpers.train.checkpoints import prepare_output

resume_from = prepare_output(run, resume=RESUME, config=config)
resume_from

# %% [markdown]
# ## Model: quantized base + fresh LoRA
# The same two calls as in notebook 03, at the run's precision. On a GPU each process puts
# the base on its own device (this matters under `torchrun`, see the end).

# %%
from helpers.train.trainer import load_training_model

model, processor = load_training_model(config)
model.print_trainable_parameters()

# %% [markdown]
# ## The training data
# Normally the features notebook 01 saved, only read from disk. With `STREAMING = True`
# the corpus rows are filtered as in 01, and each clip's features are computed when a
# batch needs it (a `datasets.IterableDataset` with a shuffle buffer): nothing is written;
# with packing, each block of 128 streamed clips is packed into windows as it is read.
# The line below says what a step holds and how many steps an epoch takes.

# %%
from helpers.data.packing import describe_training_data
from helpers.train.trainer import training_dataset

train_dataset = training_dataset(config, run, processor)
print(describe_training_data(train_dataset, config))
train_dataset

# %% [markdown]
# ## Clips for WER during training
# The loss says how well the model predicts the next token when it is shown the right
# previous ones (teacher forcing); the WER says how well it transcribes. Many notebooks
# report an argmax over teacher-forced logits as "WER": it is not. Here the dev clips
# are transcribed for real, with `generate` (language and task from the generation
# config, fp16 autocast on a GPU, as notebooks 02, 05 and 06 decode), in eval mode, and
# training then resumes in train mode. Generation is the slow part, so only the first
# `EVAL_MAX_CLIPS` of the clips notebook 01 kept are used (no clip is checked again here).

# %%
from helpers.train.trainer import eval_clips, measures_wer

clips = eval_clips(config, run, processor.tokenizer) if measures_wer(config) else None
if clips:
    run.write_jsonl("eval_clips.jsonl", clips)
print(f"WER every {config.eval_steps} steps on {len(clips)} {config.eval_split} clips" if clips
      else "no WER during training (EVAL_STEPS)")

# %% [markdown]
# ## Train
# The collator pads features and labels, masks label padding with -100 and removes the
# start token the model adds back itself. `remove_unused_columns=False` and
# `label_names=["labels"]` are needed because PEFT wraps the model's `forward`.

# %%
from helpers.train.trainer import build_trainer, speed_line, train

trainer = build_trainer(model, processor, train_dataset, config, run, clips=clips)
summary = train(trainer, resume_from)
print(speed_line(summary))
summary

# %% [markdown]
# ## Save only the adapter
# `finish_training` writes the loss log, the adapter (safetensors) and the metrics. The
# adapter records its base model's source, so `python -m helpers.transcribe --adapter
# runs/<RUN_NAME>/adapter clip.mp3` can rebuild the base by itself.

# %%
from helpers.train.trainer import finish_training, loss_history

metrics = finish_training(trainer, config, run, summary)
history = loss_history(trainer)
print(f"adapter: {metrics['adapter_bytes'] / 2**20:.1f} MiB in {run.adapter_dir}")
sorted(p.name for p in run.adapter_dir.iterdir())

# %% [markdown]
# ## Loss curve, WER and memory
# Peak memory is GPU memory on a GPU and the process's peak resident memory on a CPU. The
# blog's claim, under 8 GB on a T4 for large-v2, is what `nvidia-smi` shows: the memory
# PyTorch reserved plus the CUDA context. That device-level figure is compared with it;
# the bytes tensors occupied (`torch.cuda.max_memory_allocated()`, lower) are shown beside
# it. All three are recorded at every logging step in `train_log.json`.
# `python -m helpers.footprint --batch-size N` predicts them for your settings.

# %%
from helpers.notebook.claims import memory_line
from helpers.notebook.plots import loss_curve
from helpers.train.trainer import wer_table

loss_curve(history, run.plot("loss"))
print(memory_line(summary))
wer_table(history)

# %% [markdown]
# ## The same stage as a script, on one or several processes
# `python -m helpers.train` runs exactly these functions (`helpers.train.trainer.run_training`)
# on a run directory prepared by notebook 01:
#
# ```bash
# python -m helpers.train --config runs/demo/config.json [--resume] [--set max_steps=200]
# torchrun --nproc_per_node=2 -m helpers.train --config runs/demo/config.json
# accelerate launch --multi_gpu --num_processes 2 -m helpers.train --config runs/demo/config.json
# ```
#
# Each process loads the quantized base on its own GPU (`cuda:<LOCAL_RANK>`), and DDP
# averages the LoRA gradients; only rank 0 writes files. Three settings make this work
# with an 8-bit base: non-reentrant gradient checkpointing, `ddp_find_unused_parameters=False`,
# and `average_tokens_across_devices=False` (otherwise transformers multiplies Whisper's
# mean loss by the number of processes). Without GPUs the same commands run CPU
# processes over gloo (tested that way).
#
# ## Export: a merged model, CTranslate2 for faster-whisper, ggml for whisper.cpp
# ```bash
# python -m helpers.export --adapter runs/demo/adapter --to merged --out exports/merged
# python -m helpers.export --adapter runs/demo/adapter --to ct2 --out exports/ct2 --quantization int8
# python -m helpers.export --adapter runs/demo/adapter --to ggml --out exports/ggml-model.bin
# ```
# `merged` reloads the base in fp32, adds the adapter into the weights and saves a plain
# Whisper model (no PEFT needed); `ct2` converts that with the `ctranslate2` package, a
# folder faster-whisper loads as it is; `ggml` writes it as one whisper.cpp model file. Set
# `EXPORT` above to do it here.

# %%
if EXPORT:
    from helpers.export.__main__ import export, folder_bytes

    exported = export(run.adapter_dir, EXPORT,
                      run.path / "exports" / ("ggml-model.bin" if EXPORT == "ggml" else EXPORT))
    print(f"{EXPORT}: {folder_bytes(exported) / 2**20:.1f} MiB in {exported}")

# %% [markdown]
# ## Share the adapter on the Hub
# With `PUBLISH_REPO = "USER/NAME"` the adapter goes to the Hugging Face Hub with a model card
# written from this run's files (base model, corpus and splits, settings, size, how to load
# it). The token is `HF_TOKEN`: on Colab a secret of that name (key icon, notebook access on),
# elsewhere the environment variable; it is never printed. Test WER is measured by
# notebooks 05-06, so publish again after them (here, or with the command below) to put it
# in the card:
#
# ```bash
# python -m helpers.publish --adapter runs/demo/adapter --repo USER/NAME [--private]
# python -m helpers.transcribe --adapter USER/NAME clip.mp3   # anyone can then load it by name
# ```

# %%
if PUBLISH_REPO:
    from helpers.publish.__main__ import publish

    print("published:", publish(run.adapter_dir, PUBLISH_REPO, private=PUBLISH_PRIVATE))

# %% [markdown]
# ## Done: the completion marker
# The marker (`stages/04.json`: run id, the adapter's size and SHA-256) is what notebook 05
# checks before it loads `adapter/`, so it never scores an adapter of another training; on
# Colab this cell also flushes Google Drive and unmounts it before the runtime goes.

# %%
from helpers.run import finish_stage

finish_stage(run, "04", config.run_id, train_steps=metrics["train_steps"]);

# %% [markdown]
# Next: **05** transcribes the test split with and without the adapter.
