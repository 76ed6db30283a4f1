"""PACK: consecutive training clips joined into 30 s windows (helpers.data.packing), through
notebook 01's features, the stream, the collator, training, resume and DDP."""
import json

import numpy as np
import pytest
from datasets import Dataset, load_from_disk

from fixtures.data_files import tone, write_audio
from fixtures.tolerances import assert_log_mel_close
from helpers.audio import SAMPLE_RATE, load_audio
from helpers.config import config_from_dict, make_config, start_run
from helpers.data.features import full_features
from helpers.data.packing import (COUNT_COLUMN, MAX_LABEL_TOKENS, PAUSE_SECONDS, describe_training_data,
                                  join_window, pack_rows, packing_summary, plan_windows,
                                  prepare_packed_features, window_rng)
from helpers.data.streaming import stream_features
from helpers.train.collator import CLIP_COUNT_KEY, SpeechSeq2SeqCollator

pytestmark = pytest.mark.unit

LEAD, TAIL = 0.4, 0.5          # silence before and after each clip's speech (a tone), seconds
SPEECH = [3.0 + 0.5 * i for i in range(8)]   # speech lengths: clips of 3.9 to 7.4 s
SENTENCES = [f"Sentence number {word} is here." for word in
             ("one", "two", "three", "four", "five", "six", "seven", "eight")]


@pytest.fixture(scope="module")
def processor():
    from helpers.model.load import load_processor

    return load_processor("embedded")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Eight 48 kHz WAV clips: LEAD s of silence, SPEECH[i] s of a tone, TAIL s of silence."""
    folder = tmp_path_factory.mktemp("clips")
    paths = [write_audio(folder / f"c{i}.wav", np.concatenate([
        np.zeros(int(LEAD * 48_000), np.float32), tone(48_000, speech),
        np.zeros(int(TAIL * 48_000), np.float32)]), 48_000) for i, speech in enumerate(SPEECH)]
    return Dataset.from_dict({"audio": [str(p) for p in paths], "sentence": SENTENCES,
                              "duration": [LEAD + s + TAIL for s in SPEECH]})


def tokens(processor, ids):
    return processor.tokenizer.convert_ids_to_tokens(ids)


def seconds_of(token: str) -> float:
    return float(token.strip("<|>"))


# ---------------------------------------------------------------- the plan


def test_plan_keeps_the_order_and_fills_30_s():
    plan = plan_windows([4.0] * 10, [20] * 10, [0.5] * 10, overhead=4)
    assert sum(plan, []) == list(range(10))          # every clip once, in order
    assert [len(w) for w in plan] == [6, 4]           # 6 x 4 + 5 x 0.5 = 26.5 s; a 7th: 31 s


def test_plan_closes_a_window_at_the_decoders_448_positions():
    plan = plan_windows([1.0] * 5, [100] * 5, [0.2] * 5, overhead=4)
    assert [len(w) for w in plan] == [4, 1]           # 4 + 4 x 100 = 404 tokens; a 5th: 504


def test_a_clip_is_never_cut_nor_dropped():
    assert plan_windows([29.0, 29.5, 2.0, 31.0], [10] * 4, [0.5] * 4, overhead=4) == [[0], [1], [2], [3]]
    with pytest.raises(ValueError, match=r"c\.wav.*more than a 30 s window.*filter_corpus"):
        join_window([np.zeros(31 * SAMPLE_RATE, np.float32)], [0.0], np.random.default_rng(0), ["c.wav"])


def test_pauses_shrink_when_decoded_clips_come_out_longer_than_planned():
    arrays = [np.ones(14 * SAMPLE_RATE, np.float32), np.ones(15 * SAMPLE_RATE + 8000, np.float32)]
    audio, offsets = join_window(arrays, [0.0, 1.0], np.random.default_rng(0), ["a", "b"])
    assert len(audio) == 30 * SAMPLE_RATE and offsets == [0, 14 * SAMPLE_RATE + 8000]


# ---------------------------------------------------------------- stored features


@pytest.fixture(scope="module")
def packed(clips, processor):
    return prepare_packed_features(clips, processor, timestamp_share=1.0, seed=3)


def expected_offsets(clips, tokenizer, seed: int, window: list[str]) -> list[float]:
    """Seconds at which each clip of `window` starts: pack_rows' pauses before each."""
    row = next(r for r in pack_rows(clips, tokenizer, seed) if r["clips"] == window)
    lengths = {path: LEAD + s + TAIL for path, s in zip(clips["audio"], SPEECH)}
    offsets, position = [], 0.0
    for path, pause in zip(row["clips"], row["pauses"]):
        position += pause
        offsets.append(position)
        position += lengths[path]
    return offsets


