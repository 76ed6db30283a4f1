"""Benchmark 2: Common Voice MP3 -> training-ready dataset on disk, ours vs the recipe's way.

The recipe's way (the blog's `prepare_dataset`): a per-example `datasets.map` that decodes
the clip (soundfile: `datasets`' own Audio casting needs torchcodec, which does not load
here), resamples 48 -> 16 kHz with `librosa.resample` at its default `res_type`, runs the
Whisper feature extractor on that one clip and tokenizes the sentence; features stored as
float32 (nested lists, as `datasets` infers them); then `save_to_disk`.

Ours (helpers.data.prepare's path): load_corpus, filter_corpus (decode-checks every clip),
prepare_features (batched map, soxr resampling, the STFT of the frames that see audio only
and only those stored: helpers.data.features.mel_frames; `num_proc` workers), save_to_disk.

Both run on the same clips with a warm file cache; the saved features are compared (ours
rebuilt to 80 x 3000 by helpers.data.features.full_features, as the collator does; max absolute
difference, must be under FEATURE_TOLERANCE) and the labels must be equal.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import CORPUS, folder_bytes, loadavg, write_result  # noqa: E402

FEATURE_TOLERANCE = 1e-4  # log-mel values lie in about [-1, 2]; 1e-4 is float32 noise


def recipe_example(example: dict, feature_extractor, tokenizer) -> dict:
    """The recipe's per-example map function: decode, librosa resample, extract, tokenize."""
    import librosa
    import soundfile as sf

    audio, rate = sf.read(example["audio"], dtype="float32", always_2d=True)
    audio = librosa.resample(audio.mean(axis=1), orig_sr=rate, target_sr=16_000)
    example["input_features"] = feature_extractor(audio, sampling_rate=16_000).input_features[0]
    example["labels"] = tokenizer(example["sentence"]).input_ids
    return example


def recipe_way(rows, processor, out_dir: Path) -> dict:
    """Run the recipe's way into out_dir; returns seconds per stage."""
    started = time.perf_counter()
    prepared = rows.map(recipe_example, remove_columns=rows.column_names,
                        fn_kwargs={"feature_extractor": processor.feature_extractor,
                                   "tokenizer": processor.tokenizer}, desc="recipe map")
    mapped = time.perf_counter()
    prepared.save_to_disk(str(out_dir))
    done = time.perf_counter()
    return {"map": round(mapped - started, 2), "save": round(done - mapped, 2),
            "total": round(done - started, 2)}


def our_way(rows, processor, out_dir: Path, num_proc: int | None) -> dict:
    """Run our path (filter, batched features, save) into out_dir; returns seconds per stage."""
    from helpers.data.filter import filter_corpus
    from helpers.data.features import prepare_features
    from helpers.data.prepare import save_dataset_atomic

    started = time.perf_counter()
    kept, report = filter_corpus(rows, processor.tokenizer)
    if report["kept"] != len(rows):
        raise RuntimeError(f"filter_corpus dropped clips of the benchmark set: {report['dropped']}")
    filtered = time.perf_counter()
    features = prepare_features(kept, processor, batch_size=16, num_proc=num_proc)
    mapped = time.perf_counter()
    save_dataset_atomic(features, out_dir)
    done = time.perf_counter()
    return {"filter": round(filtered - started, 2), "map": round(mapped - filtered, 2),
            "save": round(done - mapped, 2), "total": round(done - started, 2)}


def compare_saved(ours: Path, recipe: Path) -> dict:
    """Max |feature difference| and label equality between the two saved datasets."""
    from datasets import load_from_disk

    from helpers.data.features import full_features

    a, b = load_from_disk(str(ours)), load_from_disk(str(recipe))
    worst = 0.0
    for row_a, row_b in zip(a.with_format("numpy"), b.with_format("numpy")):
        fa = full_features(row_a["mel_frames"], row_a["mel_pad"])
        fb = np.asarray(np.stack(row_b["input_features"]), dtype=np.float32)
        worst = max(worst, float(np.abs(fa - fb).max()))
    return {"max_abs_feature_difference": worst, "labels_equal": a["labels"] == b["labels"],
            "rows": [len(a), len(b)]}


def resampler_difference(paths: list[str], processor) -> dict:
    """How far soxr HQ (ours) and librosa's default resampler are apart, in audio and features."""
    import inspect

    import librosa
    import soundfile as sf
    import soxr

    res_type = inspect.signature(librosa.resample).parameters["res_type"].default
    audio_diff, feature_diff = 0.0, 0.0
    for path in paths:
        audio, rate = sf.read(path, dtype="float32")
        ours = soxr.resample(audio, rate, 16_000, quality="HQ")
        theirs = librosa.resample(audio, orig_sr=rate, target_sr=16_000)
        n = min(len(ours), len(theirs))
        audio_diff = max(audio_diff, float(np.abs(ours[:n] - theirs[:n]).max()))
        fe = processor.feature_extractor
        f1, f2 = (fe(x, sampling_rate=16_000).input_features[0] for x in (ours, theirs))
        feature_diff = max(feature_diff, float(np.abs(f1 - f2).max()))
    return {"librosa_version": librosa.__version__, "librosa_default_res_type": res_type,
            "ours": "soxr.resample quality=HQ", "clips": len(paths),
            "max_abs_audio_difference": audio_diff, "max_abs_feature_difference": feature_diff}


def warm_cache(paths: list[str]) -> None:
    """Read every clip once so that neither way pays for a cold disk."""
    for path in paths:
        Path(path).read_bytes()


def run(out_dir: Path, clips: int, num_proc: int | None = 2) -> Path:
    """Benchmark 2 on the first `clips` train clips -> out_dir/data_preparation.json."""
    from helpers.data.corpora import load_corpus
    from helpers.model.load import load_processor

    started, load = time.perf_counter(), loadavg()
    processor = load_processor("embedded")
    rows = load_corpus(str(CORPUS), split="train").select(range(clips))
    warm_cache(list(rows["audio"]))
    tmp = Path(tempfile.mkdtemp(prefix="bench-prep-"))
    try:
        recipe = recipe_way(rows, processor, tmp / "recipe")
        ours = our_way(rows, processor, tmp / "ours", num_proc)
        check = compare_saved(tmp / "ours", tmp / "recipe")
        sizes = {"recipe": folder_bytes(tmp / "recipe"), "ours": folder_bytes(tmp / "ours")}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not check["labels_equal"] or check["max_abs_feature_difference"] > FEATURE_TOLERANCE:
        raise AssertionError(f"our features differ from the recipe's: {check}")
    results = {way: {"seconds": secs, "clips": clips, "clips_per_second":
                     round(clips / secs["total"], 2), "bytes_on_disk": sizes[way]}
               for way, secs in (("recipe", recipe), ("ours", ours))}
    results["equality"] = {**check, "tolerance": FEATURE_TOLERANCE}
    results["resamplers"] = resampler_difference(list(rows["audio"])[:4], processor)
    settings = {"corpus": "data/cv-mini/en train (48 kHz MP3)", "clips": clips,
                "ours": f"filter_corpus + prepare_features(batch_size=16, num_proc={num_proc}): "
                        "STFT of the frames that see audio, only those stored (mel_frames)",
                "recipe": "per-example datasets.map, soundfile + librosa.resample default, "
                          "feature extractor per clip, num_proc=None"}
    return write_result(out_dir, "data_preparation", settings, results, started, load)
