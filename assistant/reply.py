"""One reply, streamed: the LM's committed text -> sentence chunks -> piper -> paced audio frames.

    reply = Reply(response_id, item_id, turn_id, clock, modalities, cfg)
    await ReplyStream(reply, engines, emit, turns).run(messages, session_id)

The LM and piper are synchronous iterators pulled through `ThreadIter`, so cancelling the task that runs
`run()` stops both between two steps. Frames are stamped with the reply's turn id; once an interruption
advances the session's turn, `emit` drops them and the speaker stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from assistant import frames as F
from assistant.bridge import END, ThreadIter
from assistant.config import SessionConfig
from assistant.engines import Engines
from assistant.metrics import TurnClock
from assistant.turns import SpokenReply, Turns
from audio import pcm
from audio.tts import SentenceChunker

PIECE_QUEUE = 8  # sentences waiting for piper
AUDIO_FRAME_MS = 100  # reply audio leaves in frames this long (the granularity of pacing and barge-in)


@dataclass
class Reply:
    response_id: str
    item_id: str
    turn_id: int
    clock: TurnClock
    modalities: tuple[str, ...]
    cfg: SessionConfig  # the session's settings with this response's overrides
    spoken: SpokenReply = field(default_factory=SpokenReply)
    text: str = ""
    task: asyncio.Task | None = None
    # A speculative reply (started in the user's pause, before the end of the turn is confirmed) is held:
    # its text frames wait in `held` and its audio waits for `released`, so nothing reaches the client
    # unless the turn really ended. Other replies are released from the start.
    released: asyncio.Event = field(default_factory=asyncio.Event)
    held: list = field(default_factory=list)
    user_text: str = ""  # speculative: the transcript it answers
    nfe: int = 0  # forward passes the LM spent on it
    synthesized_ms: float = 0.0  # audio piper made for it (sent or not)


class ReplyStream:
    def __init__(
        self, reply: Reply, engines: Engines, emit: Callable[[F.Frame], Awaitable[None]], turns: Turns
    ):
        self.reply, self.engines, self._emit, self.turns = reply, engines, emit, turns
        self.speaks = "audio" in reply.modalities and engines.tts is not None

    async def run(self, messages: list[dict], session_id: str) -> None:
        """Stream the reply to `messages`. Raises what the LM or piper raised; cancel to stop it."""
        r = self.reply
        sampler = r.cfg.sampler(self.engines.lm.family)
        lm = ThreadIter(self.engines.lm.reply(messages, sampler, session_id=session_id))
        pieces: asyncio.Queue = asyncio.Queue(PIECE_QUEUE)
        tts = asyncio.create_task(self._speak(pieces)) if self.speaks else None
        chunker = SentenceChunker(self.engines.tts.cfg.chunker) if self.speaks else None
        try:
            while (c := await lm.next()) is not END:
                r.nfe = c.nfe
                if c.text:
                    await self._text(c.text, chunker, pieces, tts)
                if c.done:
                    break
            if tts is not None:
                for piece in [*chunker.flush(), None]:  # None: the end of the reply
                    await _put(pieces, piece, tts)
                await tts
        except BaseException:
            if tts is not None:
                tts.cancel()
                with contextlib.suppress(BaseException):
                    await tts  # returns once its current piper piece is done
            raise
        finally:
            await lm.aclose()

    async def emit(self, frame: F.Frame) -> None:
        if self.reply.released.is_set():
            await self._emit(frame)
        else:
            self.reply.held.append(frame)

    async def _text(self, text: str, chunker, pieces: asyncio.Queue, tts: asyncio.Task | None) -> None:
        r = self.reply
        if r.clock.first_text is None:
            r.clock.first_text = time.perf_counter()
        r.text += text
        await self.emit(F.TextDelta(r.turn_id, r.response_id, r.item_id, text, self.speaks))
        for piece in chunker.push(text) if chunker is not None else ():
            await _put(pieces, piece, tts)

    async def _speak(self, pieces: asyncio.Queue) -> None:
        while (piece := await pieces.get()) is not None:
            tts = self.engines.tts.synthesize_piece(piece, rate=pcm.SAMPLE_RATE_API)
            it = ThreadIter(tts, self.engines.tts_lock)
            try:
                while (chunk := await it.next()) is not END:
                    if not await self._send_audio(piece, chunk.samples, chunk.sample_rate):
                        return
            finally:
                await it.aclose()

    async def _send_audio(self, piece: str, samples, rate: int) -> bool:
        """Send one synthesized chunk in AUDIO_FRAME_MS frames, paced; False once the reply is stale."""
        r = self.reply
        r.synthesized_ms += pcm.samples_to_ms(len(samples), rate)
        await r.released.wait()  # a held reply's first audio waits here, already synthesized
        step = pcm.ms_to_samples(AUDIO_FRAME_MS, rate)
        for i in range(0, len(samples), step):
            await self._pace()
            if r.turn_id != self.turns.current:
                return False
            x = samples[i : i + step]
            r.spoken.add(piece, pcm.samples_to_ms(len(x), rate))
            if r.clock.first_audio is None:
                r.clock.first_audio = time.perf_counter()
            await self.emit(F.AudioOut(r.turn_id, r.response_id, r.item_id, x, rate, piece))
        return True

    async def _pace(self) -> None:
        """Keep the audio sent at most audio_lead_ms ahead of real-time playback, so that what is not
        played yet is still ours to drop on barge-in (and `played_ms` stays a good estimate)."""
        spoken, lead = self.reply.spoken, self.reply.cfg.audio_lead_ms
        if lead is not None and spoken.first_audio_at is not None:
            ahead = spoken.audio_ms - spoken.played_ms()
            if ahead > lead:
                await asyncio.sleep((ahead - lead) / 1000.0)


async def _put(pieces: asyncio.Queue, piece: str | None, tts: asyncio.Task) -> None:
    """Queue a piece for the speaker, unless the speaker has stopped: a failed piper call raises here
    (instead of the LM waiting forever on a full queue)."""
    put = asyncio.ensure_future(pieces.put(piece))
    await asyncio.wait({put, tts}, return_when=asyncio.FIRST_COMPLETED)
    if not put.done():
        put.cancel()
        tts.result()  # the speaker's exception; None when it stopped because the reply went stale
