"""PCM conversion, resampling, framing and WAV files, including every bad input we promise to reject."""

import wave

import numpy as np
import pytest

from audio import pcm
from testkit.speech import speech_samples


def tone(rate, hz=440.0, seconds=0.5, amp=0.5):
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_int16_round_trip_is_exact_to_one_lsb():
    x = tone(16000)
    y = pcm.int16_bytes_to_float(pcm.float_to_int16_bytes(x))
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.max(np.abs(x - y)) <= 1.0 / 32767


def test_int16_full_scale_and_byte_order():
    b = pcm.float_to_int16_bytes(np.array([1.0, -1.0, 0.0], np.float32))
    assert (
        b
        == (32767).to_bytes(2, "little", signed=True) + (-32767).to_bytes(2, "little", signed=True) + b"\0\0"
    )
    assert pcm.int16_bytes_to_float(b"\x00\x80")[0] == -1.0


@pytest.mark.parametrize(
    "bad, match",
    [(b"", "empty"), (b"\x01\x02\x03", "odd byte count"), ("abcd", "bytes")],
)
def test_int16_bytes_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        pcm.int16_bytes_to_float(bad)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.array([0.1, np.nan], np.float32), "NaN"),
        (np.array([0.1, np.inf], np.float32), "NaN or infinite"),
        (np.array([0.5, 1.5], np.float32), "outside \\[-1, 1\\]"),
        (np.zeros(0, np.float32), "empty"),
        (np.zeros((2, 10), np.float32), "mono"),
        (np.zeros(10, np.int16), "float"),
    ],
)
def test_float_to_int16_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        pcm.float_to_int16_bytes(bad)


@pytest.mark.parametrize("src", [16000, 22050, 24000, 44100, 48000])
@pytest.mark.parametrize("dst", [16000, 22050, 24000, 44100, 48000])
def test_resample_keeps_length_and_pitch(src, dst):
    x = tone(src, hz=440.0, seconds=1.0)
    y = pcm.resample(x, src, dst)
    assert y.dtype == np.float32
    assert abs(len(y) - dst) <= 1, (len(y), dst)
    spectrum = np.abs(np.fft.rfft(y[dst // 10 : -dst // 10] * np.hanning(len(y) - 2 * (dst // 10))))
    peak_hz = np.argmax(spectrum) * dst / (len(y) - 2 * (dst // 10))
    assert abs(peak_hz - 440.0) < 5.0, peak_hz


def test_resample_round_trip_on_speech_is_close():
    x = speech_samples("Set a timer for ten minutes.", rate=16000)
    y = pcm.resample(pcm.resample(x, 16000, 48000), 48000, 16000)
    n = min(len(x), len(y))
    err = np.sqrt(np.mean((x[:n] - y[:n]) ** 2)) / np.sqrt(np.mean(x[:n] ** 2))
    assert err < 0.05, err


def test_stream_resampler_matches_whole_resample():
    x = tone(24000, seconds=1.0)
    rs = pcm.StreamResampler(24000, 16000)
    parts = [rs.push(c) for c in np.array_split(x, 7)] + [rs.push(np.zeros(0, np.float32), last=True)]
    y = np.concatenate(parts)
    assert abs(len(y) - 16000) <= 2
    ref = pcm.resample(x, 24000, 16000)
    n = min(len(ref), len(y))
    assert np.max(np.abs(ref[100 : n - 100] - y[100 : n - 100])) < 1e-2


def test_resample_rejects_unknown_rate():
    with pytest.raises(ValueError, match="unsupported sample rate"):
        pcm.resample(tone(16000), 16000, 12345)


def test_framer_keeps_remainder_across_pushes():
    f = pcm.Framer(512)
    assert f.push(np.zeros(300, np.float32)) == []
    out = f.push(np.ones(800, np.float32))
    assert [len(o) for o in out] == [512, 512] and f.pending == 76
    assert out[0][299] == 0 and out[0][300] == 1
    assert [len(x) for x in pcm.frames(np.zeros(1100), 512, pad_last=True)] == [512, 512, 512]
    with pytest.raises(ValueError):
        pcm.Framer(0)


def test_wav_round_trip(tmp_path):
    x = tone(22050)
    path = pcm.write_wav(tmp_path / "a.wav", x, 22050)
    y, rate = pcm.read_wav(path)
    assert rate == 22050 and len(y) == len(x)
    assert np.max(np.abs(x - y)) <= 1.0 / 32767


def test_read_wav_stereo_is_mixed_to_mono(tmp_path):
    path = tmp_path / "stereo.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(np.array([1000, 3000] * 10, "<i2").tobytes())
    y, rate = pcm.read_wav(path)
    assert rate == 16000 and len(y) == 10 and np.allclose(y, 2000 / 32768)


def test_read_wav_rejects_8_bit_and_garbage(tmp_path):
    path = tmp_path / "8bit.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(1), w.setframerate(8000)
        w.writeframes(bytes(100))
    with pytest.raises(ValueError, match="sample width is 8 bit"):
        pcm.read_wav(path)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not a wav at all")
    with pytest.raises(ValueError, match="not a PCM WAV"):
        pcm.read_wav(junk)
    with pytest.raises(FileNotFoundError):
        pcm.read_wav(tmp_path / "missing.wav")


def test_sound_span_is_from_the_first_sound_to_the_end_of_the_last():
    x = np.zeros(100, np.float32)
    assert pcm.sound_span(x) is None
    x[[10, 42]] = [0.5, -0.02]
    x[60] = pcm.AUDIBLE_LEVEL / 2  # below the level: silence
    assert pcm.sound_span(x) == (10, 43)
    assert pcm.sound_span(x, level=0.1) == (10, 11)
