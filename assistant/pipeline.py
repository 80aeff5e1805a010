"""One conversation as a streaming pipeline, and the one place where blocking engines meet asyncio.

    engines = Engines.load(ModelsConfig())              # once per process; shared by all sessions
    session = Session(engines, SessionConfig())
    await session.push_audio(x, rate)                    # server VAD: turns end and replies start by themselves
    frame = await session.out.get()                      # frames.py: what the transport sends or plays

Stages, joined by bounded asyncio queues:

    push_audio -> [audio queue] -> endpointing (VAD + speculative Whisper, audio.asr.Endpointer)
        -> user transcript -> history -> reply: DlmEngine.reply stream -> sentence chunker
        -> [piece queue] -> piper -> reply audio -> [out queue] -> transport

Engines are synchronous iterators; `ThreadIter` pulls them one item per `asyncio.to_thread(next, it)`, so
an interruption takes effect between two steps (one diffusion step, one piper piece).

Barge-in: user speech during a reply advances the turn id first (every queued reply frame is stale from
that moment and the transport drops it), then cancels the reply task, which closes the LM and TTS
iterators. The history keeps the part of the reply that was played (`SpokenReply`), and a later
`truncate()` from the client (which knows what it played) corrects it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from assistant import frames as F
from assistant.config import ModelsConfig, SessionConfig
from assistant.turns import SpokenReply, Turns, new_id
from audio import pcm
from audio.asr import EndpointConfig, Endpointer, Transcriber, Turn
from audio.tts import SentenceChunker, Synthesizer
from audio.vad import SpeechStarted, SpeechStopped

AUDIO_QUEUE_CHUNKS = 256  # input chunks waiting for the VAD (a client may send faster than real time)
PIECE_QUEUE = 8  # sentences waiting for piper
AUDIO_FRAME_MS = 100  # reply audio leaves in frames this long (the granularity of pacing and barge-in)
OUT_QUEUE_FRAMES = 512  # frames waiting for the transport
ARRIVALS_KEPT = 2048  # input chunk arrival times kept to map stream positions to wall time
MAX_MANUAL_SAMPLES = 10 * 60 * pcm.SAMPLE_RATE_ASR  # manual mode keeps at most 10 minutes uncommitted
TRUNCATE_SLACK_MS = 100.0  # a client's played position may overshoot the audio by its rounding
_FEED, _FLUSH, _RESET = "feed", "flush", "reset"  # what the input loop does with a queue entry
_END = object()  # what ThreadIter.next returns once the iterator is exhausted


# ---------------------------------------------------------------------------------------------- bridge


class ThreadIter:
    """A blocking iterator pulled from asyncio, one item per worker-thread call.

    `lock` serialises items of iterators that share one engine (piper is not re-entrant). Cancelling
    the awaiting task leaves the current item running in its thread; `aclose` waits for it, then closes
    the iterator, so a generator is never closed while it executes.
    """

    def __init__(self, it: Iterator, lock: threading.Lock | None = None):
        self.it, self.lock = it, lock
        self._step: asyncio.Future | None = None

    def _next(self):
        if self.lock is None:
            return next(self.it, _END)
        with self.lock:
            return next(self.it, _END)

    async def next(self):
        self._step = asyncio.ensure_future(asyncio.to_thread(self._next))
        return await asyncio.shield(self._step)

    async def aclose(self) -> None:
        if self._step is not None and not self._step.done():
            with contextlib.suppress(BaseException):
                await self._step
        close = getattr(self.it, "close", None)
        if close is not None:
            await asyncio.to_thread(close)


async def blocking(fn: Callable, *args) -> Any:
    """Run one blocking call (a Whisper pass, a device read) in a worker thread."""
    return await asyncio.to_thread(fn, *args)


# --------------------------------------------------------------------------------------------- engines


class LockedTranscriber:
    """One Whisper model shared by every session: one transcription at a time."""

    def __init__(self, asr: Transcriber):
        self.asr, self._lock = asr, threading.Lock()
        self.name = asr.name

    def transcribe(self, x: np.ndarray):
        with self._lock:
            return self.asr.transcribe(x)


@dataclass
class Engines:
    """The models of one process, loaded once and shared by every session."""

    lm: Any  # dlm_core.engine.DlmEngine (or None where a command needs no LM)
    asr: LockedTranscriber | None = None
    tts: Synthesizer | None = None
    tts_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(cls, models: ModelsConfig, lm: bool = True, asr: bool = True, tts: bool = True) -> Engines:
        """Raises FileNotFoundError (with what to install or pass) when a model is missing."""
        engine = None
        if lm:
            from dlm_core.engine import DlmEngine

            engine = DlmEngine.load(models.model, device=models.device)
        return cls(
            lm=engine,
            asr=LockedTranscriber(Transcriber.load(models.asr_model)) if asr else None,
            tts=Synthesizer.load(models.voice) if tts else None,
        )

    def describe(self) -> dict:
        """Which models are loaded (for /healthz)."""
        lm_path = getattr(getattr(self.lm, "loaded", None), "path", None)
        return {
            "lm": str(lm_path) if lm_path else None,
            "lm_family": getattr(self.lm, "family", None),
            "asr": self.asr.name if self.asr else None,
            "tts": str(self.tts.path) if self.tts else None,
        }

    def close(self) -> None:
        if self.lm is not None:
            self.lm.close()


# --------------------------------------------------------------------------------------------- metrics


@dataclass
class TurnClock:
    """perf_counter marks of one turn. Durations in ms; voice_to_voice is end of user speech (the VAD's
    speech end, mapped to the wall time that audio arrived) to the first reply audio sent."""

    speech_end: float | None = None  # user stopped talking (VAD end position), or a manual commit
    stop_decided: float | None = None  # endpointing decided the turn is over
    transcript: float | None = None  # the transcript was ready
    response_start: float | None = None
    first_text: float | None = None
    first_audio: float | None = None

    def latency_ms(self) -> dict:
        def span(a, b):
            return None if a is None or b is None else round((b - a) * 1000.0, 1)

        return {
            "endpointing": span(self.speech_end, self.stop_decided),
            "asr": span(self.stop_decided, self.transcript),
            "first_text": span(self.response_start, self.first_text),
            "first_audio": span(self.response_start, self.first_audio),
            "voice_to_voice": span(self.speech_end, self.first_audio),
        }


# --------------------------------------------------------------------------------------------- session


@dataclass
class _Reply:
    response_id: str
    item_id: str
    turn_id: int
    clock: TurnClock
    modalities: tuple[str, ...]
    cfg: SessionConfig  # the session's settings with this response's overrides
    spoken: SpokenReply = field(default_factory=SpokenReply)
    text: str = ""
    task: asyncio.Task | None = None


class Session:
    """One conversation: its settings, history, endpointer and at most one reply at a time."""

    def __init__(
        self,
        engines: Engines,
        cfg: SessionConfig | None = None,
        session_id: str | None = None,
        on_turn: Callable[[dict], None] | None = None,
    ):
        self.e = engines
        self.cfg = cfg or SessionConfig()
        self.id = session_id or new_id("sess")
        self.on_turn = on_turn  # called with each finished turn's metrics (the server's /metrics)
        self.turns = Turns()
        self.out: asyncio.Queue[F.Frame] = asyncio.Queue(OUT_QUEUE_FRAMES)
        self.history: list[dict] = []  # {"id", "role", "text"} in conversation order
        self.reply: _Reply | None = None
        self._spoken: dict[str, SpokenReply] = {}  # assistant item id -> its audio timeline (for truncate)
        self._audio_q: asyncio.Queue = asyncio.Queue(AUDIO_QUEUE_CHUNKS)
        self._resampler: pcm.StreamResampler | None = None
        self._resample_from = 0
        self._manual: list[np.ndarray] = []  # manual mode: 16 kHz audio since the last commit/clear
        self._pos = 0  # 16 kHz samples the endpointer has been fed (its stream position)
        self._arrivals: deque[tuple[float, float]] = deque(maxlen=ARRIVALS_KEPT)  # (stream end ms, wall)
        self._user_item: str | None = None  # the user item the current speech will become
        self._clock: TurnClock | None = None
        self._ep: Endpointer | None = None
        self._input_task: asyncio.Task | None = None
        self._closed = False
        self._configure_input()

    # -- settings -------------------------------------------------------------------------------------
    def update(self, cfg: SessionConfig) -> None:
        vad_changed = cfg.turn_detection != self.cfg.turn_detection
        self.cfg = cfg
        if vad_changed:
            self._configure_input()

    def _configure_input(self) -> None:
        if self._ep is not None:
            ep, self._ep = self._ep, None
            threading.Thread(target=ep.close, daemon=True).start()  # may wait for a Whisper call
        self._manual.clear()
        self._pos = 0
        self._arrivals.clear()
        if self.cfg.turn_detection is not None and self.e.asr is not None:
            self._ep = Endpointer(EndpointConfig(vad=self.cfg.turn_detection), self.e.asr)

    # -- output ---------------------------------------------------------------------------------------
    async def emit(self, frame: F.Frame) -> None:
        # After close() nobody reads `out`: dropping keeps a full queue from blocking the shutdown.
        if not self._closed and not self.turns.is_stale(frame):
            await self.out.put(frame)

    async def error(self, code: str, message: str, param: str | None = None, event_id: str | None = None):
        await self.emit(F.ErrorFrame(self.turns.current, code, message, param, event_id))

    def last_item_id(self) -> str | None:
        return self.history[-1]["id"] if self.history else None

    # -- input audio ----------------------------------------------------------------------------------
    async def push_audio(self, x: np.ndarray, rate: int) -> None:
        """x: float32 [n] mono at `rate`. Queued for the endpointer (server VAD) or buffered (manual)."""
        if self._resampler is None or self._resample_from != rate:
            self._resampler = (
                pcm.StreamResampler(rate, pcm.SAMPLE_RATE_ASR) if rate != pcm.SAMPLE_RATE_ASR else None
            )
            self._resample_from = rate
        x16 = self._resampler.push(x) if self._resampler is not None else x
        if self._ep is None:
            if sum(map(len, self._manual)) + len(x16) > MAX_MANUAL_SAMPLES:
                await self.error(
                    "input_audio_buffer_full", "the input audio buffer holds 10 minutes; commit or clear it"
                )
                return
            self._manual.append(x16)
            return
        await self._to_endpointer(_FEED, x16)

    async def _to_endpointer(self, op: str, x16: np.ndarray | None = None) -> None:
        """The endpointer is not thread-safe: audio, flushes and resets reach it in order through one queue."""
        if self._input_task is None:
            self._input_task = asyncio.create_task(self._input_loop())
        await self._audio_q.put((op, x16, time.perf_counter()))

    async def _input_loop(self) -> None:
        while True:
            op, x16, arrived = await self._audio_q.get()
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
            except Exception as exc:  # noqa: BLE001 -- a failing Whisper call must not end the session
                await self.error("transcription_failed", f"{type(exc).__name__}: {exc}")
                continue
            if op == _FLUSH and not any(isinstance(e, Turn) for e in events):
                await self.error("input_audio_buffer_commit_empty", "no speech in the input audio buffer")
            if ep is self._ep:
                for ev in events:
                    await self._on_endpoint(ev)

    def _wall_at(self, ms: float) -> float:
        """Wall time at which the audio at stream position `ms` arrived."""
        for end_ms, t in self._arrivals:
            if end_ms >= ms:
                return t
        return time.perf_counter()

    async def _on_endpoint(self, ev) -> None:
        if isinstance(ev, SpeechStarted):
            self._user_item = new_id("item")
            stopped = self._stop_reply() if self.cfg.interrupt_response else None  # barge-in
            await self.emit(F.SpeechStarted(self.turns.current, self._user_item, ev.padded_start_ms))
            if stopped is not None:
                await self._report_stop(stopped, "turn_detected")
            elif self.cfg.interrupt_response:
                self._cut_last_reply()
        elif isinstance(ev, SpeechStopped):
            item = self._user_item or new_id("item")
            self._user_item = item
            # The VAD decided at stream position confirmed_ms; feed() returns later, once Whisper is done.
            self._clock = TurnClock(
                speech_end=self._wall_at(ev.audio_end_ms), stop_decided=self._wall_at(ev.confirmed_ms)
            )
            await self.emit(F.SpeechStopped(self.turns.current, item, ev.audio_end_ms))
            await self.emit(F.Committed(self.turns.current, item, self.last_item_id()))
        elif isinstance(ev, Turn):
            clock = self._clock or TurnClock()
            clock.transcript = time.perf_counter()
            item, self._user_item, self._clock = self._user_item or new_id("item"), None, None
            await self._user_said(item, ev.text, clock, auto_reply=self.cfg.create_response)

    async def _user_said(self, item: str, text: str, clock: TurnClock, auto_reply: bool) -> None:
        text = text.strip()
        await self.emit(F.UserTranscript(self.turns.current, item, text))
        self.history.append({"id": item, "role": "user", "text": text})
        if text and auto_reply and self.reply is None:
            await self.create_response(clock)

    async def commit(self) -> None:
        """Manual turn end (input_audio_buffer.commit): the buffered audio becomes a user item."""
        if self._ep is not None:
            await self._to_endpointer(_FLUSH)  # server VAD: ends the current turn now
            return
        audio = np.concatenate(self._manual) if self._manual else np.zeros(0, np.float32)
        self._manual.clear()
        if audio.size == 0:
            await self.error("input_audio_buffer_commit_empty", "the input audio buffer is empty")
            return
        clock = TurnClock(speech_end=time.perf_counter())
        clock.stop_decided = clock.speech_end
        item = new_id("item")
        await self.emit(F.Committed(self.turns.current, item, self.last_item_id()))
        tr = await blocking(self.e.asr.transcribe, audio)
        clock.transcript = time.perf_counter()
        self._clock = clock  # the next response.create continues this turn's clock
        await self._user_said(item, tr.text, clock, auto_reply=False)

    async def clear_audio(self) -> None:
        self._manual.clear()
        if self._ep is not None:
            await self._to_endpointer(_RESET)
        self._user_item = None

    async def add_text(self, text: str, role: str = "user") -> str:
        item = new_id("item")
        await self.emit(F.UserText(self.turns.current, item, self.last_item_id(), text))
        self.history.append({"id": item, "role": role, "text": text})
        return item

    # -- replies --------------------------------------------------------------------------------------
    async def create_response(
        self,
        clock: TurnClock | None = None,
        modalities: tuple[str, ...] | None = None,
        overrides: dict | None = None,
    ):
        """Start a reply to the conversation so far. `overrides`: SessionConfig fields for this reply only."""
        if self.reply is not None:
            await self.error("conversation_already_has_active_response", "a response is already in progress")
            return None
        clock = clock or self._clock or TurnClock()
        self._clock = None
        clock.response_start = time.perf_counter()
        turn = self.turns.advance()
        cfg = self.cfg.replace(**(overrides or {}))
        reply = _Reply(new_id("resp"), new_id("item"), turn, clock, modalities or cfg.output_modalities, cfg)
        self.reply = reply
        await self.emit(F.ResponseStarted(turn, reply.response_id, reply.item_id, reply.modalities))
        reply.task = asyncio.create_task(self._respond(reply))
        return reply

    async def cancel(self, reason: str = "client_cancelled") -> bool:
        """Stop the current reply now (barge-in or response.cancel). False if none was running."""
        reply = self._stop_reply()
        if reply is None:
            return False
        await self._report_stop(reply, reason)
        return True

    def _stop_reply(self) -> _Reply | None:
        """The synchronous half of a cancel: from its return on, no frame of the reply reaches the transport."""
        reply = self.reply
        if reply is None:
            return None
        self.turns.advance()
        self.reply = None
        reply.task.cancel()  # closes the LM and TTS iterators between two steps
        return reply

    async def _report_stop(self, reply: _Reply, reason: str) -> None:
        played = reply.spoken.played_ms() if "audio" in reply.modalities else None
        text = reply.text.strip() if played is None else reply.spoken.text_until(played)
        await self.emit(F.Interrupted(self.turns.current, reply.response_id, reply.item_id, played or 0.0))
        await self._finish(reply, "cancelled", text, reason)

    async def _respond(self, reply: _Reply) -> None:
        speaks = "audio" in reply.modalities and self.e.tts is not None
        lm = ThreadIter(self.e.lm.reply(self.messages(reply.cfg), reply.cfg.sampler(), session_id=self.id))
        pieces: asyncio.Queue = asyncio.Queue(PIECE_QUEUE)
        tts = asyncio.create_task(self._speak(reply, pieces)) if speaks else None
        chunker = SentenceChunker(self.e.tts.cfg.chunker if speaks else None)
        try:
            while (c := await lm.next()) is not _END:
                if c.text:
                    if reply.clock.first_text is None:
                        reply.clock.first_text = time.perf_counter()
                    reply.text += c.text
                    await self.emit(
                        F.TextDelta(reply.turn_id, reply.response_id, reply.item_id, c.text, speaks)
                    )
                    for piece in chunker.push(c.text) if speaks else ():
                        await pieces.put(piece)
                if c.done:
                    break
            if tts is not None:
                for piece in chunker.flush():
                    await pieces.put(piece)
                await pieces.put(None)
                await tts
        except asyncio.CancelledError:
            if tts is not None:
                tts.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 -- reported as a failed response, the session lives on
            if tts is not None:
                tts.cancel()
            if self.reply is reply:
                self.reply = None
                self.turns.advance()
                await self.error("response_failed", f"{type(exc).__name__}: {exc}")
                await self._finish(reply, "failed", reply.text, str(exc))
            return
        finally:
            await lm.aclose()
        if self.reply is reply:
            self.reply = None
            await self._finish(reply, "completed", reply.text.strip(), None)

    async def _speak(self, reply: _Reply, pieces: asyncio.Queue) -> None:
        while (piece := await pieces.get()) is not None:
            it = ThreadIter(self.e.tts.synthesize_piece(piece, rate=pcm.SAMPLE_RATE_API), self.e.tts_lock)
            try:
                while (chunk := await it.next()) is not _END:
                    step = pcm.ms_to_samples(AUDIO_FRAME_MS, chunk.sample_rate)
                    for i in range(0, len(chunk.samples), step):
                        await self._pace(reply)
                        if reply.turn_id != self.turns.current:
                            return
                        x = chunk.samples[i : i + step]
                        reply.spoken.add(piece, pcm.samples_to_ms(len(x), chunk.sample_rate))
                        if reply.clock.first_audio is None:
                            reply.clock.first_audio = time.perf_counter()
                        await self.emit(
                            F.AudioOut(
                                reply.turn_id, reply.response_id, reply.item_id, x, chunk.sample_rate, piece
                            )
                        )
            finally:
                await it.aclose()

    async def _pace(self, reply: _Reply) -> None:
        """Keep the audio sent at most audio_lead_ms ahead of real-time playback, so that what is not
        played yet is still ours to drop on barge-in (and `played_ms` stays a good estimate)."""
        lead = reply.cfg.audio_lead_ms
        if lead is not None and reply.spoken.first_audio_at is not None:
            ahead = reply.spoken.audio_ms - reply.spoken.played_ms()
            if ahead > lead:
                await asyncio.sleep((ahead - lead) / 1000.0)

    async def _finish(self, reply: _Reply, status: str, text: str, reason: str | None) -> None:
        self.history.append({"id": reply.item_id, "role": "assistant", "text": text})
        self._spoken[reply.item_id] = reply.spoken
        self._trim_history()
        metrics = reply.clock.latency_ms()
        await self.emit(
            F.ResponseDone(
                self.turns.current,
                reply.response_id,
                reply.item_id,
                status,
                text,
                reply.modalities,
                reason,
                reply.spoken.audio_ms,
                metrics,
            )
        )
        if self.on_turn is not None:
            self.on_turn(
                {
                    "session_id": self.id,
                    "response_id": reply.response_id,
                    "item_id": reply.item_id,
                    "status": status,
                    "latency_ms": metrics,
                }
            )

    def truncate(self, item_id: str, audio_end_ms: float) -> str:
        """The client played only `audio_end_ms` of an assistant item: keep that much of its text."""
        item = next((h for h in self.history if h["id"] == item_id), None)
        if item is None or item["role"] != "assistant":
            raise KeyError(item_id)
        spoken = self._spoken.get(item_id)
        if spoken is None or audio_end_ms > spoken.audio_ms + TRUNCATE_SLACK_MS:
            raise ValueError(
                f"audio_end_ms {audio_end_ms} is past the item's audio ({spoken.audio_ms if spoken else 0} ms)"
            )
        item["text"] = spoken.text_until(audio_end_ms)
        return item["text"]

    def _cut_last_reply(self) -> None:
        """Barge-in after a reply was all sent but before it was all played (the client's last audio_lead_ms)."""
        last = self.history[-1] if self.history else None
        spoken = self._spoken.get(last["id"]) if last and last["role"] == "assistant" else None
        if spoken is not None and spoken.played_ms() < spoken.audio_ms:
            last["text"] = spoken.text_until(spoken.played_ms())

    def delete_item(self, item_id: str) -> None:
        before = len(self.history)
        self.history = [h for h in self.history if h["id"] != item_id]
        if len(self.history) == before:
            raise KeyError(item_id)

    # -- history --------------------------------------------------------------------------------------
    def messages(self, cfg: SessionConfig | None = None) -> list[dict]:
        cfg = cfg or self.cfg
        msgs = [{"role": "system", "content": cfg.instructions}] if cfg.instructions else []
        return msgs + [{"role": h["role"], "content": h["text"]} for h in self.history if h["text"]]

    def _trim_history(self) -> None:
        """Drop the oldest items while the conversation would not fit the model's context with a reply."""
        lm = self.e.lm
        budget = lm.context_len - self.cfg.max_output_tokens
        while len(self.history) > 1 and len(lm.tokenizer.chat_prompt(self.messages())) > budget:
            dropped = self.history.pop(0)
            self._spoken.pop(dropped["id"], None)

    # -- lifetime -------------------------------------------------------------------------------------
    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.cancel("session_closed")
        if self._input_task is not None:
            self._input_task.cancel()
            with contextlib.suppress(BaseException):
                await self._input_task
        if self._ep is not None:
            await blocking(self._ep.close)
            self._ep = None
