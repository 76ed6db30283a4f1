# %% [markdown]
# # 01 · Data preparation: speech corpus → log-mel features + labels
#
# Whisper does not read audio; it reads 30-second log-mel spectrograms (80 × 3000) and
# predicts token ids. This notebook turns a speech corpus into exactly that, once, and
# saves it in the run directory so that training (04) never decodes audio again.
#
# The default corpus is `data/cv-mini/en`, a small English corpus in Common Voice layout
# that ships with this repository, so everything runs offline. The `embedded-hindi` preset
# uses its Hindi sibling `data/cv-mini/hi` with the multilingual `base` model. The `blog`
# preset downloads a Common Voice Hindi release from the Mozilla Data Collective instead
# (`CORPUS = "mdc:<id>"`, needs a free API key stored as the Colab secret `MDC_API_KEY`);
# `blog-fleurs` reads FLEURS Hindi (`CORPUS = "fleurs:hi_in"`), which needs no sign-in;
# `blog-v3-turbo` is the recipe on whisper-large-v3-turbo with LoRA on an fp16 base (8-bit
# LoRA diverged on large-v3 in PEFT issue 1223). See the README.

# %% [markdown]
# ## Parameters
# Everything you may change is here. `PRESET` picks a whole configuration; any other value
# left at `None` keeps the preset's choice.

# %% parameters
RUN_NAME = "demo"          # results go to runs/<RUN_NAME>/ (the only channel to notebooks 02-06)
RUNS_ROOT = None           # None: Google Drive on Colab (how the notebooks' runtimes share a run), runs/ in this repository elsewhere; or a folder
PRESET = "embedded"        # "embedded" (tiny.en, cv-mini, CPU), "embedded-hindi" (base, cv-mini Hindi, CPU), "blog" (whisper-large-v2, Common Voice Hindi, T4), "blog-fleurs" (the same on FLEURS Hindi, no sign-in) or "blog-v3-turbo" (whisper-large-v3-turbo, fp16 base, Common Voice Hindi, T4)
MODEL = None               # model source: "embedded", a Hub id, a local or CTranslate2 folder
LANGUAGE = None            # spoken language for multilingual models, e.g. "hindi"
CORPUS = None              # "mdc:<dataset id>" (Common Voice, downloaded once), "fleurs:hi_in", a Common Voice locale folder, folder/CSV of audio + text, or a Hub dataset id
CORPUS_CONFIG = None       # Hub datasets only: the configuration (e.g. a language code)
TEXT_COLUMN = None         # Hub/CSV/FLEURS corpora: the transcript column (None: sentence/text/transcription; FLEURS: "raw_transcription" keeps case and punctuation)
MAX_TRAIN_CLIPS = None     # cap the training clips (None: all)
MAX_TEST_CLIPS = None      # cap the test clips (None: all)
SEED = None                # seeds LoRA's initialization and the order of the training data (None: the preset's, 42)
TIMESTAMP_SHARE = None     # share of training clips labelled with timestamps, <|0.00|> text <|end|>, so the model keeps predicting them for long audio (None: the preset's, 0.0 as in the recipe)
REPLAY_SHARE = None        # multilingual models: share of the training samples taken from another language (embedded-hindi: data/cv-mini/en; blog presets: FLEURS en_us), labelled with its own language token, so one model keeps both (None: 0.0, the recipe)

# %% [markdown]
# ## The run directory and its settings
# `start_run` resolves the preset plus your overrides and writes `config.json` into the
# run directory. Every later notebook reads it from there, so they agree on model,
# language and corpus without sharing any kernel state.

# %%
from helpers.config import start_run

run, config = start_run(RUN_NAME, PRESET, RUNS_ROOT, model=MODEL, language=LANGUAGE, corpus=CORPUS,
                        corpus_config=CORPUS_CONFIG, text_column=TEXT_COLUMN,
                        max_train_clips=MAX_TRAIN_CLIPS, max_test_clips=MAX_TEST_CLIPS, seed=SEED,
                        timestamp_share=TIMESTAMP_SHARE, replay_share=REPLAY_SHARE)
print(run)
config

# %% [markdown]
# ## The processor
# The processor pairs the feature extractor (audio → log-mel) with the tokenizer
# (text → ids). For a multilingual model it also fixes the language and task tokens that
# start every label, so training teaches the model the language we asked for.
#
# The recipe's labels say `<|notimestamps|>`. A model trained only on those tends to stop
# predicting timestamps, which Whisper's long-form decoding (audio over 30 s) moves by.
# With `TIMESTAMP_SHARE` above 0, that share of the training clips (chosen by the seed)
# is labelled `<|0.00|> text <|end|>` instead, `end` being where the clip's speech ends,
# found from its energy (`helpers/timestamps.py`).

# %%
from helpers.model.load import load_processor
from helpers.data.timestamps import timestamp_labels

processor = load_processor(config.model, language=config.language, task=config.task)
example = processor.tokenizer("Hello there.").input_ids
print("label ids for 'Hello there.':", example)
print("as tokens:", processor.tokenizer.convert_ids_to_tokens(example))
with_times = timestamp_labels(processor.tokenizer, "Hello there.", end_seconds=1.234)
print(f"with timestamps ({config.timestamp_share:.0%} of the training clips):",
      processor.tokenizer.convert_ids_to_tokens(with_times))

# %% [markdown]
# ## Filter, extract features, save
# Every row is either kept or dropped for one named reason: a missing clip, unreadable
# audio (or a file cut short), empty text, audio over Whisper's 30 s window, silence
# (nothing above -60 dBFS: nothing to transcribe), or labels over the decoder's 448
# positions. Nothing disappears without being counted: each split prints "rows read =
# kept + dropped", and the dropped rows are listed in
# `dropped_rows.jsonl`. Kept training rows become log-mel features + label ids on disk.
#
# With `REPLAY_SHARE` above 0, clips of another language (the preset's `replay_corpus`)
# are added until they make up that share of the training set, labelled with their own
# language token (`<|en|>` where the run's say `<|hi|>`; `helpers/data/replay.py`): the
# adapter then learns the new language without unlearning that one, for a single model
# (merged, exported) that serves both. Without it, routing (notebooks 05 and 06) keeps the
# adapter off the other languages instead; the forgetting benchmark compares the two.
#
# Whisper reads 3000 frames (30 s) per clip, but every frame after a clip's end holds the
# same padding value, so only the frames that see audio are computed and stored, with that
# value beside them; the collator rebuilds the 80 × 3000 input, equal to the extractor's
# to float32 rounding (at most one ulp apart, 1.2e-7, measured on AMD; equal on Intel).
# A 5 s clip takes about 160 KB instead of 960 KB (see the README's benchmarks).

# %%
from helpers.data.prepare import prepare_run_data, report_table

reports = prepare_run_data(config, run, processor)
report_table(reports)

# %% [markdown]
# ## How long are the clips?
# Whisper pads every clip to 30 s, so short clips cost as much compute as long ones. The
# histogram shows how much of that window the corpus actually fills.

# %%
from helpers.notebook.plots import duration_histogram

durations = run.read_json("train_durations.json", "this notebook")
duration_histogram(durations, run.plot("durations"));

# %% [markdown]
# ## Listen to a few clips
# Always listen to some data before training on it.

# %%
from IPython.display import Audio, display

for clip in run.read_jsonl("test_clips.jsonl", "this notebook")[:3]:
    print(clip["sentence"])
    display(Audio(filename=clip["path"]))

# %% [markdown]
# Next: **02** loads the model in 8-bit and measures what that saves.
