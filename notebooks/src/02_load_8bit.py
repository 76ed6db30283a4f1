# %% [markdown]
# # 02 · Loading Whisper in 8-bit, and what that saves
#
# bitsandbytes stores each linear layer's weights as int8 with a scale per row, and
# multiplies in mixed precision. The weights take a quarter of their fp32 size (half of
# fp16). That is what lets whisper-large-v2 train on a 16 GB T4. Here we measure the
# footprint at every precision by loading the model each way.

# %% parameters
RUN_NAME = "demo"          # the run directory written by 01
RUNS_ROOT = None           # None: Google Drive on Colab (how the notebooks' runtimes share a run), runs/ in this repository elsewhere; or a folder
PRESET = "embedded"        # must match the run\'s preset (notebook 01): "embedded", "blog", "blog-fleurs" or "blog-v3-turbo"
PRECISIONS = ["fp32", "fp16", "8bit", "4bit"]  # which precisions to load and measure

# %%
from helpers.config import stage_config

run, config = stage_config(RUN_NAME, RUNS_ROOT, PRESET)
print(run, "| model:", config.model)

# %% [markdown]
# ## Measure the footprint
# `get_memory_footprint()` adds up every parameter and buffer as stored: int8 weights count
# one byte, 4-bit weights half a byte plus their scales.

# %%
from helpers.footprint.measure import measure_footprints

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

model, processor = load_model(config.model, precision=config.precision, language=config.language)
print(linear_layer_kinds(model))

# %% [markdown]
# ## Does 8-bit still transcribe?
# Quantization must not break the model. Transcribe a few test clips with the quantized
# model before training anything.

# %%
from helpers.evaluate.scoring import predict, score

clips = run.read_jsonl("test_clips.jsonl", "notebook 01")[:8]
texts = predict(model, processor, clips, batch_size=config.eval_batch_size,
                fallback=config.decode_fallback)
for clip, text in list(zip(clips, texts))[:3]:
    print(f"ref: {clip['sentence']}\nhyp: {text}\n")
quick = score(clips, texts)
run.update_metrics(**{f"footprint_{p}_bytes": e["bytes"] for p, e in footprints.items()})
quick

# %% [markdown]
# Next: **03** adds LoRA adapters to the 8-bit model.
