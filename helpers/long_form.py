"""Long recordings: Whisper's sequential long-form decoding, streamed; and a long-form test
set built from a corpus's clips.

Transcription (`transcribe_long`). Whisper hears 30 s at a time. OpenAI's decoder and
transformers' long-form `generate` (generation_whisper.py, 5.24) both decode a 30 s window
with timestamp tokens, keep the segments the model closed (a text between two timestamps),
and move the window to the end of the last closed segment, so a sentence cut by the window's
edge is decoded again, whole, in the next window. When the model closes no segment in a
window (no timestamp after the text, or a single timestamp at the end: "no speech after
this"), the whole window is kept as one segment and the next window starts where this one
ended. We run that same loop, but over the *file* rather than over a log-mel of the whole
recording:

- the file is read forward in blocks with soundfile and resampled as a stream
  (`soxr.ResampleStream`), keeping at most one 30 s window of 16 kHz samples: memory does
  not grow with the length of the recording (a 2 h file never sits in memory as audio or
  as log-mel; transformers' own path needs both: 460 MB of audio and 230 MB of log-mel for
  2 h before it decodes anything);
- each window's log-mel is computed alone by the processor's feature extractor, exactly as
  for a short clip (a last, shorter window is padded with silence *audio*, as OpenAI's
  decoder does; transformers pads its log-mel with zeros instead), so a recording's
  loudest moment does not set the floor of every window's log-mel (Whisper clamps log-mel
  8 units below its maximum, per input);
- each window is decoded by `helpers.transcribe.generate_ids` with timestamps, so it gets
  the project's decoding rules (Whisper's temperature fallback against loops, seeded; the
  128-token cap raised to `LONG_FORM_MAX_NEW_TOKENS`, OpenAI's 224, since a 30 s window
  holds more words than a clip) and transformers parses the segments
  (`return_segments=True`; `force_unique_generate_call=True` keeps it to one decoding per
  window, as the loop over windows is ours).
Like transformers' default (and unlike OpenAI's), a window is not conditioned on the text
of the previous one (`condition_on_prev_tokens` off): a fine-tuned model that loops once
would otherwise feed the loop forward. Segment times are the model's timestamps (0.02 s
steps) plus the window's start.

Test set (`build_long_form_set`): recordings of 1 to 3 minutes made by joining a split's
clips with pauses of 0.3 to 2.5 s of very quiet noise, with the reference text and the true
start and end of each sentence (the clip's offset plus where its speech begins and ends,
found from its energy by `speech_bounds`). Deterministic for a given seed.

CLI: `python -m helpers.long_form build OUT_DIR [--corpus DIR] [--split test] [--count N]
[--min-seconds S] [--max-seconds S] [--seed N]` writes the set and prints its manifest.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import soundfile as sf
import soxr

from helpers.audio import SAMPLE_RATE, SILENCE_PEAK, AudioError, audio_duration, load_audio

WINDOW_SECONDS = 30  # Whisper's input window
WINDOW_SAMPLES = WINDOW_SECONDS * SAMPLE_RATE
TIME_PRECISION = 0.02  # seconds per timestamp token (<|0.00|> ... <|30.00|>)
LONG_FORM_MAX_NEW_TOKENS = 224  # OpenAI's sample_len for one window (n_text_ctx // 2)
READ_BLOCK_FRAMES = 65_536  # frames read from the file at a time (1.4 s at 48 kHz)
MANIFEST = "long_form.jsonl"

# speech_bounds: 20 ms frames every 10 ms; a frame holds sound when its energy (averaged
# over 30 ms against clicks) is within SPEECH_RANGE_DB of the loudest frame and
# NOISE_MARGIN_DB above the noise floor (the 10th percentile of the frames' energies).
FRAME_SECONDS, HOP_SECONDS = 0.02, 0.01
SPEECH_RANGE_DB = 40.0
NOISE_MARGIN_DB = 12.0

# build_long_form_set: pauses between sentences, and the noise they are filled with
PAUSE_SECONDS = (0.3, 2.5)
PAUSE_NOISE_RMS = 10 ** (-70 / 20)  # -70 dBFS: room tone far below speech, not digital zero


# ------------------------------------------------------------------------ speech bounds
def speech_bounds(audio: np.ndarray, sampling_rate: int = SAMPLE_RATE) -> tuple[float, float]:
    """(start_s, end_s) of the sound in a clip: where its speech begins and ends, from its
    energy (see SPEECH_RANGE_DB, NOISE_MARGIN_DB). Raises ValueError when the clip is
    silent (loudest sample under -60 dBFS, `helpers.audio.SILENCE_PEAK`)."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if audio.size == 0 or float(np.abs(audio).max()) < SILENCE_PEAK:
        raise ValueError("no sound in this audio (loudest sample under -60 dBFS); "
                         "speech_bounds needs a clip with speech in it")
    frame, hop = int(FRAME_SECONDS * sampling_rate), int(HOP_SECONDS * sampling_rate)
    padded = np.pad(audio, (0, max(0, frame - audio.size)))
    energy = (np.lib.stride_tricks.sliding_window_view(padded, frame)[::hop] ** 2).mean(axis=1)
    energy = np.convolve(energy, np.ones(3) / 3, mode="same")
    level = 10 * np.log10(energy + 1e-12)
    threshold = max(level.max() - SPEECH_RANGE_DB, np.percentile(level, 10) + NOISE_MARGIN_DB)
    active = np.flatnonzero(level >= min(threshold, level.max()))
    start = active[0] * hop / sampling_rate
    end = min((active[-1] * hop + frame) / sampling_rate, audio.size / sampling_rate)
    return round(float(start), 3), round(float(end), 3)


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


