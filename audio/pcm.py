"""PCM formats, resampling, framing and WAV files.

Everything inside the assistant is mono float32 in [-1, 1]; int16 little-endian bytes exist only at the
edges (the Realtime wire format `pcm16`, WAV files, sound devices). Resampling uses soxr (a well-kept
polyphase resampler) rather than hand-written filters.

Bad input raises `ValueError` with a message that says what was wrong: empty audio, an odd byte count for
int16, a WAV with a sample width other than 16 bit, NaN/inf or samples outside [-1, 1].
"""

from __future__ import annotations

import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np

SAMPLE_RATE_ASR = 16000  # Whisper and Silero VAD both expect 16 kHz
SAMPLE_RATE_API = 24000  # OpenAI Realtime `pcm16` rate
SUPPORTED_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
INT16_BYTES = 2
INT16_SCALE = 32768.0  # float = int16 / 32768; int16 = round(float * 32767)
INT16_MAX = 32767
# float32 rounding after resampling can overshoot full scale a little; beyond this it is a caller bug.
CLIP_TOLERANCE = 1e-3


def check_rate(rate: int) -> int:
    """Return `rate` as int if it is one of SUPPORTED_RATES, else raise ValueError."""
    if int(rate) != rate or int(rate) not in SUPPORTED_RATES:
        raise ValueError(f"unsupported sample rate {rate!r}; use one of {SUPPORTED_RATES}")
    return int(rate)


def check_float(x: np.ndarray, name: str = "audio", allow_empty: bool = False) -> np.ndarray:
    """Validate mono float audio and return it as a contiguous float32 array [N]."""
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"{name} must be mono 1-D samples, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{name} must be float samples in [-1, 1], got dtype {x.dtype}")
    if x.size == 0:
        if allow_empty:
            return x.astype(np.float32)
        raise ValueError(f"{name} is empty (0 samples)")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite samples")
    peak = float(np.max(np.abs(x)))
    if peak > 1.0 + CLIP_TOLERANCE:
        raise ValueError(f"{name} has samples outside [-1, 1] (peak {peak:.3f}); scale it before converting")
    return np.ascontiguousarray(x, dtype=np.float32)


def int16_bytes_to_float(b: bytes, allow_empty: bool = False) -> np.ndarray:
    """Little-endian int16 bytes -> float32 [N] in [-1, 1)."""
    if not isinstance(b, (bytes, bytearray, memoryview)):
        raise ValueError(f"expected int16 PCM bytes, got {type(b).__name__}")  # noqa: TRY004 (contract: ValueError)
    n = len(b)
    if n == 0 and not allow_empty:
        raise ValueError("PCM input is empty (0 bytes)")
    if n % INT16_BYTES:
        raise ValueError(f"PCM16 input has an odd byte count ({n}); int16 samples are 2 bytes each")
    return np.frombuffer(b, dtype="<i2").astype(np.float32) / INT16_SCALE


def float_to_int16_bytes(x: np.ndarray, allow_empty: bool = False) -> bytes:
    """float32 [N] in [-1, 1] -> little-endian int16 bytes (clipped at full scale)."""
    x = check_float(x, allow_empty=allow_empty)
    q = np.clip(np.round(x * INT16_MAX), -INT16_MAX - 1, INT16_MAX)
    return q.astype("<i2").tobytes()


