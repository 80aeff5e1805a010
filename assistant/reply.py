"""One reply, streamed: the LM's committed text -> sentence chunks -> piper -> paced audio frames.

    reply = Reply(response_id, item_id, turn_id, clock, modalities, cfg, gate=Gate(emit))
    await ReplyStream(reply, engines, turns).run(messages, session_id, tools)

The LM and piper are synchronous iterators pulled through `ThreadIter`, so cancelling the task that runs
`run()` stops both between two steps. Frames are stamped with the reply's turn id; once an interruption
advances the session's turn, `emit` drops them and the speaker stops. Every frame goes out through the
reply's `Gate` (assistant/speculation.py), which holds a speculative reply's output until its turn ends.

Tool calls: the committed text goes through a `ToolCallParser`, so call markup is never spoken or shown.
When the model calls a tool, its pass ends there and `tools.handle` decides: a built-in tool has run and
its result is in the conversation, so the LM goes on from the new messages (same response, same message
item, same speaker); a client's function ends the response, and the client answers it. The words after a
built-in's result are held until that pass ends and said only if their numbers are the tool's
(assistant/grounding.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from assistant import frames as F
from assistant.bridge import END, ThreadIter
from assistant.config import SessionConfig
from assistant.engines import Engines
from assistant.grounding import grounded
from assistant.metrics import LatencyClock
from assistant.speculation import Gate
from assistant.turns import SpokenReply, TurnIds
from audio import pcm
from audio.chime import chime
from audio.tts import SentenceChunker
from dlm_core.tool_calls import BadToolCall, ToolCall, ToolCallParser

log = logging.getLogger(__name__)
PIECE_QUEUE = 8  # sentences waiting for piper
AUDIO_FRAME_MS = 100  # reply audio leaves in frames this long (the granularity of pacing and barge-in)
MAX_TOOL_ROUNDS = 4  # built-in calls one reply may chain before it must answer


@dataclass
class Reply:
    response_id: str
    item_id: str
    turn_id: int
    clock: LatencyClock
    modalities: tuple[str, ...]
    cfg: SessionConfig  # the session's settings with this response's overrides
    gate: Gate  # where its frames go out: held until the turn is confirmed for a speculative reply
    spoken: SpokenReply = field(default_factory=SpokenReply)
    text: str = ""
    task: asyncio.Task | None = None
    nfe: int = 0  # forward passes the LM spent on it
    synthesized_ms: float = 0.0  # audio piper made for it (sent or not)
    outputs: int = 0  # output items announced so far (function calls, the message)
    message_index: int | None = None  # the message item's output index, once announced
    calls: list = field(default_factory=list)  # the function_call items it made (Realtime dicts)
    metadata: dict | None = None  # the response's metadata (a timer's announcement says which timer)
    announcement: str | None = None  # fixed words to say after a chime (a timer firing), no LM

    def next_index(self) -> int:
        self.outputs += 1
        return self.outputs - 1

    def open_message(self, turn_id: int) -> F.MessageStarted | None:
        """The frame that announces the message item, the first time it is asked for (a reply that only
        calls a tool has none until it ends)."""
        if self.message_index is not None:
            return None
        self.message_index = self.next_index()
        return F.MessageStarted(turn_id, self.response_id, self.item_id, self.message_index, self.modalities)


class ReplyStream:
    def __init__(self, reply: Reply, engines: Engines, turns: TurnIds):
        self.reply, self.engines, self.turns = reply, engines, turns
        self.speaks = "audio" in reply.modalities and engines.tts is not None
        self._voiced = asyncio.Event()  # piper has made the reply's first audio (or stopped)
        self._held: list[str] | None = None  # words of a pass that says a tool's result, until checked

    async def run(self, messages: list[dict], session_id: str, tools=None) -> None:
        """Stream the reply to `messages`. `tools`: the reply's ToolTurn (None: no tools offered).
        Raises what the LM or piper raised; cancel to stop it."""
        r = self.reply
        pieces: asyncio.Queue = asyncio.Queue(PIECE_QUEUE)
        tts = asyncio.create_task(self._speak(pieces)) if self.speaks else None
        chunker = SentenceChunker(self.engines.tts.cfg.chunker) if self.speaks else None
        out = (chunker, pieces, tts)
        try:
            if r.announcement is not None:
                await self._announce(r.announcement, out)
            else:
                await self._converse(messages, session_id, tools, out)
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

    async def _converse(self, messages: list[dict], session_id: str, tools, out) -> None:
        """LM passes until the model answers in words: each built-in call it makes runs, then it goes on."""
        result = None  # (tool output, request) the pass says, after a built-in's result
        for rounds in range(MAX_TOOL_ROUNDS + 1):
            call = await self._pass(messages, session_id, tools, rounds == 0, out, result)
            if call is None or tools is None or rounds == MAX_TOOL_ROUNDS:
                return
            messages = await tools.handle(self.reply, call, self.emit)
            if messages is None:  # a client's function: the client answers it
                return
            request = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
            result = (messages[-1]["content"], request) if messages[-1]["role"] == "tool" else None

    async def _pass(self, messages, session_id: str, tools, first: bool, out, result=None) -> ToolCall | None:
        """One LM reply: its words go out as they are committed; returns the tool call it ends with.
        `result`: (tool output, request) when the pass says a built-in's result: its words are held and
        go out at the end, checked by grounding.grounded."""
        self._held = [] if result is not None else None
        call = await self._lm_pass(messages, session_id, tools, first, out)  # a cancel: nothing held is said
        held, self._held = self._held, None
        if held:
            await self._text(grounded("".join(held), *result), *out)
        return call

    async def _lm_pass(self, messages, session_id: str, tools, first: bool, out) -> ToolCall | None:
        r = self.reply
        sampler = r.cfg.sampler(self.engines.lm.family)
        definitions = tools.definitions if tools is not None else None
        prefix = tools.prefix if tools is not None and first else ""
        gen = self.engines.lm.reply(
            messages, sampler, session_id=session_id, tools=definitions, prefix=prefix
        )
        lm, parser, nfe_before = ThreadIter(gen), ToolCallParser(), r.nfe
        parser.push(prefix)  # a forced call's opening is already written
        try:
            while (c := await lm.next()) is not END:
                r.nfe = nfe_before + c.nfe
                events = parser.push(c.text) if c.text else []
                if c.done:
                    events += parser.flush()
                if (call := await self._events(events, out)) is not None or c.done:
                    return call
            return await self._events(parser.flush(), out)
        finally:
            await lm.aclose()
            if first:  # a remote LM's request and answer times (the turn's first pass only)
                r.clock.network_lm(gen)

    async def _events(self, events: list, out) -> ToolCall | None:
        for ev in events:
            if isinstance(ev, ToolCall):
                return ev
            if isinstance(ev, BadToolCall):
                # What the model wrote is conversation content: only at DEBUG (-v logs INFO and up).
                log.warning("the model wrote a malformed tool call (%s); it was dropped", ev.message)
                log.debug("the malformed tool call: %r", ev.raw[:200])
                continue
            if self._held is not None:
                self._held.append(ev)
            else:
                await self._text(ev, *out)
        return None

    async def _announce(self, text: str, out) -> None:
        """A chime, then fixed words (a timer went off): no LM involved."""
        chunker, pieces, tts = out
        if tts is not None:
            await self._open_message()
            await self._send_audio("", chime(pcm.SAMPLE_RATE_API), pcm.SAMPLE_RATE_API)
        await self._text(text, chunker, pieces, tts)

    async def emit(self, frame: F.Frame) -> None:
        await self.reply.gate.send(frame)

    async def _open_message(self) -> None:
        """Announce the message item before its first words."""
        if (frame := self.reply.open_message(self.reply.turn_id)) is not None:
            await self.emit(frame)

    async def _text(self, text: str, chunker, pieces: asyncio.Queue, tts: asyncio.Task | None) -> None:
        r = self.reply
        if r.clock.first_text is None:
            r.clock.first_text = time.perf_counter()
        await self._open_message()
        r.text += text
        delta = F.TextDelta(
            r.turn_id, r.response_id, r.item_id, text=text, spoken=self.speaks, output_index=r.message_index
        )
        await self.emit(delta)
        for piece in chunker.push(text) if chunker is not None else ():
            await _put(pieces, piece, tts)
            await self._first_audio_first(tts)

    async def _first_audio_first(self, tts: asyncio.Task) -> None:
        """The LM waits while piper makes the reply's first audio: on a small CPU the two slow each other
        down, and the LM, far ahead of speech, loses nothing by the wait (bench.voice_latency's
        first_audio)."""
        if self._voiced.is_set():
            return
        voiced = asyncio.ensure_future(self._voiced.wait())
        await asyncio.wait({voiced, tts}, return_when=asyncio.FIRST_COMPLETED)
        voiced.cancel()

    async def _speak(self, pieces: asyncio.Queue) -> None:
        while (piece := await pieces.get()) is not None:
            tts = self.engines.tts.synthesize_piece(piece, rate=pcm.SAMPLE_RATE_API)
            it = ThreadIter(tts, self.engines.tts_lock)
            try:
                while (chunk := await it.next()) is not END:
                    self._voiced.set()
                    if not await self._send_audio(piece, chunk.samples, chunk.sample_rate):
                        return
            finally:
                await it.aclose()
                # Also when piper made no sound for the piece (it makes none for "..." or a lone
                # quote): else the LM would wait for a first audio that never comes.
                self._voiced.set()

    async def _send_audio(self, piece: str, samples, rate: int) -> bool:
        """Send one synthesized chunk in AUDIO_FRAME_MS frames, paced; False once the reply is stale."""
        r = self.reply
        r.synthesized_ms += pcm.samples_to_ms(len(samples), rate)
        await r.gate.opened()  # a held reply's first audio waits here, already synthesized
        step = pcm.ms_to_samples(AUDIO_FRAME_MS, rate)
        for i in range(0, len(samples), step):
            await self._pace()
            if r.turn_id != self.turns.current:
                return False
            x = samples[i : i + step]
            r.spoken.add(piece, pcm.samples_to_ms(len(x), rate))
            if r.clock.first_audio is None:
                r.clock.first_audio = time.perf_counter()
            index = r.message_index or 0
            out = F.AudioOut(
                r.turn_id, r.response_id, r.item_id, samples=x, rate=rate, text=piece, output_index=index
            )
            await self.emit(out)
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