def test_every_clip_lands_in_one_window_of_at_most_30_s(packed, clips):
    assert sorted(sum(packed["clips"], [])) == sorted(clips["audio"])
    assert len(packed) == 2 and packed[COUNT_COLUMN] == [len(c) for c in packed["clips"]]
    assert all(d <= 30.0 for d in packed["duration"])
    summary = packing_summary(packed)
    assert summary["clips"] == 8 and summary["windows"] == 2 and summary["timestamped_windows"] == 2


def test_timestamped_labels_make_each_clip_a_segment_at_its_speech(packed, clips, processor):
    for row in packed:
        names = tokens(processor, row["labels"])
        assert names[0] == "<|startoftranscript|>" and names[-1] == "<|endoftext|>"
        stamps = [i for i, name in enumerate(names) if name.startswith("<|") and name[2].isdigit()]
        assert len(stamps) == 2 * row[COUNT_COLUMN]
        offsets = expected_offsets(clips, processor.tokenizer, 3, row["clips"])
        for k, (path, offset) in enumerate(zip(row["clips"], offsets)):
            speech = SPEECH[clips["audio"].index(path)]
            start, end = (seconds_of(names[i]) for i in stamps[2 * k: 2 * k + 2])
            assert abs(start - (offset + LEAD)) <= 0.04 and abs(end - (offset + LEAD + speech)) <= 0.04
            text = processor.tokenizer.decode(row["labels"][stamps[2 * k] + 1: stamps[2 * k + 1]])
            assert text == " " + SENTENCES[clips["audio"].index(path)]   # Whisper writes segments so


def test_stored_features_are_the_extractors_of_the_joined_audio(packed, clips, processor):
    row = packed[1]
    plan = next(r for r in pack_rows(clips, processor.tokenizer, 3) if r["clips"] == row["clips"])
    audio, _ = join_window([load_audio(p) for p in row["clips"]], plan["pauses"],
                           window_rng(3, row["clips"][0]), row["clips"])
    assert row["duration"] == pytest.approx(len(audio) / SAMPLE_RATE)
    direct = processor.feature_extractor(audio, sampling_rate=SAMPLE_RATE,
                                         return_tensors="np").input_features[0]
    assert_log_mel_close(full_features(row["mel_frames"], row["mel_pad"]), direct)


def test_share_0_joins_the_texts_under_the_recipes_prefix(clips, processor):
    plain = prepare_packed_features(clips, processor, timestamp_share=0.0, seed=3)
    assert plain["timestamps"] == [False, False]
    for row in plain:
        joined = " ".join(SENTENCES[clips["audio"].index(p)] for p in row["clips"])
        assert row["sentence"] == joined
        assert row["labels"] == processor.tokenizer(joined).input_ids   # <|notimestamps|> and all


def test_share_half_labels_half_the_windows_with_timestamps(clips, processor):
    out = prepare_packed_features(clips, processor, timestamp_share=0.5, seed=1)
    no_times = processor.tokenizer.convert_tokens_to_ids("<|notimestamps|>")
    assert sum(out["timestamps"]) == 1 and len(out) == 2
    assert [no_times not in ids for ids in out["labels"]] == out["timestamps"]


