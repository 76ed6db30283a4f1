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
- each window's log-mel is computed alone, exactly as for a short clip
  (`helpers.data.features.inference_features`: a last, shorter window's log-mel is padded
  with zeros, as OpenAI's decoder and faster-whisper pad it), so a recording's loudest
  moment does not set the floor of every window's log-mel (Whisper clamps log-mel 8 units
  below its maximum, per input);
- each window is decoded by `helpers.transcribe.decode.generate_ids` with timestamps, so it gets
  the project's decoding rules (Whisper's temperature fallback against loops, seeded; the
  token cap that grows with the window's length, `helpers.transcribe.decode.token_cap`: a
  full 30 s window may use every decoder position its prompt leaves, 445 tokens for a
  multilingual model, where OpenAI's decoder stops at 224 to keep room for the previous
  window's text, which we do not prompt with) and transformers parses the segments
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

from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
import soxr

from helpers.audio import SAMPLE_RATE, WINDOW_SAMPLES, AudioError, audio_duration

TIME_PRECISION = 0.02  # seconds per timestamp token (<|0.00|> ... <|30.00|>)


READ_BLOCK_FRAMES = 65_536  # frames read from the file at a time (1.4 s at 48 kHz)


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
                     max_new_tokens: int | None, router=None) -> tuple[list[dict], float, bool, dict]:
    """Decode one window (<= 30 s of 16 kHz audio) with timestamps, at most max_new_tokens
    new tokens (None: the window's `token_cap`); with a `router` (helpers.transcribe.routing)
    in the language and with the adapter it routes the window to.

    Returns what `read_window_segments` makes of the decoded segments, and the route as
    {"language", "adapter"} ({} without a router).
    """
    from helpers.transcribe.decode import generate_ids
    from helpers.transcribe.routing import routed_window

    with routed_window(model, processor, audio, router, max_new_tokens) as route:
        output = generate_ids(model, processor, [audio], max_new_tokens, fallback,
                              return_timestamps=True, return_segments=True,
                              force_unique_generate_call=True)
    return *read_window_segments(
        [(segment["tokens"].tolist(), float(segment["start"]), float(segment["end"]))
         for segment in output["segments"][0]],
        timestamp_begin=model.generation_config.no_timestamps_token_id + 1,
        seconds=len(audio) / SAMPLE_RATE,
        decode=lambda tokens: processor.tokenizer.decode(tokens, skip_special_tokens=True)), route


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
                    max_new_tokens: int | None = None,
                    progress: Callable[[float], None] | None = None, router=None) -> dict:
    """Transcribe an audio file of any length with Whisper's sequential long-form decoding.

    Streams the file in 30 s windows (`WindowReader`; memory flat in the file's length),
    decodes each with timestamps and the project's fallback rules, and moves on by
    the model's timestamps (see the module docstring and `_window_segments`).
    progress: called with the seconds of audio each window moved on.
    router: a `helpers.transcribe.routing.Router`: each window is identified and decoded as
    it routes it (None: as the model stands).
    Returns {"path", "text" (segment texts joined by spaces), "segments": [{"start", "end",
    "text"}] (seconds in the file, 0.02 s steps), "windows": [{"start", "end",
    "timestamped"}] (each decoded window; timestamped: the model closed a segment there)};
    with a router, each segment and window also has "language" and "adapter", and so has
    the result: those of the windows that hold most of the audio.
    Raises AudioError naming the file when it cannot be read.
    """
    reader = WindowReader(path)
    segments, windows, start = [], [], 0
    try:
        while True:
            audio = reader.window(start)
            if audio.size == 0:
                break
            found, advance, timestamped, route = _window_segments(model, processor, audio,
                                                                  fallback, max_new_tokens, router)
            offset = start / SAMPLE_RATE
            segments += [{"start": round(offset + s["start"], 2), "end": round(offset + s["end"], 2),
                          "text": s["text"], **route} for s in found]
            windows.append({"start": round(offset, 2), "end": round(offset + audio.size / SAMPLE_RATE, 2),
                            "timestamped": timestamped, **route})
            step = max(1, int(round(advance * SAMPLE_RATE)))
            if progress is not None:
                progress(step / SAMPLE_RATE)
            start += step
    finally:
        reader.close()
    result = {"path": str(path), "text": " ".join(s["text"] for s in segments),
              "segments": segments, "windows": windows}
    if router is not None:
        from helpers.transcribe.routing import main_route

        result.update(main_route(windows))
    return result
