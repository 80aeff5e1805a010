"""Sound devices through sounddevice (PortAudio): listing, selection, capture and playback.

    for d in list_devices(): print(d)
    with open_input(device=None, rate=16000) as mic:      # default input, or an index / name substring
        x = mic.read(timeout=1.0)                          # float32 [n] mono, None on timeout
    with open_output(rate=24000) as spk:
        spk.write(samples)                                 # blocks until queued to the device
        spk.stop()                                         # barge-in: drop what is queued
        spk.drain()                                        # or: wait until it has all been played

A machine without PortAudio, or without any device of the needed kind, gets `AudioDeviceError` with a message
that says what to install or pick; nothing here is imported until it is used, so servers without sound
hardware never touch PortAudio.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass

import numpy as np

from audio import pcm

BLOCK_MS = 20  # capture block: small enough for barge-in, large enough for Python callbacks
INPUT_QUEUE_BLOCKS = 500  # 10 s of capture buffered before blocks are dropped (reader stalled)


class AudioDeviceError(RuntimeError):
    """PortAudio or a usable device is missing, or a device name/index does not match."""


def _sd():
    try:
        import sounddevice as sd
    except ImportError as e:
        raise AudioDeviceError("sounddevice is not installed: pip install sounddevice") from e
    except OSError as e:  # sounddevice raises OSError when libportaudio cannot be loaded
        raise AudioDeviceError(
            f"PortAudio library not found ({e}); install it (Debian/Ubuntu: apt-get install libportaudio2, "
            "macOS: brew install portaudio)"
        ) from e
    return sd


@dataclass
class DeviceInfo:
    index: int
    name: str
    inputs: int  # max input channels
    outputs: int  # max output channels
    default_rate: float
    default_input: bool = False
    default_output: bool = False

    def __str__(self) -> str:
        marks = ("<" if self.default_input else " ") + (">" if self.default_output else " ")
        io = f"{self.inputs} in, {self.outputs} out, {self.default_rate:g} Hz"
        return f"{marks} {self.index:3d} {self.name} ({io})"


def list_devices() -> list[DeviceInfo]:
    """All PortAudio devices; `<` marks the default input, `>` the default output."""
    sd = _sd()
    try:
        devs = sd.query_devices()
        d_in, d_out = sd.default.device
    except Exception as e:  # PortAudioError is not exported when the library failed to load
        raise AudioDeviceError(f"cannot query sound devices: {e}") from e
    return [
        DeviceInfo(
            i,
            d["name"],
            d["max_input_channels"],
            d["max_output_channels"],
            d["default_samplerate"],
            i == d_in,
            i == d_out,
        )
        for i, d in enumerate(devs)
    ]


def select_device(spec: int | str | None, kind: str) -> int | None:
    """Device index for `spec` (None: the default; an int or digit string: that index; else a name
    substring)."""
    if kind not in ("input", "output"):
        raise ValueError(f"kind must be 'input' or 'output', got {kind!r}")
    devs = list_devices()
    usable = [d for d in devs if (d.inputs if kind == "input" else d.outputs) > 0]
    if not usable:
        raise AudioDeviceError(
            f"no sound {kind} device found; on a server use the web page or `transcribe`/`say` with files, "
            "or start PulseAudio with a virtual device"
        )
    if spec is None:
        return None
    if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
        idx = int(spec)
        if not any(d.index == idx for d in usable):
            raise AudioDeviceError(
                f"device {idx} is not a usable {kind} device; choose from:\n" + _table(usable)
            )
        return idx
    hits = [d for d in usable if spec.lower() in d.name.lower()]
    if not hits:
        raise AudioDeviceError(f"no {kind} device matches {spec!r}; choose from:\n" + _table(usable))
    return hits[0].index


def _table(devs: list[DeviceInfo]) -> str:
    return "\n".join(str(d) for d in devs)


class InputStream:
    """Mono float32 capture; the PortAudio callback only copies blocks into a bounded queue."""

    def __init__(
        self, device: int | str | None = None, rate: int = pcm.SAMPLE_RATE_ASR, block_ms: int = BLOCK_MS
    ):
        index = select_device(device, "input")  # a machine without devices hears that first
        sd = _sd()
        self.rate = pcm.check_rate(rate)
        self.dropped = 0  # blocks lost because the reader fell behind
        self._q: queue.Queue[np.ndarray] = queue.Queue(maxsize=INPUT_QUEUE_BLOCKS)
        try:
            self._stream = sd.InputStream(
                device=index,
                samplerate=self.rate,
                channels=1,
                dtype="float32",
                blocksize=pcm.ms_to_samples(block_ms, self.rate),
                callback=self._callback,
            )
        except AudioDeviceError:
            raise
        except Exception as e:
            raise AudioDeviceError(f"cannot open input device {device!r} at {self.rate} Hz: {e}") from e

    def _callback(self, indata, frames, time_info, status) -> None:
        try:
            self._q.put_nowait(indata[:, 0].copy())  # [frames]
        except queue.Full:
            self.dropped += 1

    def start(self) -> InputStream:
        self._stream.start()
        return self

    def read(self, timeout: float | None = None) -> np.ndarray | None:
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self._stream.stop()
        self._stream.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


class OutputStream:
    """Mono float32 playback with blocking writes; `stop()` drops queued audio (barge-in)."""

    def __init__(self, device: int | str | None = None, rate: int = pcm.SAMPLE_RATE_API):
        index = select_device(device, "output")
        sd = _sd()
        self.rate = pcm.check_rate(rate)
        self._aborted = False
        try:
            self._stream = sd.OutputStream(device=index, samplerate=self.rate, channels=1, dtype="float32")
        except AudioDeviceError:
            raise
        except Exception as e:
            raise AudioDeviceError(f"cannot open output device {device!r} at {self.rate} Hz: {e}") from e

    def start(self) -> OutputStream:
        self._aborted = False
        self._stream.start()
        return self

    def write(self, x: np.ndarray) -> None:
        """Queue audio; blocks while the device buffer is full. Returns quietly if stop() cut it short."""
        x = pcm.check_float(x, allow_empty=True)
        if x.size == 0:
            return
        if not self._stream.active:
            self._aborted = False
            self._stream.start()
        try:
            self._stream.write(x.reshape(-1, 1))  # [n, 1 channel]
        except Exception as e:  # PortAudioError when another thread aborted the stream mid-write
            if not self._aborted:
                raise AudioDeviceError(f"playback failed: {e}") from e

    def stop(self) -> None:
        """Barge-in: discard buffered audio at once (a writer blocked in write() returns)."""
        self._aborted = True
        self._stream.abort()

    def drain(self) -> None:
        """Wait until everything written has been played (closing alone would cut the tail off)."""
        if self._stream.active:
            self._stream.stop()

    def close(self) -> None:
        self._stream.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def open_input(
    device: int | str | None = None, rate: int = pcm.SAMPLE_RATE_ASR, block_ms: int = BLOCK_MS
) -> InputStream:
    return InputStream(device, rate, block_ms)


def open_output(device: int | str | None = None, rate: int = pcm.SAMPLE_RATE_API) -> OutputStream:
    return OutputStream(device, rate)


def play(x: np.ndarray, rate: int, device: int | str | None = None) -> None:
    """Play a whole clip and wait for it to finish."""
    with open_output(device, rate) as out:
        out.write(x)
        out.drain()
