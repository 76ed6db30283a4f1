# %% [markdown]
# # 05 · Inference with the adapter
#
# An adapter is loaded onto the same 8-bit base it was trained on. PEFT can switch it off
# for a moment (`disable_adapter()`), so one loaded model gives both the base model's and
# the fine-tuned model's transcripts of the test split: same weights, same decoding
# settings, only the adapter differs. On a CPU the 8-bit layers compute as bitsandbytes
# computes them there in training (each int8 weight dequantized for the call, a float32
# matmul), 2-3x faster than its LLM.int8 path, which has no fast CPU kernels
# (`helpers.model.load.dequantized_8bit_on_cpu`); on a GPU, LLM.int8 as in the recipe.

# %% parameters
RUN_NAME = None            # the run directory written by 01 (None: the run notebook 01 started last; or the PRESET's name when PRESET is set)
RUNS_ROOT = None           # None: Google Drive on Colab (how the notebooks' runtimes share a run), runs/ in this repository elsewhere; or a folder
PRESET = None              # None: the run's own preset (notebook 01's); a name here must match it
EVAL_BATCH_SIZE = None     # clips per generate() call (None: the preset's)
MAX_TEST_CLIPS = None      # transcribe only the first N of notebook 01's test clips (None: all of them)
DECODE_FALLBACK = None     # False: greedy decoding only, without Whisper's loop guard (None: the run's, True)
LONG_FORM_SECONDS = 60     # length of the long recording made from test clips and transcribed at the end (0: skip)
ADAPTER = None             # None: the run's adapter/ (notebook 04); or another one: a folder, or a Hub id "USER/NAME" ("USER/NAME@REVISION")
ROUTING = None             # None: the run's (True); True: also transcribe routed by spoken language (multilingual base, adapter for one language); False: adapter on every clip only
OPEN_APP = False           # True: open the web page (base vs fine-tuned on your own recording) in the last cell
APP_SHARE = False          # True: also a public gradio.live link to the page (anyone with the link can use it)

# %%
from helpers.config import stage_config

run, config = stage_config(RUN_NAME, RUNS_ROOT, PRESET, stage="05", eval_batch_size=EVAL_BATCH_SIZE,
                           decode_fallback=DECODE_FALLBACK, routing=ROUTING)
kept = run.read_jsonl("test_clips.jsonl", "notebook 01")
clips = kept[:MAX_TEST_CLIPS]
print(f"{len(clips)} of the {len(kept)} test clips notebook 01 kept")

# %% [markdown]
# ## Base model + adapter
# The run's own `adapter/` is loaded only when notebook 04's completion marker vouches for
# it: the same run id, and the very weights 04 saved last (their SHA-256), so an adapter of
# an older training under the same `RUN_NAME` is never scored as this run's. `ADAPTER` may
# instead name an adapter someone published on the Hub (`USER/NAME`): only its config,
# safetensors weights and card are downloaded, and it must fit the run's base model.

# %%
from helpers.model.adapters import attach_adapter, resolve_adapter
from helpers.model.load import load_model
from helpers.run import trained_adapter

adapter = resolve_adapter(ADAPTER) if ADAPTER else trained_adapter(run, config.run_id)
model, processor = load_model(config.model, precision=config.precision, language=config.language)
model = attach_adapter(model, adapter)
model.eval();

# %% [markdown]
# ## Transcribe the test split twice
# Batched `generate`; language and task come from the model's generation config; on a
# GPU, under the fp16 autocast training uses. A transcript may take 25 tokens per second of
# its clip (plus 32), up to what the decoder's 448 positions allow: the recipe's 128 cut
# Hindi, where a 16 s sentence is 221 tokens; a transcript that runs into its cap is no
# speech and counts as a loop in notebook 06. Decoding is greedy, with Whisper's own
# guard against repetition loops, a known failure of fine-tuned Whisper (PEFT issue 380):
# a transcript that compresses too well (a loop) or that the model itself finds unlikely
# (mean log-probability under -1) is decoded again by sampling at temperature 0.2, then
# 0.4, ... 1.0, seeded so that a run is reproducible. `DECODE_FALLBACK = False` turns the
# guard off, to see what it prevents; notebook 06 counts the loops either way.

# %%
from helpers.evaluate.scoring import predict, prediction_rows

with model.disable_adapter():
    base_texts = predict(model, processor, clips, batch_size=config.eval_batch_size,
                         fallback=config.decode_fallback)
finetuned_texts = predict(model, processor, clips, batch_size=config.eval_batch_size,
                          fallback=config.decode_fallback)
predictions = prediction_rows(clips, base_texts, finetuned_texts)

