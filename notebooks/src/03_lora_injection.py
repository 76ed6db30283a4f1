# %% [markdown]
# # 03 · LoRA injection: what is trainable
#
# The 8-bit weights are frozen: int8 tensors cannot take gradient updates. LoRA adds, beside
# each chosen linear layer W, two small trainable matrices B·A of rank r, so the layer
# computes W·x + (alpha/r)·B·A·x. Only A and B train, and only they are saved: the
# adapter. The recipe adapts the attention `q_proj` and `v_proj` layers with r = 32.

# %% parameters
RUN_NAME = None            # the run directory written by 01 (None: the run notebook 01 started last; or the PRESET's name when PRESET is set)
RUNS_ROOT = None           # None: Google Drive on Colab (how the notebooks' runtimes share a run), runs/ in this repository elsewhere; or a folder
PRESET = None              # None: the run's own preset (notebook 01's); a name here must match it
LORA_R = None              # LoRA rank (None: the preset's, 32)
LORA_ALPHA = None          # LoRA alpha (None: the preset's, 64)

# %%
from helpers.config import stage_config

overrides = {key: value for key, value in {"r": LORA_R, "alpha": LORA_ALPHA}.items() if value is not None}
run, config = stage_config(RUN_NAME, RUNS_ROOT, PRESET, stage="03")
if overrides:
    run, config = stage_config(run.name, RUNS_ROOT, PRESET, lora={**config.lora, **overrides})
config.lora

# %% [markdown]
# ## Load the 8-bit base and add LoRA
# `add_lora` first prepares the quantized model for training (layer norms in fp32,
# gradient checkpointing that works with frozen inputs), then wraps it with PEFT.

# %%
from helpers.model.adapters import add_lora, parameter_counts, trainable_dtype_summary
from helpers.model.load import load_model

model, processor = load_model(config.model, precision=config.precision, language=config.language)
model = add_lora(model, config.lora_settings(), gradient_checkpointing=config.gradient_checkpointing)
model.print_trainable_parameters()
trainable, total = parameter_counts(model)
print("trainable dtypes:", trainable_dtype_summary(model))

# %% [markdown]
# ## Where the adapters went
# Each adapted layer now holds `lora_A` (r × in) and `lora_B` (out × r).

# %%
adapted = [name for name, _ in model.named_modules() if name.endswith(("q_proj", "v_proj"))]
print(len(adapted), "adapted layers, e.g.", adapted[:2])

# %% [markdown]
# ## The adapter's size on disk, before training
# Saving writes only the LoRA weights (safetensors). Its size does not change with
# training, so this is the size of the checkpoint you will share.

# %%
import tempfile

from helpers.model.adapters import save_adapter

with tempfile.TemporaryDirectory() as folder:
    adapter_bytes = save_adapter(model, f"{folder}/adapter", base_source=config.model)
summary = {"trainable_params": trainable, "total_params": total,
           "trainable_pct": round(100 * trainable / total, 4), "adapter_bytes": adapter_bytes}
run.write_json("lora.json", summary)
run.update_metrics(trainable_params=trainable, total_params=total)
summary

# %% [markdown]
# ## Done: the completion marker
# The marker (`stages/03.json`) tells the next notebooks that this one finished for this
# run; on Colab this cell also flushes Google Drive and unmounts it before the runtime goes.

# %%
from helpers.run import finish_stage

finish_stage(run, "03", config.run_id);

# %% [markdown]
# Next: **04** trains the adapter.
