"""Streaming voice activity detection: Silero VAD (the onnx that faster-whisper bundles) + a state machine.

    vad = StreamingVad(VadConfig())              # OpenAI server_vad defaults
    for chunk in mic_chunks_16k:                 # float32 [n] at 16 kHz, any n
        for ev in vad.feed(chunk):
            ...                         # SpeechStarted / SpeechPaused / SpeechResumed / SpeechStopped

Silero scores 512-sample frames (32 ms at 16 kHz). Each frame is given with the last 64 samples of the
previous frame in front of it (the model's context) and the LSTM state (h, c) of the previous call, exactly as
faster-whisper's batched call does, so feeding frame by frame gives the same probabilities.

States:
    quiet    --p >= threshold-->                   starting (candidate start = this frame's start)
    starting --speech lasted min_speech_ms-->      speaking  [SpeechStarted(audio_start_ms)]
    starting --p < neg_threshold-->                quiet     (a click, not speech)
    speaking --p < neg_threshold-->                stopping  (candidate end = this frame's start)
    stopping --silence lasted pause_ms-->          stopping  [SpeechPaused(audio_end_ms)]
    stopping --p >= threshold-->                   speaking  [SpeechResumed, if SpeechPaused was sent]
    stopping --silence lasted silence_duration_ms--> quiet   [SpeechStopped(audio_end_ms)]
    speaking, stopping --speech began max_turn_ms ago--> quiet [SpeechStopped(capped=True)]

Positions are ms from the start of the stream (since the last reset). `audio_start_ms`/`audio_end_ms` are the
detected speech boundaries; `padded_start_ms` adds the prefix padding (what OpenAI puts in audio_start_ms),
and `confirmed_ms` is the stream position at which the stop was decided (end + silence_duration_ms).
SpeechPaused marks the first moment of a likely pause (pause_ms): the endpointer starts a speculative
transcription there. A shorter pause_ms answers sooner and starts more transcriptions that a dip between
words abandons (README, "Turn-taking notes").

The utterance's audio is kept until the turn ends, so a turn that never pauses (someone reading aloud, a TV
in the room) is ended after max_turn_ms as if silence had come: the kept audio stays under max_turn_ms plus
the prefix padding, and speech that goes on starts the next turn.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from audio import pcm

FRAME_SAMPLES = 512  # Silero's window at 16 kHz
CONTEXT_SAMPLES = 64  # samples of the previous window the model sees in front of each frame
STATE_SHAPE = (1, 1, 128)  # LSTM h and c
FRAME_MS = pcm.samples_to_ms(FRAME_SAMPLES, pcm.SAMPLE_RATE_ASR)  # 32 ms
MAX_SETTING_MS = 60_000  # no pause, padding or minimum length makes sense beyond a minute
NEG_THRESHOLD_GAP = 0.15  # hysteresis: speech ends below threshold - gap (Silero's own recipe)
# Whisper transcribes 30 s in one window (audio.asr.WHISPER_WINDOW_S), and its token budget (448) runs out
# at ~37 s of speech: a longer turn would cost more and lose its end, so a turn is ended here.
DEFAULT_MAX_TURN_MS = 30_000
MIN_MAX_TURN_MS = 1_000  # a shorter cap would cut ordinary sentences in two


def silero_path() -> Path:
    """The Silero VAD onnx bundled with faster-whisper."""
    try:
        from faster_whisper.utils import get_assets_path
    except ImportError as e:
        raise FileNotFoundError(
            "Silero VAD needs faster-whisper installed (pip install faster-whisper)"
        ) from e
    path = Path(get_assets_path()) / "silero_vad_v6.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"Silero VAD model missing at {path}; reinstall faster-whisper")
    return path


@dataclass
class VadConfig:
    """Voice activity settings; defaults are OpenAI Realtime server_vad's (plus a minimum speech length)."""

    threshold: float = 0.5  # speech probability that starts speech
    prefix_padding_ms: int = 300  # audio kept before the detected start (for ASR and padded_start_ms)
    silence_duration_ms: int = 500  # silence that ends a turn
    min_speech_ms: int = 96  # shorter bursts (clicks, coughs) never become speech (3 frames)
    pause_ms: int = 96  # silence that fires SpeechPaused (speculative ASR); capped at silence_duration_ms
    neg_threshold: float | None = None  # probability below which speech pauses; None: threshold - 0.15
    max_turn_ms: int = DEFAULT_MAX_TURN_MS  # speech this long ends the turn even without a pause

    def __post_init__(self):
        if not (0.0 < self.threshold < 1.0):
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        for name in ("prefix_padding_ms", "silence_duration_ms", "min_speech_ms", "pause_ms"):
            if not 0 <= getattr(self, name) <= MAX_SETTING_MS:
                raise ValueError(f"{name} must be in [0, {MAX_SETTING_MS}] ms, got {getattr(self, name)}")
        if not MIN_MAX_TURN_MS <= self.max_turn_ms <= MAX_SETTING_MS:
            raise ValueError(
                f"max_turn_ms must be in [{MIN_MAX_TURN_MS}, {MAX_SETTING_MS}] ms, got {self.max_turn_ms}"
            )
        if self.neg_threshold is not None and not (0.0 <= self.neg_threshold <= self.threshold):
            raise ValueError(f"neg_threshold must be in [0, threshold], got {self.neg_threshold}")

    @property
    def off_threshold(self) -> float:
        return (
            self.neg_threshold
            if self.neg_threshold is not None
            else max(0.0, self.threshold - NEG_THRESHOLD_GAP)
        )

    def replace(self, **kw) -> VadConfig:
        return replace(self, **kw)


