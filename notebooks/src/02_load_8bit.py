# %% [markdown]
# # 02 · Loading Whisper in 8-bit, and what that saves
#
# bitsandbytes stores each linear layer's weights as int8 with a scale per row, and
# multiplies in mixed precision. The weights take a quarter of their fp32 size (half of
# fp16). That is what lets whisper-large-v2 train on a 16 GB T4. Here we measure the
# footprint at every precision by loading the model each way.

# %% parameters
RUN_NAME = None            # the run directory written by 01 (None: the run notebook 01 started last; or the PRESET's name when PRESET is set)
RUNS_ROOT = None           # None: Google Drive on Colab (how the notebooks' runtimes share a run), runs/ in this repository elsewhere; or a folder
PRESET = None              # None: the run's own preset (notebook 01's); a name here must match it
PRECISIONS = ["fp32", "fp16", "8bit", "4bit"]  # which precisions to load and measure
SKIP_IF_DONE = False       # True: when this notebook already finished for this run, measure nothing again

# %%
from helpers.config import stage_config
from helpers.run import stage_done

run, config = stage_config(RUN_NAME, RUNS_ROOT, PRESET, stage="02")
skipped = SKIP_IF_DONE and stage_done(run, "02", config.run_id)
print(run, "| model:", config.model, "| skipped: already measured for this run" if skipped else "")

# %% [markdown]
# ## Measure the footprint
# `get_memory_footprint()` adds up every parameter and buffer as stored: int8 weights count
# one byte, 4-bit weights half a byte plus their scales.

# %%
from helpers.footprint.measure import measure_footprints

if skipped:
    footprints = run.read_json("footprint.json", "notebook 02")
else:
    footprints = measure_footprints(config.model, PRECISIONS, language=config.language)
    run.write_json("footprint.json", footprints)
for precision, entry in footprints.items():
    print(f"{precision:>5}: {entry['bytes'] / 2**20:8.1f} MiB  (loaded in {entry['load_seconds']} s)")

# %%
from helpers.notebook.plots import bar_chart

megabytes = {p: e["bytes"] / 2**20 for p, e in footprints.items()}
bar_chart({"model": megabytes}, run.plot("footprint"), ylabel="MiB",
          title=f"{config.model}: memory footprint by precision", percent=False);

# %% [markdown]
# Only the linear layers are quantized. On whisper-large-v2 they hold almost all of the
# 1.55 B parameters, so 8-bit is close to a quarter of fp32. On tiny.en the token embedding
# (51,864 × 384 ≈ 20 M of its 38 M parameters) stays in full precision, so the saving is
# much smaller, and 8-bit can even be larger than fp16.

# %% [markdown]
# ## What bitsandbytes replaced
# Loading in 8-bit swaps `nn.Linear` for `Linear8bitLt`; the convolutions, embeddings and
# layer norms stay in full precision.

# %%
from helpers.footprint.measure import linear_layer_kinds
from helpers.model.load import load_model

if not skipped:
    model, processor = load_model(config.model, precision=config.precision, language=config.language)
    print(linear_layer_kinds(model))

# %% [markdown]
# ## Does 8-bit still transcribe?
# Quantization must not break the model. Transcribe a few test clips with the quantized
# model before training anything.

# %%
from helpers.evaluate.scoring import predict, score

clips = run.read_jsonl("test_clips.jsonl", "notebook 01")[:8]
texts = [] if skipped else predict(model, processor, clips, batch_size=config.eval_batch_size,
                                   fallback=config.decode_fallback)
for clip, text in list(zip(clips, texts))[:3]:
    print(f"ref: {clip['sentence']}\nhyp: {text}\n")
quick = score(clips, texts) if texts else None
run.update_metrics(**{f"footprint_{p}_bytes": e["bytes"] for p, e in footprints.items()})
quick

# %% [markdown]
# ## Done: the completion marker
# The marker (`stages/02.json`) tells the next notebooks that this one finished for this
# run; on Colab this cell also flushes Google Drive and unmounts it before the runtime goes.

# %%
from helpers.run import finish_stage

finish_stage(run, "02", config.run_id);

# %% [markdown]
# Next: **03** adds LoRA adapters to the 8-bit model.
