"""A long-form test set built from a corpus's clips (`python -m helpers.long_form build`).

Recordings of 1 to 3 minutes made by joining a split's clips with pauses of 0.3 to 2.5 s
of very quiet noise, with the reference text and the true start and end of each sentence
(the clip's offset plus where its speech begins and ends, found from its energy by
`helpers.audio.speech_bounds`). Deterministic for a given seed. The set is a folder of
16 kHz WAV files and a manifest, `long_form.jsonl`.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from helpers.audio import SAMPLE_RATE, WINDOW_SAMPLES, AudioError, load_audio, speech_bounds

MANIFEST = "long_form.jsonl"


# build_long_form_set: pauses between sentences, and the noise they are filled with
PAUSE_SECONDS = (0.3, 2.5)
PAUSE_NOISE_RMS = 10 ** (-70 / 20)  # -70 dBFS: room tone far below speech, not digital zero


# --------------------------------------------------------------------- long-form set
def _clip_stream(clips: list[dict], rng: np.random.Generator,
                 skipped: list[str]) -> Iterator[tuple[dict, np.ndarray, tuple[float, float]]]:
    """Yield (clip, 16 kHz audio, speech bounds) forever, in a seeded shuffled order that is
    drawn again each time every clip was used; unusable clips are skipped (and named in
    `skipped`) once. Loads lazily, so a large corpus costs only the clips drawn."""
    usable = list(clips)
    while usable:
        bad = set()
        for index in rng.permutation(len(usable)):
            clip = usable[index]
            try:
                audio = load_audio(clip["path"])
                if len(audio) > WINDOW_SAMPLES:
                    raise ValueError(f"{len(audio) / SAMPLE_RATE:.1f} s, longer than a clip")
                bounds = speech_bounds(audio)
            except (AudioError, ValueError) as error:
                skipped.append(f"{clip['path']}: {error}")
                bad.add(int(index))
                continue
            yield clip, audio, bounds
        usable = [clip for index, clip in enumerate(usable) if index not in bad]


def quiet_pause(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """`seconds` of very quiet Gaussian noise (PAUSE_NOISE_RMS), float32 at 16 kHz."""
    return (rng.standard_normal(int(round(seconds * SAMPLE_RATE))) * PAUSE_NOISE_RMS).astype(np.float32)


def _join_one(stream, rng, min_seconds: float, max_seconds: float) -> tuple[np.ndarray, list[dict]]:
    """One recording: pause, clip, pause, clip, ... pause, until a seeded target length in
    [min_seconds, max_seconds]; the last pause is stretched to reach min_seconds.
    Returns (16 kHz audio, sentences [{"start", "end" (true speech times, s), "text",
    "clip" (source path)}])."""
    target = rng.uniform(min_seconds, max_seconds)
    pieces = [quiet_pause(rng, rng.uniform(*PAUSE_SECONDS))]
    length, sentences = len(pieces[0]), []
    while length < target * SAMPLE_RATE:
        clip, audio, (start, end) = next(stream)
        pause = quiet_pause(rng, rng.uniform(*PAUSE_SECONDS))
        if length + len(audio) + len(pause) > max_seconds * SAMPLE_RATE:
            break
        offset = length / SAMPLE_RATE
        sentences.append({"start": round(offset + start, 3), "end": round(offset + end, 3),
                          "text": clip["sentence"], "clip": str(clip["path"])})
        pieces += [audio, pause]
        length += len(audio) + len(pause)
    if length < min_seconds * SAMPLE_RATE:
        pieces.append(quiet_pause(rng, min_seconds - length / SAMPLE_RATE))
    return np.concatenate(pieces), sentences


def build_long_form_from_clips(clips: list[dict], out_dir, count: int = 3,
                               min_seconds: float = 60, max_seconds: float = 180,
                               seed: int = 0, prefix: str = "long_form") -> list[dict]:
    """Join clips ({"path", "sentence"}) into `count` recordings; see `build_long_form_set`.

    Clips may be used in more than one recording when there are too few (each pass over
    them is a new shuffle). Unusable clips (unreadable, silent, over 30 s) are skipped and
    counted on stderr. Raises ValueError when none is usable or the bounds leave no room.
    """
    if not 0 < min_seconds <= max_seconds:
        raise ValueError(f"need 0 < min_seconds <= max_seconds, got {min_seconds}, {max_seconds}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng, skipped = np.random.default_rng(seed), []
    stream = _clip_stream(clips, rng, skipped)
    recordings = []
    for number in range(count):
        try:
            audio, sentences = _join_one(stream, rng, min_seconds, max_seconds)
        except StopIteration:
            raise ValueError(f"none of the {len(clips)} clips is usable: "
                             + "; ".join(skipped[:3])) from None
        if not sentences:
            raise ValueError(f"max_seconds={max_seconds} leaves no room for a clip and its pauses")
        path = out_dir / f"{prefix}_{number:02d}.wav"
        sf.write(str(path), audio, SAMPLE_RATE, subtype="PCM_16")
        recordings.append({"path": str(path.resolve()), "duration": round(len(audio) / SAMPLE_RATE, 3),
                           "text": " ".join(s["text"] for s in sentences), "sentences": sentences})
    _write_manifest(out_dir / MANIFEST, recordings)
    if skipped:
        print(f"long-form set: {len(skipped)} clip(s) skipped: " + "; ".join(skipped),
              file=sys.stderr)
    return recordings


def build_long_form_set(corpus_dir, split: str = "test", out_dir=None, count: int = 3,
                        min_seconds: float = 60, max_seconds: float = 180, seed: int = 0) -> list[dict]:
    """Build the long-form test set from a corpus split; returns its recordings.

    corpus_dir: anything `helpers.data.corpora.load_corpus` reads (a Common Voice locale folder
    such as data/cv-mini/en, ...). Writes `out_dir/long_form_NN.wav` (16 kHz mono, 16-bit)
    and `out_dir/long_form.jsonl`, one line per recording: {"path" (absolute), "duration"
    (s), "text" (reference: the sentences joined by spaces), "sentences": [{"start", "end"
    (true speech start/end in the recording, s), "text", "clip" (source)}]}. The same
    arguments give the same files.
    """
    from helpers.data.corpora import load_corpus

    if out_dir is None:
        raise ValueError("build_long_form_set needs out_dir, the folder to write the recordings to")
    rows = load_corpus(corpus_dir, split=split)
    clips = [{"path": path, "sentence": sentence}
             for path, sentence in zip(rows["audio"], rows["sentence"])
             if sentence and sentence.strip()]
    return build_long_form_from_clips(clips, out_dir, count, min_seconds, max_seconds, seed)


def _write_manifest(path: Path, recordings: list[dict]) -> None:
    """Write recordings as JSON lines (UTF-8)."""
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recordings),
                    encoding="utf-8")


def read_long_form_set(out_dir) -> list[dict]:
    """The recordings of a set written by `build_long_form_set` (its long_form.jsonl)."""
    manifest = Path(out_dir) / MANIFEST
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: no long-form set there; build it with "
                                "helpers.data.long_form.build_long_form_set (or `python -m "
                                "helpers.long_form build DIR`).")
    return [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines() if line]