def test_labels_stay_within_448_tokens(tmp_path, processor):
    from helpers.data.packing import clip_token_counts

    long_sentence = " ".join(["extraordinarily"] * 120)
    per_clip = clip_token_counts(processor.tokenizer, [long_sentence])[0]
    assert 100 < per_clip < 200                                       # two or three clips a window
    paths = [write_audio(tmp_path / f"s{i}.wav", tone(16_000, 1.0), 16_000) for i in range(12)]
    rows = Dataset.from_dict({"audio": [str(p) for p in paths], "sentence": [long_sentence] * 12,
                              "duration": [1.0] * 12})
    out = prepare_packed_features(rows, processor, timestamp_share=1.0)
    assert sum(out[COUNT_COLUMN]) == 12 and max(out["duration"]) < 10   # 30 s closed none of them
    assert all(len(ids) <= MAX_LABEL_TOKENS < len(ids) + per_clip for ids in out["labels"][:-1])


def test_multilingual_windows_keep_language_and_task(tmp_path, clips):
    from fixtures.tiny_runs import tiny_multilingual_dir
    from helpers.model.load import load_processor

    ml = load_processor(str(tiny_multilingual_dir(tmp_path / "ml")), language="hindi")
    out = prepare_packed_features(clips.select(range(3)), ml, timestamp_share=1.0, seed=3)
    names = ml.tokenizer.convert_ids_to_tokens(out[0]["labels"])
    assert names[:3] == ["<|startoftranscript|>", "<|hi|>", "<|transcribe|>"]
    assert names[3].startswith("<|") and names[3][2].isdigit() and "<|notimestamps|>" not in names


def test_replay_clips_get_windows_of_their_own_with_their_language_token(tmp_path, clips):
    """Replay rows (LANGUAGE_COLUMN "english" among Hindi rows) never share a window with
    the run's clips: every clip lands once, each window holds one language, and a replay
    window's labels carry <|en|> where the run's say <|hi|>, stored and streamed alike."""
    from fixtures.tiny_runs import tiny_multilingual_dir
    from helpers.data.replay import LANGUAGE_COLUMN
    from helpers.model.load import load_processor

    ml = load_processor(str(tiny_multilingual_dir(tmp_path / "ml")), language="hindi")
    languages = ["", "english", "", "", "english", "", "", ""]
    rows = clips.add_column(LANGUAGE_COLUMN, languages)
    english = {path for path, language in zip(rows["audio"], languages) if language}
    stored = prepare_packed_features(rows, ml, timestamp_share=0.5, seed=5)
    streamed = list(stream_features(rows, ml, seed=5, shuffle_buffer=8, timestamp_share=0.5, pack=True))
    for windows in (list(stored), streamed):
        assert sorted(sum((w["clips"] for w in windows), [])) == sorted(rows["audio"])
        for window in windows:
            replayed = {path in english for path in window["clips"]}
            assert len(replayed) == 1, window["clips"]
            token = ml.tokenizer.convert_ids_to_tokens(window["labels"][1])
            assert token == ("<|en|>" if replayed == {True} else "<|hi|>")


# ---------------------------------------------------------------- stream, collator, settings


def test_stream_packs_every_clip_once(clips, processor):
    stream = stream_features(clips, processor, seed=2, shuffle_buffer=8, timestamp_share=1.0, pack=True)
    windows = list(stream)
    assert sorted(sum((w["clips"] for w in windows), [])) == sorted(clips["audio"])
    assert all(w["timestamps"] and w["duration"] <= 30.0 for w in windows)
    assert all(np.shape(w["mel_frames"])[1] == 80 for w in windows)


@pytest.mark.parametrize("mels", [80, 128])
def test_collator_rebuilds_packed_windows_and_counts_their_clips(packed, processor, mels):
    from transformers import WhisperFeatureExtractor, WhisperProcessor

    extractor = WhisperFeatureExtractor(feature_size=mels)
    proc = WhisperProcessor(feature_extractor=extractor, tokenizer=processor.tokenizer)
    rows = [dict(row) for row in packed]
    if mels == 128:   # the same windows, featurized by a 128-bin extractor
        rows = [dict(row) for row in prepare_packed_features(
            Dataset.from_dict({"audio": sum(packed["clips"], []), "sentence": ["a b"] * 8}), proc, seed=3)]
    sot = processor.tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
    batch = SpeechSeq2SeqCollator(proc, sot, count_clips=True)(rows)
    assert batch["input_features"].shape == (2, mels, 3000)
    assert batch[CLIP_COUNT_KEY] == 8 and batch["labels"][0, 0] != sot
    assert CLIP_COUNT_KEY not in SpeechSeq2SeqCollator(proc, sot)(rows)      # model(**batch) works
    one_clip = [{"input_features": np.zeros((mels, 3000), np.float32), "labels": [sot, 1, 2]}] * 3
    assert SpeechSeq2SeqCollator(proc, sot, count_clips=True)(one_clip)[CLIP_COUNT_KEY] == 3


