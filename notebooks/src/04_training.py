# %% [markdown]
# # 04 · Training the adapter with Seq2SeqTrainer
#
# The Trainer runs the usual loop (forward, loss, backward, AdamW step) but only the LoRA
# weights receive gradients, so the optimizer state is tiny and the 8-bit base stays
# frozen. Every checkpoint holds the adapter and optimizer state only, never the base.
#
# The `embedded` preset trains 40 steps of batch 8 (about 1 epoch of cv-mini) with a
# short warmup and a constant learning rate, to finish in minutes on a laptop CPU. The
# `blog` preset uses the recipe's schedule: warmup 50, 3 epochs, fp16.

# %% parameters
RUN_NAME = "demo"          # the run directory written by 01
RUNS_ROOT = None           # None: runs/ in this repository; "drive": Google Drive on Colab (survives a disconnect); or a folder
PRESET = "embedded"        # must match the run\'s preset (notebook 01): "embedded" or "blog"
MAX_STEPS = None           # training steps (None: the preset's; -1 trains for NUM_TRAIN_EPOCHS)
NUM_TRAIN_EPOCHS = None    # epochs when MAX_STEPS is -1
LEARNING_RATE = None       # None: the preset's, 1e-3
BATCH_SIZE = None          # per-device batch (None: the preset's, 8)
LOGGING_STEPS = None       # log loss and memory every N steps
SAVE_STEPS = None          # write a checkpoint every N steps

# %%
from helpers.config import stage_config

run, config = stage_config(RUN_NAME, RUNS_ROOT, PRESET, max_steps=MAX_STEPS, num_train_epochs=NUM_TRAIN_EPOCHS,
                           learning_rate=LEARNING_RATE, batch_size=BATCH_SIZE,
                           logging_steps=LOGGING_STEPS, save_steps=SAVE_STEPS)
config

# %% [markdown]
# ## The training data from 01
# Features were computed once in notebook 01; here they are only read from disk.

# %%
from datasets import load_from_disk

train_dataset = load_from_disk(str(run.require("features/train", "notebook 01")))
train_dataset

# %% [markdown]
# ## Model: 8-bit base + fresh LoRA
# The same two calls as in notebook 03.

# %%
from helpers.adapters import add_lora
from helpers.models import load_model

model, processor = load_model(config.model, precision=config.precision, language=config.language)
model = add_lora(model, config.lora_settings(), gradient_checkpointing=config.gradient_checkpointing)
model.print_trainable_parameters()

# %% [markdown]
# ## Train
# The collator pads features and labels, masks label padding with -100 and removes the
# start token the model adds back itself. `remove_unused_columns=False` and
# `label_names=["labels"]` are needed because PEFT wraps the model's `forward`.

# %%
from helpers.training import build_trainer, loss_history, train

trainer = build_trainer(model, processor, train_dataset, config, run)
summary = train(trainer)
history = loss_history(trainer)
run.write_json("train_log.json", history)
summary

# %% [markdown]
# ## Loss curve and memory
# Peak memory is GPU memory on a GPU and the process's peak resident memory on a CPU.

# %%
from helpers.plots import loss_curve

loss_curve(history, run.plot("loss"))
print(f"peak memory ({summary['peak_memory_kind']}): {summary['peak_memory_bytes'] / 2**30:.2f} GiB")

# %% [markdown]
# ## Save only the adapter
# The adapter records its base model's source, so `python -m helpers.transcribe --adapter
# runs/<RUN_NAME>/adapter clip.mp3` can rebuild the base by itself.

# %%
from helpers.adapters import parameter_counts, save_adapter

adapter_bytes = save_adapter(model, run.adapter_dir, base_source=config.model)
trainable, total = parameter_counts(model)
run.update_metrics(**summary, adapter_bytes=adapter_bytes, trainable_params=trainable, total_params=total)
print(f"adapter: {adapter_bytes / 2**20:.1f} MiB in {run.adapter_dir}")
sorted(p.name for p in run.adapter_dir.iterdir())

# %% [markdown]
# Next: **05** transcribes the test split with and without the adapter.
