# %% [markdown]
# # 06 · WER comparison: base vs fine-tuned
#
# Word error rate (WER) counts substituted, deleted and inserted words against the
# reference; character error rate (CER) does the same for characters. Both are shown raw
# (exact text) and normalized (case, punctuation and spacing removed, combining marks
# kept so Devanagari words are not split). Every figure is read from the run directory.

# %% parameters
RUN_NAME = None            # the run directory written by 01 (None: the run notebook 01 started last; or the PRESET's name when PRESET is set)
RUNS_ROOT = None           # None: Google Drive on Colab (how the notebooks' runtimes share a run), runs/ in this repository elsewhere; or a folder
PRESET = None              # None: the run's own preset (notebook 01's); a name here must match it
WORST_N = 8                # how many of the worst utterances to list
ENGLISH_CLIPS = 8          # multilingual models: English test clips transcribed with the adapter on and off (0: skip)
ROUTING = None             # None: the run's (notebook 05's); True: the English clips also routed by spoken language; False: adapter on and off only
LONG_FORM_BASE = True      # also transcribe notebook 05's long recording with the base model, for comparison (False: score the fine-tuned transcript only)

# %%
from helpers.config import stage_config

run, config = stage_config(RUN_NAME, RUNS_ROOT, PRESET, stage="06", routing=ROUTING)  # the predictions must be 05's, with 04's latest adapter
predictions = run.read_jsonl("predictions.jsonl", "notebook 05 (inference)")

# %% [markdown]
# ## Scores

# %%
from helpers.evaluate.scoring import compare_predictions
from helpers.evaluate.tables import comparison_table

comparison = compare_predictions(predictions)
metrics = run.update_metrics(**comparison)
comparison_table(metrics)

# %%
from helpers.notebook.plots import bar_chart

bar_chart({"base": {"WER": metrics["base_wer"], "CER": metrics["base_cer"],
                    "raw WER": metrics["raw_base_wer"]},
           "fine-tuned": {"WER": metrics["finetuned_wer"], "CER": metrics["finetuned_cer"],
                          "raw WER": metrics["raw_finetuned_wer"]}},
          run.plot("wer"), ylabel="error rate (%)",
          title=f"{config.model} on {metrics['n_test']} test clips");

# %% [markdown]
# ## Which script?
# "script share" in the table above is the share of the transcripts' letters written in the
# script of their reference (Devanagari for Hindi, Latin for English), counted per letter by
# its Unicode name (`helpers.metrics.script_share`). Whisper's base model asked for Hindi
# writes much of it in Urdu (Arabic script): every such word counts wrong in WER and CER,
# and this shows why. Percent of the letters per script:

# %%
from helpers.evaluate.tables import script_table

script_table(predictions)

# %% [markdown]
# ## Repetition loops and inserted words
# A fine-tuned Whisper sometimes repeats a phrase until it runs out of tokens. One such
# clip adds dozens of inserted words, so normalized WER can come out above raw WER.
# A transcript counts as a loop when zlib compresses it more than 2.4 times (prose stays
# under 2) or when it is over twice its reference's length plus 10 characters
# (`helpers.metrics.is_loop`). The table above gives the counts; the clips are listed here.

# %%
from helpers.evaluate.tables import looping_clips

looping_clips(predictions)

# %% [markdown]
# ## Cost of the fine-tuning, next to the blog's claims
# What training took, from notebook 04's records. With a GPU, peak memory is the figure the
# blog's "< 8 GB" describes, what `nvidia-smi` shows (memory reserved by PyTorch + the CUDA
# context), with the bytes tensors occupied beside it; on a CPU it is the process's resident
# memory, which the blog's GPU figure does not describe.

# %%
from helpers.notebook.claims import claims_table, samples_per_second

metrics = run.update_metrics(train_samples_per_second=samples_per_second(metrics, config.batch_size))
claims_table(metrics, config.model)

# %% [markdown]
# ## The worst utterances after fine-tuning
# Sorted by the fine-tuned model's WER on each clip: where to look for what is still wrong.

# %%
from helpers.evaluate.tables import worst_utterances

worst_utterances(predictions, WORST_N)

# %% [markdown]
# ## Did it forget English?
# Fine-tuning a multilingual model on one language can cost it others ("catastrophic
# forgetting"). For a multilingual model, a few English test clips of the embedded corpus
# are transcribed with `language="english"`, adapter off (the base, untouched by LoRA) and
# on, and, with routing, routed by spoken language (the base identifies each clip; only
# those it hears as the adapter's language get the adapter); the transcripts go to
# `english_check.jsonl`. An English-only model skips this.

# %%
from helpers.evaluate.forgetting import english_check

english = english_check(config, run, ENGLISH_CLIPS)
if english:
    metrics = run.update_metrics(**english)

# %% [markdown]
# ## Routed, beside adapter on and off
# With routing (notebook 05's `ROUTING`, on by default for an adapter trained on a
# multilingual base for one language) the same model is scored three ways: the base (adapter
# off everywhere), the adapter on everywhere, and routed. Routing should keep the adapter's
# score on the run's language and the base's on English; the last two columns say how many
# clips of each went to the adapter (every one of the run's language should, no English
# one). No table without routing.

# %%
from helpers.evaluate.tables import routing_table

routing_table(metrics, (config.language or "test").title())

# %% [markdown]
# ## Long recordings
# The test clips above are each under 30 s: one window of Whisper's. Notebook 05 also
# transcribed a longer recording, test clips joined with pauses, window by window, each
# window moved by the timestamps the model predicts. A model fine-tuned only on
# `<|notimestamps|>` labels may stop predicting them (`TIMESTAMP_SHARE` in notebook 01
# trains a share of clips with timestamps instead). Here that recording is scored: WER
# beside the short-clip WER, the share of 30 s windows where the model closed a segment
# with a timestamp, and how far the segment boundaries lie from the true sentence ones
# (each true start or end against the nearest predicted one). With `LONG_FORM_BASE` the
# base model transcribes the recording too (this is what the section costs; timed below).

# %%
from helpers.evaluate.long_form import long_form_check
from helpers.evaluate.tables import long_form_table

long_form = long_form_check(config, run, LONG_FORM_BASE)
if long_form:
    metrics = run.update_metrics(**long_form)
    print(f"{long_form['long_form_audio_seconds']:.0f} s of audio, {long_form['long_form_windows']} "
          f"windows; the base model's transcription took {long_form.get('long_form_base_seconds', 0):.0f} s")
long_form_table(metrics) if long_form else None

# %% [markdown]
# ## Done: the completion marker
# The marker (`stages/06.json`) says that the scores in `metrics.json` are complete for this
# run; on Colab this cell also flushes Google Drive and unmounts it before the runtime goes.

# %%
from helpers.run import finish_stage

finish_stage(run, "06", config.run_id);