def resample(x: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Resample mono float audio with soxr (high quality). Same rate returns a float32 copy."""
    x = check_float(x, allow_empty=True)
    src_rate, dst_rate = check_rate(src_rate), check_rate(dst_rate)
    if src_rate == dst_rate or x.size == 0:
        return x.copy()
    import soxr

    y = soxr.resample(x, src_rate, dst_rate, quality="HQ")
    return np.clip(y, -1.0, 1.0).astype(np.float32, copy=False)


class StreamResampler:
    """Chunk-by-chunk resampling that keeps filter state between chunks (for live streams)."""

    def __init__(self, src_rate: int, dst_rate: int):
        self.src_rate, self.dst_rate = check_rate(src_rate), check_rate(dst_rate)
        self._stream = None
        if self.src_rate != self.dst_rate:
            import soxr

            self._stream = soxr.ResampleStream(self.src_rate, self.dst_rate, 1, dtype="float32", quality="HQ")

    def push(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        x = check_float(x, allow_empty=True)
        if self._stream is None:
            return x.copy()
        y = self._stream.resample_chunk(x, last=last)
        return np.clip(y, -1.0, 1.0).astype(np.float32, copy=False)


def frames(x: np.ndarray, frame_len: int, pad_last: bool = False) -> Iterator[np.ndarray]:
    """Split [N] into consecutive [frame_len] views; the remainder is dropped or zero-padded."""
    if frame_len <= 0:
        raise ValueError(f"frame_len must be positive, got {frame_len}")
    x = np.asarray(x)
    n_full = len(x) // frame_len
    for i in range(n_full):
        yield x[i * frame_len : (i + 1) * frame_len]
    rest = len(x) - n_full * frame_len
    if pad_last and rest:
        yield np.concatenate([x[n_full * frame_len :], np.zeros(frame_len - rest, dtype=x.dtype)])


class Framer:
    """Collects arbitrary-size chunks and hands out fixed-size frames; keeps the remainder."""

    def __init__(self, frame_len: int):
        if frame_len <= 0:
            raise ValueError(f"frame_len must be positive, got {frame_len}")
        self.frame_len = frame_len
        self._buf = np.zeros(0, dtype=np.float32)

    def push(self, x: np.ndarray) -> list[np.ndarray]:
        self._buf = np.concatenate([self._buf, np.asarray(x, dtype=np.float32)])
        n = len(self._buf) // self.frame_len
        out = [self._buf[i * self.frame_len : (i + 1) * self.frame_len] for i in range(n)]
        self._buf = self._buf[n * self.frame_len :]
        return out

    @property
    def pending(self) -> int:
        return len(self._buf)

    def reset(self) -> None:
        self._buf = np.zeros(0, dtype=np.float32)


# A sample counts as sound when it is above -40 dBFS (full scale 1.0): below it lie TTS lead-ins, pauses
# and tails.
AUDIBLE_LEVEL = 0.01


def sound_span(x: np.ndarray, level: float = AUDIBLE_LEVEL) -> tuple[int, int] | None:
    """(first, last + 1): the sample range from the first sound of x to the end of its last; None when x
    is all silence."""
    loud = np.flatnonzero(np.abs(x) > level)
    return (int(loud[0]), int(loud[-1]) + 1) if loud.size else None


def ms_to_samples(ms: float, rate: int) -> int:
    return round(ms * rate / 1000.0)


def samples_to_ms(n: int, rate: int) -> float:
    return n * 1000.0 / rate


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a 16-bit PCM WAV file -> (float32 mono [N], rate). Multi-channel audio is averaged to mono."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such audio file: {path}")
    try:
        with wave.open(str(path), "rb") as w:
            width, channels, rate, n = w.getsampwidth(), w.getnchannels(), w.getframerate(), w.getnframes()
            raw = w.readframes(n)
    except wave.Error as e:
        raise ValueError(f"{path}: not a PCM WAV file ({e})") from e
    except EOFError as e:
        raise ValueError(f"{path}: truncated WAV file") from e
    if width != INT16_BYTES:
        raise ValueError(f"{path}: sample width is {8 * width} bit; only 16-bit PCM WAV is supported")
    x = int16_bytes_to_float(raw, allow_empty=True)
    if channels > 1:
        x = x[: len(x) // channels * channels].reshape(-1, channels).mean(axis=1).astype(np.float32)
    return x, rate


def write_wav(path: str | Path, x: np.ndarray, rate: int) -> Path:
    """Write float32 mono [N] as a 16-bit PCM WAV file."""
    path = Path(path)
    data = float_to_int16_bytes(x, allow_empty=True)
    if int(rate) <= 0:
        raise ValueError(f"sample rate must be positive, got {rate}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(INT16_BYTES)
        w.setframerate(int(rate))
        w.writeframes(data)
    return path
