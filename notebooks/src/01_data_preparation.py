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
RUN_NAME = None            # results go to runs/<RUN_NAME>/ (the only channel to notebooks 02-06); None: the preset's name
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
PACK = None                # True: join consecutive training clips into samples of up to 30 s, since Whisper reads 30 s whatever the clip's length (several times the clips per second); False: one clip a sample, as in the recipe (None: the preset's)
TIMESTAMP_SHARE = None     # share of training samples labelled with timestamps, so the model keeps predicting them for long audio: with PACK, of the 30 s windows (each clip a segment), else of the clips (None: the preset's)
REPLAY_SHARE = None        # multilingual models: share of the training samples taken from another language (embedded-hindi: data/cv-mini/en; blog presets: FLEURS en_us), labelled with its own language token, so one model keeps both (None: 0.0, the recipe)
SKIP_IF_DONE = False       # True: when this run already holds this notebook's outputs for the same settings, prepare nothing again (set False after editing a local corpus)

# %% [markdown]
# ## The run directory and its settings
# `start_run` resolves the preset plus your overrides and writes `config.json` into the
# run directory. Every later notebook reads it from there, so they agree on model,
# language and corpus without sharing any kernel state. It also gives the run an id: kept
# when this notebook runs again with the same data settings, new when they change, so that
# checkpoints, the adapter and the predictions of older data are never taken for this run's.
# A `RUN_NAME` that holds a run of another preset, model or corpus is refused, with the fix.
# On Colab a GPU preset stops here at once if the runtime has no GPU (or one under 14 GB).

# %%
from helpers.config import start_run

run, config = start_run(RUN_NAME, PRESET, RUNS_ROOT, model=MODEL, language=LANGUAGE, corpus=CORPUS,
                        corpus_config=CORPUS_CONFIG, text_column=TEXT_COLUMN,
                        max_train_clips=MAX_TRAIN_CLIPS, max_test_clips=MAX_TEST_CLIPS, seed=SEED,
                        timestamp_share=TIMESTAMP_SHARE, pack=PACK, replay_share=REPLAY_SHARE)
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
# With `TIMESTAMP_SHARE` above 0, that share of the training samples (chosen by the seed)
# is labelled with timestamps instead. One clip a sample: `<|0.00|> text <|end|>`, `end`
# being where the clip's speech ends, found from its energy (`helpers/data/timestamps.py`).
# Packed (`PACK = True`, next section): Whisper's long-form format, each clip a segment
# from where its speech starts to where it ends in the 30 s window; the other windows get
# the recipe's `<|notimestamps|>` and the clips' texts joined.

# %%
from helpers.model.load import load_processor
from helpers.data.packing import window_labels
from helpers.data.timestamps import timestamp_labels

processor = load_processor(config.model, language=config.language, task=config.task)
example = processor.tokenizer("Hello there.").input_ids
print("label ids for 'Hello there.':", example)
print("as tokens:", processor.tokenizer.convert_ids_to_tokens(example))
if config.pack:
    with_times = window_labels(processor.tokenizer, ["Hello there.", "Good bye."], [(0.42, 1.3), (2.66, 3.5)])
    print(f"a window of two clips, with timestamps ({config.timestamp_share:.0%} of the windows):")
else:
    with_times = timestamp_labels(processor.tokenizer, "Hello there.", end_seconds=1.234)
    print(f"with timestamps ({config.timestamp_share:.0%} of the training clips):")
print(processor.tokenizer.convert_ids_to_tokens(with_times))

# %% [markdown]
# ## Filter, extract features, save
# Every row is either kept or dropped for one named reason: a missing clip, unreadable
# audio (or a file cut short), empty text, audio over Whisper's 30 s window, silence
# (nothing above -60 dBFS: nothing to transcribe), or labels over the decoder's 448
# positions. Nothing disappears without being counted: each split prints "rows read =
# kept + dropped", and the dropped rows are listed in
# `dropped_rows.jsonl`. Kept training rows become log-mel features + label ids on disk;
# the kept test clips are listed in `test_clips.jsonl` (and, when notebook 04 will watch
# WER on another split, that split's in `<split>_clips.jsonl`), so later notebooks never
# check a clip again. The longest kept label is printed in tokens: nothing decodes a
# transcript shorter than that (a clip may take 25 tokens per second of its audio, up to
# the decoder's limit; the recipe's 128 would cut Hindi sentences of 25 words).
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
from helpers.data.prepare import longest_label_line, prepare_run_data, report_table

reports = prepare_run_data(config, run, processor, reuse=SKIP_IF_DONE)
print(longest_label_line(reports))
report_table(reports)

# %% [markdown]
# ## How long are the clips? Packing them into 30 s windows
# Whisper pads every clip to 30 s, so short clips cost as much compute as long ones: the
# encoder, the largest cost of a training step, then works mostly on padding. The histogram
# shows how much of that window the corpus's clips fill.
#
# With `PACK = True` the training clips, in the order the seed shuffles them to, were joined
# with short pauses (0.2 to 1 s) into windows of up to 30 s and 448 label tokens, a clip
# never cut (`helpers/data/packing.py`). A training step then holds `BATCH_SIZE` windows of
# several clips each, so training gets through several times the clips per second; an
# epoch is still one pass over the clips. Test and dev clips stay one a sample.

# %%
from helpers.notebook.plots import duration_histogram

durations = run.read_json("train_durations.json", "this notebook")
duration_histogram(durations, run.plot("durations"));
if config.pack and not config.streaming:
    packing = run.read_json("packing.json", "this notebook")
    print(f"{packing['clips']} clips packed into {packing['windows']} windows: "
          f"{packing['clips_per_window']:.1f} clips and {packing['seconds_per_window']:.1f} s of audio "
          f"a window ({packing['audio_share']:.0%} of 30 s), {packing['timestamped_windows']} with "
          f"timestamps, longest labels {packing['longest_labels']} tokens")

# %% [markdown]
# ## Listen to a few clips
# Always listen to some data before training on it.

# %%
from IPython.display import Audio, display

for clip in run.read_jsonl("test_clips.jsonl", "this notebook")[:3]:
    print(clip["sentence"])
    display(Audio(filename=clip["path"]))

# %% [markdown]
# ## Done: the completion marker
# The next notebooks check this notebook's marker (`stages/01.json`: the run id and the size
# of every file written here) before they read its files. On Colab this cell also flushes
# Google Drive and unmounts it, so that the files are all on Drive before the runtime goes.

# %%
from helpers.run import finish_stage

finish_stage(run, "01", config.run_id);

# %% [markdown]
# Next: **02** loads the model in 8-bit and measures what that saves.