def test_pack_setting_round_trips_and_steps_are_described(tmp_path, packed):
    run, config = start_run("p", "embedded", tmp_path, PACK=True, batch_size=2)
    assert config.pack and config_from_dict(run.read_json("config.json", "test")) == config
    line = describe_training_data(packed, config)
    assert "8 clips packed into 2 windows" in line and "an epoch (each clip once) is 1 steps" in line
    assert "a step holds 2 clips" in describe_training_data(Dataset.from_dict({"labels": [[1], [2]]}),
                                                            make_config("embedded", batch_size=2))


def test_pauses_are_short_and_seeded(clips, processor):
    assert 0 < PAUSE_SECONDS[0] < PAUSE_SECONDS[1] <= 1.0
    first, again, other = (pack_rows(clips, processor.tokenizer, seed) for seed in (3, 3, 4))
    assert first.to_dict() == again.to_dict() and first.to_dict() != other.to_dict()
    assert all(PAUSE_SECONDS[0] <= p <= PAUSE_SECONDS[1] for row in first for p in row["pauses"][1:])


# ---------------------------------------------------------------- training, resume, DDP


@pytest.fixture(scope="module")
def packed_run(tmp_path_factory):
    """A tiny random Whisper (fp32) with features/train packed from 14 cv-mini clips."""
    from fixtures.tiny_runs import prepared_run, tiny_model_dir

    root = tmp_path_factory.mktemp("packed")
    model = tiny_model_dir(root / "tiny-whisper")
    run, config = prepared_run(root, "whole", train_clips=14, test_clips=2, model=str(model),
                               precision="fp32", pack=True, timestamp_share=0.5, batch_size=1,
                               save_steps=1, logging_steps=1, warmup_steps=0, eval_steps=None)
    windows = load_from_disk(str(run.features_dir("train")))
    return run, config, windows


@pytest.mark.integration
def test_an_epoch_is_one_pass_over_the_clips_and_resume_counts_on(packed_run, tmp_path):
    import shutil
    from dataclasses import replace

    from helpers.run import RunDir
    from helpers.train.trainer import run_training

    run, config, windows = packed_run
    config = replace(config, max_steps=len(windows))     # batch 1: one epoch
    shutil.copytree(run.path, tmp_path / "cut")
    whole = run_training(config, run)
    assert whole["clips_seen"] == 14 and whole["clips_per_second"] > 0
    log = run.read_json("train_log.json", "04")
    assert log[-1]["epoch"] == 1.0 and log[-1]["clips_seen"] == 14
    cut = RunDir("cut", tmp_path)
    run_training(replace(config, max_steps=1), cut)                # stops after its first window
    resumed = run_training(config, cut, resume=True)
    assert resumed["resumed_from_step"] == 1 and resumed["train_steps"] == len(windows)
    assert ([e["clips_seen"] for e in cut.read_json("train_log.json", "04")]
            == [e["clips_seen"] for e in log])


@pytest.mark.integration
def test_two_processes_count_the_clips_of_both(packed_run):
    from test_train_script import free_port, launch, printed_metrics

    run, _, windows = packed_run
    counts = windows[COUNT_COLUMN]
    done = launch("torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
                  "-m", "helpers.train", "--config", str(run.path / "config.json"),
                  "--set", "max_steps=1")
    (metrics,) = printed_metrics(done)
    pairs = {a + b for i, a in enumerate(counts) for j, b in enumerate(counts) if i != j}
    assert metrics["clips_seen"] in pairs and metrics["clips_seen"] > max(counts)
    assert json.loads((run.path / "config.json").read_text())["pack"] is True