@dataclass
class SpeechStarted:
    audio_start_ms: float  # detected start of speech
    padded_start_ms: float  # start minus prefix padding (clamped at 0): where the utterance audio begins


@dataclass
class SpeechPaused:
    audio_end_ms: float  # the speech may have ended here; not confirmed yet
    audio: np.ndarray = field(
        default_factory=lambda: np.zeros(0, np.float32), repr=False
    )  # padded start..here
    silence_ms: float = 0.0  # how much of `audio` is the silence at its end


@dataclass
class SpeechResumed:
    at_ms: float  # speech came back before silence_duration_ms passed


@dataclass
class SpeechStopped:
    audio_end_ms: float  # detected end of speech
    confirmed_ms: float  # stream position when silence_duration_ms of silence had passed
    audio: np.ndarray = field(
        default_factory=lambda: np.zeros(0, np.float32), repr=False
    )  # padded start..end
    capped: bool = False  # ended by max_turn_ms while the user was still speaking, not by silence


VadEvent = SpeechStarted | SpeechPaused | SpeechResumed | SpeechStopped


class SileroModel:
    """Silero VAD v6 through onnxruntime, one frame per call, keeping context and LSTM state."""

    def __init__(self, path: str | Path | None = None):
        import onnxruntime

        opts = onnxruntime.SessionOptions()
        opts.inter_op_num_threads = 1  # one 512-sample frame is tiny; threads would only add overhead
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 4
        self.session = onnxruntime.InferenceSession(
            str(path or silero_path()), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self.reset()

    def reset(self) -> None:
        self.h = np.zeros(STATE_SHAPE, dtype=np.float32)
        self.c = np.zeros(STATE_SHAPE, dtype=np.float32)
        self.context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)

    def __call__(self, frame: np.ndarray) -> float:
        assert frame.shape == (FRAME_SAMPLES,), frame.shape
        x = np.concatenate([self.context, frame])[None, :]  # [1, CONTEXT + FRAME]
        prob, self.h, self.c = self.session.run(None, {"input": x, "h": self.h, "c": self.c})
        self.context = frame[-CONTEXT_SAMPLES:].copy()
        return float(np.asarray(prob).reshape(-1)[0])


