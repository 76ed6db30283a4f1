"""helpers.audio: decoding, down-mixing, resampling and errors, on files written here."""
import numpy as np
import pytest
import soundfile as sf

from fixtures.data_files import FORMATS, tone, write_audio, write_tone
from helpers.audio import AUDIO_EXTENSIONS, SAMPLE_RATE, AudioError, audio_duration, load_audio

pytestmark = pytest.mark.unit

RATES = [(8_000, 1), (16_000, 1), (44_100, 2), (48_000, 1)]  # (rate, channels)


def peak_hz(signal: np.ndarray, rate: int) -> float:
    """Frequency of the largest FFT bin of `signal` (Hann window)."""
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return float(np.fft.rfftfreq(len(signal), 1 / rate)[spectrum.argmax()])


def test_extensions_cover_the_formats_tested():
    assert set(AUDIO_EXTENSIONS) == set(FORMATS)


@pytest.mark.parametrize("ext", AUDIO_EXTENSIONS)
@pytest.mark.parametrize("rate,channels", RATES)
def test_each_format_and_rate_decodes_to_16k_mono(tmp_path, ext, rate, channels):
    data = tone(rate, 1.0)
    if channels == 2:
        data = np.stack([data, data], axis=1)
    path = write_audio(tmp_path / f"tone{ext}", data, rate)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    slack = 0.001 if ext in (".wav", ".flac") else 0.01  # lossy codecs may pad frames
    assert abs(len(audio) - SAMPLE_RATE) <= slack * SAMPLE_RATE
    assert abs(peak_hz(audio, SAMPLE_RATE) - 440.0) < 2.0
    assert 0.3 < np.abs(audio).max() < 0.7
    assert audio_duration(path) == pytest.approx(1.0, abs=slack)


@pytest.mark.parametrize("ext", [".wav", ".flac"])
def test_resampled_content_matches_the_sine(tmp_path, ext):
    path = write_tone(tmp_path / f"tone{ext}", 48_000, 1.0, freq=440.0)
    audio = load_audio(path)
    expected = tone(SAMPLE_RATE, 1.0, 440.0)
    assert len(audio) == len(expected)
    inner = slice(400, -400)  # resampler filter edges
    assert np.abs(audio[inner] - expected[inner]).max() < 1e-3


def test_16k_wav_is_returned_unchanged(tmp_path):
    data = np.random.default_rng(0).uniform(-0.9, 0.9, 4000).astype(np.float32)
    path = write_audio(tmp_path / "noise.wav", data, SAMPLE_RATE)
    np.testing.assert_array_equal(load_audio(path), data)  # stored and read back: no arithmetic


def test_stereo_is_averaged_to_mono(tmp_path):
    left, right = tone(SAMPLE_RATE, 0.5, 440.0), tone(SAMPLE_RATE, 0.5, 1000.0, amp=0.2)
    path = write_audio(tmp_path / "stereo.wav", np.stack([left, right], axis=1), SAMPLE_RATE)
    np.testing.assert_allclose(load_audio(path), (left + right) / 2, atol=1e-7)


def test_other_target_rate(tmp_path):
    path = write_tone(tmp_path / "tone.wav", 48_000, 1.0)
    assert len(load_audio(path, sampling_rate=8_000)) == 8_000


def test_missing_file_names_the_file(tmp_path):
    path = tmp_path / "nowhere.mp3"
    for func in (load_audio, audio_duration):
        with pytest.raises(AudioError, match="nowhere.mp3.*not found"):
            func(path)


@pytest.mark.parametrize("name", ["corrupt.mp3", "corrupt.wav", "corrupt.flac"])
def test_corrupt_file_names_the_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"this is not audio " * 50)
    for func in (load_audio, audio_duration):
        with pytest.raises(AudioError, match=name) as info:
            func(path)
        assert "Re-encode" in str(info.value)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    for func in (load_audio, audio_duration):
        with pytest.raises(AudioError, match="empty.wav.*0 bytes"):
            func(path)


@pytest.mark.parametrize("ext", [".wav", ".ogg"])
def test_valid_header_but_no_samples(tmp_path, ext):
    path = tmp_path / f"silent{ext}"
    fmt, subtype = FORMATS[ext]
    sf.write(str(path), np.zeros(0, dtype=np.float32), SAMPLE_RATE, format=fmt, subtype=subtype)
    for func in (load_audio, audio_duration):
        with pytest.raises(AudioError, match=f"silent{ext}.*no audio samples"):
            func(path)


def test_directory_is_not_an_audio_file(tmp_path):
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path)
