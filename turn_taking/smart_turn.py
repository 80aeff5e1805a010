"""Smart Turn v3: the probability that a speaker's turn is complete, judged from the audio alone.

The model (pipecat-ai/smart-turn, BSD-2: a Whisper-tiny encoder and a classifier, int8 ONNX, ~8 MB)
ships inside the `pipecat-ai` wheel. We read the file from there without importing pipecat (whose
import pulls loguru and more) and compute its input ourselves: the last 8 s of 16 kHz audio, padded
with zeros on the left, normalised to zero mean and unit variance, as 80 Whisper log-mel bands.

    turn = SmartTurn.load()                    # FileNotFoundError says what to install
    p = turn.predict(samples_16k)              # float32 [N] -> probability the turn is complete
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
WINDOW_SECONDS = 8  # the model sees the last 8 s; shorter audio is left-padded with silence
WINDOW_SAMPLES = SAMPLE_RATE * WINDOW_SECONDS
N_FFT = 400  # Whisper's 25 ms analysis window
HOP = 160  # 10 ms between frames
N_MELS = 80
MEL_FLOOR = 1e-10
NORM_EPS = 1e-7  # the waveform normalisation's variance floor (transformers' WhisperFeatureExtractor)
DYNAMIC_RANGE = 8.0  # log10 units kept below the loudest band, as Whisper does
# Where the model lives inside an installed pipecat package.
PACKAGE = "pipecat"
MODEL_IN_PACKAGE = ("audio", "turn", "smart_turn", "data", "smart-turn-v3.2-cpu.onnx")
INSTALL_HINT = "pip install --no-deps pipecat-ai  (only its bundled Smart Turn model file is used)"


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    log_part = 15.0 + np.log(np.maximum(f, 1e-12) / 1000.0) * (27.0 / np.log(6.4))
    return np.where(f >= 1000.0, log_part, 3.0 * f / 200.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), 200.0 * m / 3.0)


def mel_filters() -> np.ndarray:
    """Slaney-normalised triangular filters: [N_FFT // 2 + 1, N_MELS] (librosa, htk=False, norm="slaney")."""
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), N_MELS + 2))  # [M + 2]
    bins = np.linspace(0, SAMPLE_RATE // 2, N_FFT // 2 + 1)  # [F]
    slopes = edges[None, :] - bins[:, None]  # [F, M + 2]
    down = -slopes[:, :-2] / np.diff(edges)[:-1]
    up = slopes[:, 2:] / np.diff(edges)[1:]
    return np.maximum(0.0, np.minimum(down, up)) * (2.0 / (edges[2:] - edges[:-2]))


_WINDOW = np.hanning(N_FFT + 1)[:-1]  # periodic Hann, as torch.hann_window
_FILTERS = mel_filters()


def last_window(audio: np.ndarray) -> np.ndarray:
    """The last WINDOW_SAMPLES of `audio`, zero-padded on the left when shorter: float32 [WINDOW_SAMPLES]."""
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"expected mono audio [N], got shape {x.shape}")
    x = x[-WINDOW_SAMPLES:]
    return np.pad(x, (WINDOW_SAMPLES - len(x), 0))


def log_mel(window: np.ndarray) -> np.ndarray:
    """Whisper log-mel features of a normalised 8 s window: float32 [N_MELS, 800]."""
    assert window.shape == (WINDOW_SAMPLES,), window.shape
    x = (window - window.mean()) / np.sqrt(window.var() + NORM_EPS)  # float32, as the reference
    padded = np.pad(x.astype(np.float64), N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]  # [801, N_FFT]
    power = np.abs(np.fft.rfft(frames * _WINDOW, axis=-1)) ** 2  # [801, F]
    mel = np.log10(np.maximum(MEL_FLOOR, power @ _FILTERS)).T[:, :-1]  # [N_MELS, 800]
    mel = np.maximum(mel, mel.max() - DYNAMIC_RANGE)
    return ((mel + 4.0) / 4.0).astype(np.float32)


def find_model() -> Path:
    """The ONNX file inside an installed `pipecat` package, found without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the Smart Turn model comes with pipecat-ai, which is not installed: {INSTALL_HINT}"
        )
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*MODEL_IN_PACKAGE)
    if not path.is_file():
        raise FileNotFoundError(f"this pipecat-ai has no {path.name} ({path}): {INSTALL_HINT}")
    return path


class SmartTurn:
    """One ONNX Runtime session on one thread; `predict` is safe to call from one thread at a time."""

    def __init__(self, session, path: Path):
        self.session = session
        self.path = path
        self.input_name = session.get_inputs()[0].name

    @classmethod
    def load(cls, path: str | None = None) -> SmartTurn:
        import onnxruntime as ort

        model = Path(path) if path is not None else find_model()
        if not model.is_file():
            raise FileNotFoundError(f"no Smart Turn model at {model}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # ~100 ms a call either way; leave the other core to ASR/LM
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        session = ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
        return cls(session, model)

    def predict(self, audio_16k: np.ndarray) -> float:
        """Probability that the turn is complete, from float32 mono 16 kHz audio of any length."""
        features = log_mel(last_window(audio_16k))[None]  # [1, N_MELS, 800]
        (prob,) = self.session.run(None, {self.input_name: features})
        return float(np.asarray(prob).reshape(-1)[0])