class StreamingVad:
    """Frames in, speech events out. Keeps the audio of the current utterance (with prefix padding)."""

    QUIET, STARTING, SPEAKING, STOPPING = "quiet", "starting", "speaking", "stopping"

    def __init__(self, cfg: VadConfig | None = None, model: SileroModel | None = None):
        self.cfg = cfg or VadConfig()
        self.model = model or SileroModel()
        self.reset()

    def reset(self) -> None:
        self.model.reset()
        self.state = self.QUIET
        self.framer = pcm.Framer(FRAME_SAMPLES)
        self.pos = 0  # samples scored so far (stream position of the next frame)
        self._run_start = 0  # sample where the current starting/stopping run began
        self._speech_start = 0
        self._speech_end = 0
        self._paused = False  # SpeechPaused sent for the current silence run
        # Audio from stream sample self._buf_start on: self._buf[:self._n] (grown by doubling, not per frame).
        self._buf = np.zeros(FRAME_SAMPLES * 64, dtype=np.float32)
        self._n = 0
        self._buf_start = 0
        self.last_prob = 0.0

    # -- feeding --------------------------------------------------------------------------------------
    def feed(self, x: np.ndarray) -> list[VadEvent]:
        """x: float32 [n] at 16 kHz, any n >= 0. Returns the events of every whole frame completed."""
        x = pcm.check_float(x, allow_empty=True)
        events: list[VadEvent] = []
        for frame in self.framer.push(x):
            events.extend(self._step(frame))
        return events

    def _step(self, frame: np.ndarray) -> list[VadEvent]:
        p = self.last_prob = self.model(frame)
        start, self.pos = self.pos, self.pos + FRAME_SAMPLES
        self._keep(frame)
        cfg, ev = self.cfg, []
        if self.state == self.QUIET and p >= cfg.threshold:
            self.state, self._run_start = self.STARTING, start
        if self.state == self.STARTING:
            if p < cfg.off_threshold:
                self.state = self.QUIET
            elif self._ms(self.pos - self._run_start) >= max(cfg.min_speech_ms, FRAME_MS):
                self.state = self.SPEAKING
                self._speech_start = self._run_start
                s = self._ms(self._speech_start)
                ev.append(SpeechStarted(s, max(0.0, s - cfg.prefix_padding_ms)))
        elif self.state == self.SPEAKING and p < cfg.off_threshold:
            self.state, self._run_start, self._paused = self.STOPPING, start, False
            self._speech_end = start
        if self.state == self.STOPPING:
            silent_ms = self._ms(self.pos - self._run_start)
            if p >= cfg.threshold:
                self.state = self.SPEAKING
                if self._paused:
                    ev.append(SpeechResumed(self._ms(start)))
            else:
                if not self._paused and silent_ms >= min(cfg.pause_ms, cfg.silence_duration_ms):
                    self._paused = True
                    here = self._ms(self.pos)
                    ev.append(SpeechPaused(self._ms(self._speech_end), self.speech_audio(here), silent_ms))
                if silent_ms >= cfg.silence_duration_ms:
                    self.state = self.QUIET
                    ev.append(self._stopped())
        if self.state in (self.SPEAKING, self.STOPPING) and self._ms(self.pos - self._speech_start) >= (
            cfg.max_turn_ms
        ):
            ev.append(self._cap())
        return ev

    def _cap(self) -> SpeechStopped:
        """The turn reached max_turn_ms: it ends now, where its speech is (or where it paused)."""
        if self.state == self.SPEAKING:
            self._speech_end = self.pos
        self.state = self.QUIET
        return self._stopped(capped=True)

    def flush(self) -> list[VadEvent]:
        """End of stream: close an open utterance (its end is the pause point, or the end of the audio)."""
        rest = self.framer.pending
        events = self.feed(np.zeros(FRAME_SAMPLES - rest, np.float32)) if rest else []
        if self.state == self.SPEAKING:
            self._speech_end = self.pos
        if self.state in (self.SPEAKING, self.STOPPING):
            events.append(self._stopped())
        self.state = self.QUIET
        return events

    @property
    def speech_end_ms(self) -> float:
        """Where the current (or last) utterance's speech ended, so far."""
        return self._ms(self._speech_end)

    @property
    def silence_ms(self) -> float:
        """How long the current pause has lasted (0 unless speech is pausing)."""
        return self._ms(self.pos - self._run_start) if self.state == self.STOPPING else 0.0

    def end_turn(self) -> SpeechStopped | None:
        """Someone else decided the pause ends the turn (a semantic end-of-turn judge): stop now, as if
        silence_duration_ms had passed. None unless speech is pausing."""
        if self.state != self.STOPPING:
            return None
        self.state = self.QUIET
        return self._stopped()

    def _stopped(self, capped: bool = False) -> SpeechStopped:
        end, now = self._ms(self._speech_end), self._ms(self.pos)
        return SpeechStopped(end, now, self.speech_audio(now), capped=capped)

    # -- audio access ---------------------------------------------------------------------------------
    def _keep(self, frame: np.ndarray) -> None:
        if self._n + len(frame) > len(self._buf):
            grown = np.zeros(2 * len(self._buf), dtype=np.float32)
            grown[: self._n] = self._buf[: self._n]
            self._buf = grown
        self._buf[self._n : self._n + len(frame)] = frame
        self._n += len(frame)
        if self.state == self.QUIET:
            # Only the prefix padding (plus the frames a start decision needs) matters while quiet.
            keep = (
                self._samples(self.cfg.prefix_padding_ms + max(self.cfg.min_speech_ms, FRAME_MS))
                + FRAME_SAMPLES
            )
            if self._n > 2 * keep:  # trim in bulk, not every frame
                drop = self._n - keep
                self._buf[:keep] = self._buf[drop : self._n]
                self._n, self._buf_start = keep, self._buf_start + drop

    def audio(self, start_ms: float, end_ms: float | None = None) -> np.ndarray:
        """Audio between two stream positions (clamped to what is kept): float32 [n]."""
        a = max(self._samples(start_ms), self._buf_start) - self._buf_start
        b = self._n if end_ms is None else max(a, min(self._samples(end_ms) - self._buf_start, self._n))
        return self._buf[a:b].copy()

    def speech_audio(self, end_ms: float | None = None) -> np.ndarray:
        """The current (or last) utterance from its padded start to `end_ms` (default: now)."""
        start = max(0.0, self._ms(self._speech_start) - self.cfg.prefix_padding_ms)
        return self.audio(start, end_ms)

    @staticmethod
    def _ms(samples: int) -> float:
        return pcm.samples_to_ms(samples, pcm.SAMPLE_RATE_ASR)

    @staticmethod
    def _samples(ms: float) -> int:
        return pcm.ms_to_samples(ms, pcm.SAMPLE_RATE_ASR)