# %% [markdown]
# ## Routed by spoken language
# An adapter trained for one language makes a multilingual Whisper worse at the others
# (notebook 06 checks English). Routing uses it only where it was trained: the base, adapter
# off, identifies the language of each clip; clips it hears as the adapter's language (for
# Hindi also Urdu, which the base often hears in Hindi speech) are decoded with the adapter
# in that language, the others by the base in their own. The routed transcripts go beside
# the others ("routed"), with the language each clip was decoded in; a clip routed to the
# adapter in the run's language takes the adapter-on transcript above (the same decoding),
# so only the language identification and the clips sent elsewhere cost time. English-only
# models, and `ROUTING = False`, skip this.

# %%
from helpers.evaluate.scoring import predict_routed
from helpers.transcribe.routing import Route, code_of, router_for, routing_line

router = router_for(model, processor, adapter, routing=config.routing)
if router.routing:
    print(routing_line(router))
    routed_texts, routes = predict_routed(
        model, processor, clips, router, config.eval_batch_size, fallback=config.decode_fallback,
        known={Route(code_of(config.language), True): finetuned_texts})
    for row, text, route in zip(predictions, routed_texts, routes):
        row.update(routed=text, routed_language=route.language, routed_adapter=route.adapter)
    print(f"{sum(r.adapter for r in routes)} of {len(routes)} test clips routed to the adapter; "
          f"routing took {router.detect_seconds + router.settle_seconds:.1f} s (identifying "
          f"{router.detect_seconds:.1f} s, settling {router.settled} doubts {router.settle_seconds:.1f} s)")
run.write_jsonl("predictions.jsonl", predictions);

# %% [markdown]
# ## Explore the transcripts
# Pick a clip, play it, and compare. Words the model got wrong are marked: missing
# reference words in red and struck through, wrong or extra words in green.

# %%
from helpers.notebook.explorer import TranscriptExplorer

explorer = TranscriptExplorer(predictions)
explorer

# %% [markdown]
# ## A long recording
# Whisper hears 30 s at a time; interviews, lectures and voice notes are longer. Whisper's
# long-form decoding transcribes a 30 s window with timestamp tokens, keeps the segments
# the model closed with a timestamp, and moves the window to the end of the last one, so a
# sentence cut by the window's edge is heard again whole (`helpers.long_form`; the file is
# read window by window, so memory does not grow with its length). It needs the model to
# predict timestamps, which fine-tuning on text-only labels can unlearn: the table shows
# whether this adapter still does. The recording is made here from the test clips, joined
# with pauses of 0.3 to 2.5 s, so each sentence's true start and end are known.

# %%
from IPython.display import display

from helpers.data.long_form import build_long_form_from_clips
from helpers.evaluate.tables import segments_table
from helpers.transcribe.long_form import transcribe_long

if LONG_FORM_SECONDS:
    recording = build_long_form_from_clips(clips, run.file("long_form/recording"), count=1,
                                           min_seconds=LONG_FORM_SECONDS,
                                           max_seconds=LONG_FORM_SECONDS + 10, seed=config.seed)[0]
    long_form = transcribe_long(model, processor, recording["path"], fallback=config.decode_fallback)
    run.write_json("long_form/prediction.json", {"recording": recording, "prediction": long_form})
    print(f"{recording['duration']:.0f} s, {len(recording['sentences'])} sentences, "
          f"{len(long_form['segments'])} segments in {len(long_form['windows'])} windows")
    display(segments_table(recording, long_form))

# %% [markdown]
# ## Try it on your own voice
# With `OPEN_APP = True` this cell opens a web page on the model loaded above (the page of
# `python -m helpers.app`): record from the microphone or upload a clip of up to 30 s, and
# read the base and the fine-tuned transcripts side by side, the words where they differ
# marked, with the time each took. On Colab it appears below the cell (and installs gradio,
# `requirements-app.txt`, the first time); elsewhere the cell prints its local address.

# %%
if OPEN_APP:
    from helpers.app import open_page

    open_page(model, processor, f"{config.model} + adapter of run {run.name}", share=APP_SHARE,
              router=router)

# %% [markdown]
# ## Done: the completion marker
# The marker (`stages/05.json`) records which adapter made the predictions and their
# SHA-256; notebook 06 scores them only if they are still this run's, made with the adapter
# notebook 04 trained last. On Colab this cell also flushes Google Drive and unmounts it.

# %%
from helpers.run import adapter_record, finish_stage

finish_stage(run, "05", config.run_id, **adapter_record(run, ADAPTER));

# %% [markdown]
# Next: **06** scores both transcripts.
