"""Decode audio files to 16 kHz mono float32 without FFmpeg or torchcodec.

soundfile (libsndfile 1.2, bundled in its wheel) reads WAV, FLAC, OGG and MP3 with no
system library; soxr resamples. Every failure is an `AudioError` that names the file.
`inspect_audio` decodes a file once to find what a header cannot show: frames that do not
decode, a file cut short (the header promises more audio than there is) and silence.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16_000  # Whisper's feature extractor expects 16 kHz input
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
SILENCE_PEAK = 10 ** (-60 / 20)  # peak below -60 dBFS: no audible speech (about 0.001)
TRUNCATED_FRACTION = 0.9  # fewer decoded frames than this share of the header's: cut short
_HOW_TO_FIX = ("Re-encode it to one of " + ", ".join(AUDIO_EXTENSIONS)
               + " (e.g. `ffmpeg -i IN -ar 16000 OUT.wav`) or remove it from the corpus.")


class AudioError(ValueError):
    """An audio file is missing, unreadable or empty; the message names the file."""


def _check_exists(path: Path) -> None:
    """Raise AudioError if `path` is not an existing regular file."""
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found. Check the path (and the clips/ "
                         "folder of the corpus).")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: the file is empty (0 bytes). {_HOW_TO_FIX}")


def audio_duration(path) -> float:
    """Return the duration in seconds of the audio file at `path`, read from its header.

    Cheap (does not decode the samples). Raises AudioError for a missing, unreadable or
    zero-length file.
    """
    path = Path(path)
    _check_exists(path)
    try:
        info = sf.info(str(path))
    except (sf.SoundFileError, RuntimeError) as err:
        raise AudioError(f"{path}: cannot read the audio header ({err}). {_HOW_TO_FIX}") from err
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(f"{path}: contains no audio samples (zero length). {_HOW_TO_FIX}")
    return info.frames / info.samplerate


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """Decode `path` to a float32 array of shape (frames, channels) and its sample rate.

    AudioError when the frames do not decode, there are none, or some are NaN/infinite."""
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, ValueError) as err:
        raise AudioError(f"{path}: cannot decode the audio ({err}). {_HOW_TO_FIX}") from err
    if data.shape[0] == 0:
        raise AudioError(f"{path}: contains no audio samples (zero length). {_HOW_TO_FIX}")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: holds NaN or infinite samples (a broken float file?). "
                         f"{_HOW_TO_FIX}")
    return data, rate


def load_audio(path, sampling_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Load the audio file at `path` as a 1-D float32 array at `sampling_rate` Hz.

    Channels are averaged to mono; the signal is resampled with soxr (high quality) when
    the file's rate differs. Raises AudioError (naming the file) when the file is missing,
    corrupt, holds no samples or NaN/infinite ones. A silent file is returned as it is.
    """
    path = Path(path)
    _check_exists(path)
    data, rate = _decode(path)
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if rate != sampling_rate:
        mono = soxr.resample(mono, rate, sampling_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


@dataclass(frozen=True)
class AudioInfo:
    """What one full decode of a file tells: decoded length, header length, loudest sample."""

    seconds: float         # duration of the samples that actually decode
    header_seconds: float  # duration the header promises
    peak: float            # largest absolute sample value, 0.0 .. 1.0 (full scale)


def inspect_audio(path) -> AudioInfo:
    """Decode the file at `path` once and return its AudioInfo.

    Raises AudioError (naming the file) when it is missing, empty, its frames do not decode,
    it holds NaN/infinite samples, or it was cut short: fewer than TRUNCATED_FRACTION of the
    frames its header promises decode (and more than 0.1 s is missing), as with an
    interrupted download.
    """
    path = Path(path)
    _check_exists(path)
    header_frames = _header_frames(path)
    data, rate = _decode(path)
    missing = header_frames - data.shape[0]
    if data.shape[0] < TRUNCATED_FRACTION * header_frames and missing > 0.1 * rate:
        raise AudioError(f"{path}: the file is cut short: its header promises "
                         f"{header_frames / rate:.2f} s but only {data.shape[0] / rate:.2f} s "
                         f"decode (an interrupted download?). {_HOW_TO_FIX}")
    peak = float(np.abs(data).max())
    return AudioInfo(data.shape[0] / rate, header_frames / rate, peak)


def _header_frames(path: Path) -> int:
    """Number of frames the header of `path` declares (AudioError if it cannot be read)."""
    try:
        return sf.info(str(path)).frames
    except (sf.SoundFileError, RuntimeError) as err:
        raise AudioError(f"{path}: cannot read the audio header ({err}). {_HOW_TO_FIX}") from err


WINDOW_SECONDS = 30  # Whisper's input window
WINDOW_SAMPLES = WINDOW_SECONDS * SAMPLE_RATE


# speech_bounds: 20 ms frames every 10 ms; a frame holds sound when its energy (averaged
# over 30 ms against clicks) is within SPEECH_RANGE_DB of the loudest frame and
# NOISE_MARGIN_DB above the noise floor (the 10th percentile of the frames' energies).
FRAME_SECONDS, HOP_SECONDS = 0.02, 0.01


SPEECH_RANGE_DB = 40.0
NOISE_MARGIN_DB = 12.0


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