def _pause(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """`seconds` of very quiet Gaussian noise (PAUSE_NOISE_RMS), float32 at 16 kHz."""
    return (rng.standard_normal(int(round(seconds * SAMPLE_RATE))) * PAUSE_NOISE_RMS).astype(np.float32)


def _join_one(stream, rng, min_seconds: float, max_seconds: float) -> tuple[np.ndarray, list[dict]]:
    """One recording: pause, clip, pause, clip, ... pause, until a seeded target length in
    [min_seconds, max_seconds]; the last pause is stretched to reach min_seconds.
    Returns (16 kHz audio, sentences [{"start", "end" (true speech times, s), "text",
    "clip" (source path)}])."""
    target = rng.uniform(min_seconds, max_seconds)
    pieces = [_pause(rng, rng.uniform(*PAUSE_SECONDS))]
    length, sentences = len(pieces[0]), []
    while length < target * SAMPLE_RATE:
        clip, audio, (start, end) = next(stream)
        pause = _pause(rng, rng.uniform(*PAUSE_SECONDS))
        if length + len(audio) + len(pause) > max_seconds * SAMPLE_RATE:
            break
        offset = length / SAMPLE_RATE
        sentences.append({"start": round(offset + start, 3), "end": round(offset + end, 3),
                          "text": clip["sentence"], "clip": str(clip["path"])})
        pieces += [audio, pause]
        length += len(audio) + len(pause)
    if length < min_seconds * SAMPLE_RATE:
        pieces.append(_pause(rng, min_seconds - length / SAMPLE_RATE))
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

    corpus_dir: anything `helpers.data.load_corpus` reads (a Common Voice locale folder
    such as data/cv-mini/en, ...). Writes `out_dir/long_form_NN.wav` (16 kHz mono, 16-bit)
    and `out_dir/long_form.jsonl`, one line per recording: {"path" (absolute), "duration"
    (s), "text" (reference: the sentences joined by spaces), "sentences": [{"start", "end"
    (true speech start/end in the recording, s), "text", "clip" (source)}]}. The same
    arguments give the same files.
    """
    from helpers.data import load_corpus

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
                                "helpers.long_form.build_long_form_set (or `python -m "
                                "helpers.long_form build DIR`).")
    return [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines() if line]


def time_errors(sentences: list[dict], segments: list[dict]) -> tuple[list[float], list[float]]:
    """How far the predicted segment times lie from the true sentence times, in seconds.

    For each true sentence ({"start", "end"}): the distance from its start to the nearest
    predicted segment start, and from its end to the nearest predicted segment end.
    Whisper ends a segment where the next begins, often in the pause, so end errors
    include part of the pause. With no segment at all, errors are measured from 0 s.
    Returns (start errors, end errors), one per sentence.
    """
    starts = np.array([s["start"] for s in segments] or [0.0])
    ends = np.array([s["end"] for s in segments] or [0.0])
    return ([float(np.abs(starts - s["start"]).min()) for s in sentences],
            [float(np.abs(ends - s["end"]).min()) for s in sentences])


def segments_table(recording: dict, prediction: dict):
    """Whisper's segments beside the true sentences, as a DataFrame: per predicted segment
    its start, end and text, and the true start, end and text of the sentence whose start
    is nearest (times in seconds)."""
    import pandas as pd

    sentences = recording["sentences"]
    rows = []
    for segment in prediction["segments"]:
        nearest = min(sentences, key=lambda s: abs(s["start"] - segment["start"]))
        rows.append({"start": segment["start"], "end": segment["end"], "text": segment["text"],
                     "true start": nearest["start"], "true end": nearest["end"],
                     "reference": nearest["text"]})
    return pd.DataFrame(rows, columns=["start", "end", "text", "true start", "true end", "reference"])


# --------------------------------------------------------------- streaming the audio
class WindowReader:
    """Read an audio file forward as 16 kHz mono windows, holding at most one window.

    `window(start)` returns the samples [start, start + WINDOW_SAMPLES) (fewer at the end
    of the file, empty past it); `start` may only grow between calls. Blocks are read with
    soundfile and resampled by a soxr stream, so no more than one window plus one block is
    ever in memory. Raises AudioError naming the file when it cannot be read.
    """

    def __init__(self, path):
        self.path = Path(path)
        audio_duration(self.path)  # AudioError for a missing, empty or unreadable file
        self._file = sf.SoundFile(str(self.path))
        rate = self._file.samplerate
        self._resampler = (soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
                           if rate != SAMPLE_RATE else None)
        self._buffer = np.zeros(0, dtype=np.float32)
        self._buffer_start = 0  # sample index (16 kHz) of self._buffer[0]
        self._ended = False

    def _read_block(self) -> None:
        """Append the next block of the file (mono, 16 kHz) to the buffer; flag the end."""
        try:
            block = self._file.read(READ_BLOCK_FRAMES, dtype="float32", always_2d=True)
        except (sf.SoundFileError, RuntimeError) as error:
            raise AudioError(f"{self.path}: cannot decode the audio ({error}).") from error
        last = len(block) < READ_BLOCK_FRAMES
        mono = block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]
        if not np.isfinite(mono).all():
            raise AudioError(f"{self.path}: holds NaN or infinite samples.")
        if self._resampler is not None:
            mono = self._resampler.resample_chunk(np.ascontiguousarray(mono), last=last)
        self._buffer = np.concatenate([self._buffer, mono.astype(np.float32)])
        self._ended = last

    def window(self, start: int) -> np.ndarray:
        """Samples [start, start + WINDOW_SAMPLES) at 16 kHz (a copy; shorter at the end)."""
        if start < self._buffer_start:
            raise ValueError("WindowReader reads forward only")
        drop = min(start - self._buffer_start, len(self._buffer))
        self._buffer, self._buffer_start = self._buffer[drop:], self._buffer_start + drop
        while not self._ended and self._buffer_start + len(self._buffer) < start + WINDOW_SAMPLES:
            self._read_block()
        offset = start - self._buffer_start
        return self._buffer[offset:offset + WINDOW_SAMPLES].copy()

    def close(self) -> None:
        """Close the file."""
        self._file.close()


# ----------------------------------------------------------------------- decoding
MIN_EMPTY_STEP_SECONDS = 1.0  # a window without text moves at least this far, or by all of it


def _window_segments(model, processor, audio: np.ndarray, fallback: bool,
                     max_new_tokens: int) -> tuple[list[dict], float, bool]:
    """Decode one window (<= 30 s of 16 kHz audio) with timestamps.

    Returns what `read_window_segments` makes of the decoded segments.
    """
    from helpers.transcribe import generate_ids

    output = generate_ids(model, processor, [audio], max_new_tokens, fallback,
                          return_timestamps=True, return_segments=True,
                          force_unique_generate_call=True)
    return read_window_segments(
        [(segment["tokens"].tolist(), float(segment["start"]), float(segment["end"]))
         for segment in output["segments"][0]],
        timestamp_begin=model.generation_config.no_timestamps_token_id + 1,
        seconds=len(audio) / SAMPLE_RATE,
        decode=lambda tokens: processor.tokenizer.decode(tokens, skip_special_tokens=True))


def read_window_segments(decoded: list[tuple[list[int], float, float]], timestamp_begin: int,
                         seconds: float, decode: Callable[[list[int]], str],
                         ) -> tuple[list[dict], float, bool]:
    """Turn one window's decoded segments into text segments and the step to the next window.

    decoded: (token ids, start s, end s) per segment, as `generate(return_segments=True)`
    gives them; timestamp_begin: the first timestamp token id; seconds: the window's length;
    decode: token ids -> text.
    Returns (segments [{"start", "end" (s, from the window's start), "text"}], seconds to
    advance, timestamped). Mirrors transformers' `_retrieve_segment`: when the last segment
    ends on two timestamps the window moves to that segment's end (the text after it was
    cut by the window's edge and is decoded again); otherwise (a single timestamp at the
    end, or none) by the whole window. One exception: a window that gave no text at all
    and would move less than MIN_EMPTY_STEP_SECONDS moves by the whole window, or a model
    that opens with two timestamps (`<|0.00|><|0.02|>`) would creep through the file 0.02 s
    at a time; an empty segment closed later (`<|0.00|><|12.00|>`) still moves the window
    there, where the speech may begin.
    timestamped: the model closed a segment (some timestamp token follows a text token),
    not only the forced opening timestamp.
    """
    segments, advance, timestamped = [], seconds, False
    for tokens, start, end in decoded:
        is_time = [token >= timestamp_begin for token in tokens]
        timestamped |= any(later and not earlier for earlier, later in zip(is_time, is_time[1:]))
        start, end = min(start, seconds), min(end, seconds)
        text = decode(tokens).strip()
        if text:
            segments.append({"start": start, "end": max(start, end), "text": text})
        closed = len(tokens) >= 2 and is_time[-1] and is_time[-2]
        advance = end if closed and 0 < end < seconds else seconds  # the last segment decides
    if not segments and advance < MIN_EMPTY_STEP_SECONDS:
        advance = seconds
    return segments, advance, timestamped


def transcribe_long(model, processor, path, *, fallback: bool = True,
                    max_new_tokens: int = LONG_FORM_MAX_NEW_TOKENS,
                    progress: Callable[[float], None] | None = None) -> dict:
    """Transcribe an audio file of any length with Whisper's sequential long-form decoding.

    Streams the file in 30 s windows (`WindowReader`; memory flat in the file's length),
    decodes each with timestamps and the project's fallback rules, and moves on by
    the model's timestamps (see the module docstring and `_window_segments`).
    progress: called with the seconds of audio each window moved on.
    Returns {"path", "text" (segment texts joined by spaces), "segments": [{"start", "end",
    "text"}] (seconds in the file, 0.02 s steps), "windows": [{"start", "end",
    "timestamped"}] (each decoded window; timestamped: the model closed a segment there)}.
    Raises AudioError naming the file when it cannot be read.
    """
    reader = WindowReader(path)
    segments, windows, start = [], [], 0
    try:
        while True:
            audio = reader.window(start)
            if audio.size == 0:
                break
            found, advance, timestamped = _window_segments(model, processor, audio, fallback,
                                                           max_new_tokens)
            offset = start / SAMPLE_RATE
            segments += [{"start": round(offset + s["start"], 2), "end": round(offset + s["end"], 2),
                          "text": s["text"]} for s in found]
            windows.append({"start": round(offset, 2), "end": round(offset + audio.size / SAMPLE_RATE, 2),
                            "timestamped": timestamped})
            step = max(1, int(round(advance * SAMPLE_RATE)))
            if progress is not None:
                progress(step / SAMPLE_RATE)
            start += step
    finally:
        reader.close()
    return {"path": str(path), "text": " ".join(s["text"] for s in segments),
            "segments": segments, "windows": windows}


# ------------------------------------------------------------ the command's routing
def transcribe_any(model, processor, paths: list[Path], batch_size: int = 8,
                   fallback: bool = True, timestamps: bool = False, progress: bool = True
                   ) -> Iterator[tuple[Path, dict | None, str | None]]:
    """Yield (path, result, error) per path, in order, for audio of any length.

    result: {"path", "text"} for clips up to 30 s, decoded in batches as before
    (`helpers.transcribe.transcribe_paths`); {"path", "text", "segments"} for longer files,
    and for every file when `timestamps` (`transcribe_long`, one file at a time). One
    progress bar ("transcribing", seconds of audio) on stderr.
    """
    from tqdm.auto import tqdm

    from helpers.transcribe import MAX_SECONDS

    lengths, errors = {}, {}
    for path in paths:
        try:
            lengths[path] = audio_duration(path)
        except AudioError as error:
            errors[path] = str(error)
    bar = tqdm(total=round(sum(lengths.values()), 1), desc="transcribing", unit="s",
               disable=not progress)
    pending: list[Path] = []  # short clips waiting for their batch, in order
    for path in [*paths, None]:
        long_file = path in lengths and (timestamps or lengths[path] > MAX_SECONDS)
        if path is None or long_file or path in errors or len(pending) == batch_size:
            yield from _short_batch(model, processor, pending, fallback, lengths, bar)
            pending = []
        if path is None:
            break
        if path in errors:
            yield path, None, errors[path]
        elif long_file:
            yield _long_file(model, processor, path, fallback, bar)
        else:
            pending.append(path)
    bar.close()


def _long_file(model, processor, path: Path, fallback: bool, bar) -> tuple[Path, dict | None, str | None]:
    """(path, {"path", "text", "segments"}, None) by `transcribe_long`, or (path, None, error)."""
    try:
        result = transcribe_long(model, processor, path, fallback=fallback,
                                 progress=lambda seconds: bar.update(round(seconds, 1)))
    except AudioError as error:
        return path, None, str(error)
    return path, {key: result[key] for key in ("path", "text", "segments")}, None


def _short_batch(model, processor, pending: list[Path], fallback: bool, lengths: dict, bar):
    """Transcribe short clips in one batch (`transcribe_paths`); yield (path, result, error)."""
    from helpers.transcribe import transcribe_paths

    if not pending:
        return
    done = {path: (text, error) for path, text, error in
            transcribe_paths(model, processor, pending, len(pending), progress=False,
                             fallback=fallback)}
    bar.update(round(sum(lengths[path] for path in pending), 1))
    for path in pending:
        text, error = done[path]
        yield path, ({"path": str(path), "text": text} if error is None else None), error


# ----------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    """`python -m helpers.long_form build OUT_DIR ...`: write a long-form set, print it."""
    from helpers.evaluate import DEFAULT_CORPUS

    parser = argparse.ArgumentParser(prog="python -m helpers.long_form",
                                     description="Build a long-form test set from a corpus split.")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="join a split's clips into long recordings")
    build.add_argument("out_dir")
    build.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    build.add_argument("--split", default="test")
    build.add_argument("--count", type=int, default=3)
    build.add_argument("--min-seconds", type=float, default=60)
    build.add_argument("--max-seconds", type=float, default=180)
    build.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    recordings = build_long_form_set(args.corpus, args.split, args.out_dir, args.count,
                                     args.min_seconds, args.max_seconds, args.seed)
    for recording in recordings:
        print(json.dumps({k: recording[k] for k in ("path", "duration", "text")}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
