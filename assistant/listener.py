"""The input side of a session: the user's audio, resampled to 16 kHz, to endpointing events.

With turns ended by the server (`configure(EndpointConfig)`: server_vad or semantic_vad) audio goes
through one queue to an `turn_taking.endpoint.Endpointer` (VAD + speculative Whisper + the end-of-turn judge),
which is not thread-safe: audio, flushes and resets reach it in order. Its events (speech started,
turn likely, speech resumed, speech stopped, transcribed turns) go to the session's `on_event`. Without
it (manual turns) the audio is buffered until the client commits or clears it.

Each chunk's arrival time is kept, so an event's stream position maps back to the wall time that audio
arrived: the start of the voice-to-voice clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable

import numpy as np

from assistant.bridge import blocking
from audio import pcm
from turn_taking.endpoint import EndpointConfig, Endpointer, EndpointError, TurnTranscript

AUDIO_QUEUE_CHUNKS = 256  # input chunks waiting for the VAD (a client may send faster than real time)
ARRIVALS_KEPT = 2048  # input chunk arrival times kept to map stream positions to wall time
MAX_MANUAL_MINUTES = 10  # manual mode keeps at most this much uncommitted audio
MAX_MANUAL_SAMPLES = MAX_MANUAL_MINUTES * 60 * pcm.SAMPLE_RATE_ASR
_FEED, _FLUSH, _RESET = "feed", "flush", "reset"  # what the input loop does with a queue entry

OnEvent = Callable[[object], Awaitable[None]]  # turn_taking.endpoint.EndpointEvent
OnError = Callable[[str, str], Awaitable[None]]  # (code, message)


class Listener:
    def __init__(self, asr, on_event: OnEvent, on_error: OnError, judge=None):
        self.asr = asr  # a shared, locked Transcriber (engines.LockedTranscriber), or None
        self.judge = (
            judge  # the end-of-turn judge for semantic endpointing (turn_taking.endpoint.TurnJudge), or None
        )
        self._on_event, self._on_error = on_event, on_error
        self._queue: asyncio.Queue = asyncio.Queue(AUDIO_QUEUE_CHUNKS)
        self._resampler: pcm.StreamResampler | None = None
        self._resample_from = 0
        self._manual: list[np.ndarray] = []  # manual mode: 16 kHz audio since the last commit/clear
        self._manual_samples = 0  # their total length, kept so a push need not add them up again
        self._pos = 0  # 16 kHz samples the endpointer has been fed (its stream position)
        self._arrivals: deque[tuple[float, float]] = deque(maxlen=ARRIVALS_KEPT)  # (stream end ms, wall)
        self._ep: Endpointer | None = None
        self._task: asyncio.Task | None = None

    @property
    def server_vad(self) -> bool:
        return self._ep is not None

    def configure(self, cfg: EndpointConfig | None) -> None:
        """Turns ended by the server with these settings, or manual turns (None). Drops buffered audio."""
        if self._ep is not None:
            ep, self._ep = self._ep, None
            threading.Thread(target=ep.close, daemon=True).start()  # may wait for a Whisper call
        self._drop_manual()
        self._pos = 0
        self._arrivals.clear()
        if cfg is not None and self.asr is not None:
            self._ep = Endpointer(cfg, self.asr, judge=self.judge)

    async def push(self, x: np.ndarray, rate: int) -> None:
        """x: float32 [n] mono at `rate`. Queued for the endpointer (server VAD) or buffered (manual)."""
        x16 = self._to_16k(x, rate)
        if self._ep is not None:
            await self._send(_FEED, x16)
        elif self._manual_samples + len(x16) > MAX_MANUAL_SAMPLES:
            await self._on_error(
                "input_audio_buffer_full",
                f"the input audio buffer holds {MAX_MANUAL_MINUTES} minutes; commit or clear it",
            )
        else:
            self._manual.append(x16)
            self._manual_samples += len(x16)

    async def flush(self) -> None:
        """Server VAD: end the current turn now (the endpointer transcribes what it has)."""
        await self._send(_FLUSH)

    def take_buffer(self) -> np.ndarray:
        """Manual mode: the audio since the last commit or clear (float32 [n] at 16 kHz), now emptied."""
        audio = np.concatenate(self._manual) if self._manual else np.zeros(0, np.float32)
        self._drop_manual()
        return audio

    async def clear(self) -> None:
        self._drop_manual()
        if self._ep is not None:
            await self._send(_RESET)

    def wall_at(self, ms: float) -> float:
        """Wall time at which the audio at stream position `ms` arrived."""
        for end_ms, t in self._arrivals:
            if end_ms >= ms:
                return t
        return time.perf_counter()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        if self._ep is not None:
            await blocking(self._ep.close)
            self._ep = None

    def _drop_manual(self) -> None:
        self._manual.clear()
        self._manual_samples = 0

    def _to_16k(self, x: np.ndarray, rate: int) -> np.ndarray:
        if self._resampler is None or self._resample_from != rate:
            resample = rate != pcm.SAMPLE_RATE_ASR
            self._resampler = pcm.StreamResampler(rate, pcm.SAMPLE_RATE_ASR) if resample else None
            self._resample_from = rate
        return self._resampler.push(x) if self._resampler is not None else x

    async def _send(self, op: str, x16: np.ndarray | None = None) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop())
        await self._queue.put((op, x16, time.perf_counter()))

    async def _loop(self) -> None:
        while True:
            op, x16, arrived = await self._queue.get()
            ep = self._ep
            if ep is None:
                continue
            if op == _RESET:
                await blocking(ep.reset)
                continue
            if op == _FEED:
                self._pos += len(x16)
                self._arrivals.append((pcm.samples_to_ms(self._pos, pcm.SAMPLE_RATE_ASR), arrived))
            try:
                events = await blocking(ep.feed, x16) if op == _FEED else await blocking(ep.flush)
            except Exception as exc:  # noqa: BLE001 -- the endpointer reports its stages' failures itself;
                # anything else must not end the session either
                await self._on_error("input_audio_failed", f"{type(exc).__name__}: {exc}")
                continue
            if op == _FLUSH and not any(isinstance(e, TurnTranscript) for e in events):
                await self._on_error("input_audio_buffer_commit_empty", "no speech in the input audio buffer")
            if ep is self._ep:  # not reconfigured meanwhile
                for ev in events:
                    if isinstance(ev, EndpointError):
                        await self._on_error(ev.code, ev.message)
                    else:
                        await self._on_event(ev)
