"""One conversation as a streaming pipeline: input audio -> endpointing -> history -> reply -> frames.

    engines = Engines.load(ModelsConfig())              # once per process; shared by all sessions
    session = Session(engines, SessionConfig())
    await session.push_audio(x, rate)                    # server VAD: turns end, replies start by themselves
    frame = await session.next_frame()                   # frames.py: what the transport sends or plays

Stages, joined by bounded asyncio queues:

    push_audio -> Listener (VAD + speculative Whisper) -> user transcript -> Conversation
        -> ReplyStream: DlmEngine.reply -> sentence chunker -> piper -> paced audio -> [out queue]

Barge-in: user speech during a reply advances the turn id first (every queued reply frame is stale from
that moment and `next_frame` skips it), then cancels the reply task, which closes the LM and TTS
iterators. The history keeps the part of the reply that was played (`SpokenReply`), and a later
`truncate()` from the client (which knows what it played) corrects it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from assistant import frames as F
from assistant.bridge import blocking
from assistant.config import SessionConfig
from assistant.conversation import OUTPUT, Conversation, Item, join_turns
from assistant.engines import Engines
from assistant.listener import Listener
from assistant.metrics import SPECULATION_COUNTS, LatencyClock
from assistant.reply import Reply, ReplyStream
from assistant.speculation import Gate
from assistant.timer_watch import TimerWatch
from assistant.tool_turn import ToolTurn
from assistant.tools.builtin import Toolbox
from assistant.tools.timers import Timers
from assistant.turns import TurnIds, new_id
from turn_taking.endpoint import TurnLikely, TurnTranscript
from turn_taking.vad import SpeechResumed, SpeechStarted, SpeechStopped

OUT_QUEUE_FRAMES = 512  # frames waiting for the transport


@dataclass
class _Answered:
    """A turn heard through server VAD and the reply that answers it (a false start can take both back)."""

    item_id: str
    text: str
    speech_end: float | None  # wall time (perf_counter) the user stopped speaking
    reply: Reply


class Session:
    """One conversation: its settings, history, listener and at most one reply at a time."""

    def __init__(
        self,
        engines: Engines,
        cfg: SessionConfig | None = None,
        session_id: str | None = None,
        on_turn: Callable[[dict], None] | None = None,
        speculation: dict | None = None,
    ):
        self.engines = engines
        self.cfg = cfg or SessionConfig()
        self.id = session_id or new_id("sess")
        self.on_turn = on_turn  # called with each finished turn's metrics (the server's /metrics)
        self.turns = TurnIds()
        self.conversation = Conversation()
        self.reply: Reply | None = None
        self._out: asyncio.Queue[F.Frame] = asyncio.Queue(OUT_QUEUE_FRAMES)
        self._listener = Listener(engines.asr, self._on_endpoint, self.error, engines.judge)
        self._listener.configure(self.cfg.endpointing)
        self._user_item: str | None = None  # the user item the current speech will become
        self._speculative: Reply | None = None  # a held reply to the turn the user seems to have ended
        # Counts of held replies: started, used, discarded, and the work the discarded ones wasted (a
        # server passes one dict for all its sessions).
        self.speculation = speculation if speculation is not None else dict.fromkeys(SPECULATION_COUNTS, 0)
        self._clock: LatencyClock | None = None  # the turn being heard, until its reply starts
        self._answered: _Answered | None = None  # the last heard turn and the reply that answers it
        self._unfinished = ""  # a false start's half turn, until the rest of it is heard
        self.toolbox = Toolbox(Timers())  # built-in tools; their timers belong to this conversation
        self.timer_watch = TimerWatch(  # a timer that goes off gets a reply once no reply is running
            self.toolbox.timers,
            busy=lambda: self.reply is not None or self._speculative is not None,
            speak=self._speak_up,
        )
        self._closed = False

    # -- settings and output ---------------------------------------------------------------------------
    def update(self, cfg: SessionConfig) -> None:
        changed = cfg.endpointing != self.cfg.endpointing
        self.cfg = cfg
        if changed:
            self._listener.configure(cfg.endpointing)

    async def emit(self, frame: F.Frame) -> None:
        # After close() nobody reads the queue: dropping keeps a full queue from blocking the shutdown.
        if not self._closed and not self.turns.is_stale(frame):
            await self._out.put(frame)

    async def next_frame(self) -> F.Frame:
        """The next frame for the transport; frames of an interrupted reply are skipped here, once."""
        while True:
            frame = await self._out.get()
            if not self.turns.is_stale(frame):
                return frame

    def pending_frame(self) -> F.Frame | None:
        """A frame that is ready now, or None (the non-blocking `next_frame`)."""
        while not self._out.empty():
            frame = self._out.get_nowait()
            if not self.turns.is_stale(frame):
                return frame
        return None

    async def error(self, code: str, message: str, param: str | None = None, event_id: str | None = None):
        await self.emit(F.ErrorFrame(self.turns.current, code, message, param, event_id))

    # -- the user's side -------------------------------------------------------------------------------
    async def push_audio(self, x: np.ndarray, rate: int) -> None:
        """x: float32 [n] mono at `rate`. Server VAD: turns end and replies start by themselves."""
        await self._listener.push(x, rate)

    async def commit(self) -> None:
        """Manual turn end (input_audio_buffer.commit): the buffered audio becomes a user item."""
        if self._listener.server_vad:
            await self._listener.flush()  # ends the current turn now
            return
        audio = self._listener.take_buffer()
        if audio.size == 0:
            await self.error("input_audio_buffer_commit_empty", "the input audio buffer is empty")
            return
        clock = LatencyClock(speech_end=time.perf_counter())
        clock.stop_decided = clock.speech_end
        item = new_id("item")
        await self.emit(F.AudioCommitted(self.turns.current, item, self.conversation.last_id()))
        tr = await blocking(self.engines.asr.transcribe, audio)
        clock.transcript = time.perf_counter()
        self._clock = clock  # the next response.create continues this turn's clock
        await self._user_said(item, tr.text, clock, auto_reply=False)

    async def clear_audio(self) -> None:
        await self._listener.clear()
        self._user_item = None

    async def add_text(self, text: str, role: str = "user") -> str:
        """A typed message joins the conversation. ValueError if it alone would not fit the model's
        context with a reply (it could never be answered)."""
        self._check_fits(text)
        item = new_id("item")
        await self.emit(F.UserText(self.turns.current, item, self.conversation.last_id(), text))
        self.conversation.add(Item(item, role, text))
        return item

    def _check_fits(self, text: str) -> None:
        lm = self.engines.lm
        if lm is None or lm.tokenizer is None:  # a remote LM's server refuses what it cannot fit
            return
        room = lm.context_len - self.cfg.max_output_tokens
        n = len(lm.tokenizer.encode(text))
        if n > room:
            raise ValueError(
                f"the text is {n} tokens; the model's context holds {lm.context_len}, of which "
                f"{self.cfg.max_output_tokens} are kept for the reply"
            )

    async def _on_endpoint(self, ev) -> None:
        if isinstance(ev, SpeechStarted):
            await self._speech_started(ev)
        elif isinstance(ev, TurnLikely):
            await self._turn_likely(ev)
        elif isinstance(ev, SpeechResumed):
            await self._discard_speculative()  # the user went on: the held reply answered half a turn
        elif isinstance(ev, SpeechStopped):
            await self._speech_stopped(ev)
        elif isinstance(ev, TurnTranscript):
            await self._turn(ev)

    async def _turn(self, ev: TurnTranscript) -> None:
        clock = self._clock or LatencyClock()
        clock.transcript, clock.turn_judge_ms = time.perf_counter(), ev.judge_ms
        clock.p_complete = ev.p_complete
        item, self._user_item, self._clock = self._user_item or new_id("item"), None, None
        text, self._unfinished = self._joined(ev.text), ""
        held = self._speculative
        if held is not None and held.gate.assumed != text:
            await self._discard_speculative()
            held = None
        self._speculative = None
        await self._user_said(item, text, clock, auto_reply=self.cfg.create_response and held is None)
        if held is not None:
            await self._release(held, clock)
        self._answered = _Answered(item, text, clock.speech_end, self.reply) if self.reply else None

    async def _speech_started(self, ev: SpeechStarted) -> None:
        await self._discard_speculative()
        self._user_item = new_id("item")
        self._unfinished = ""  # a new turn continues a half turn only when a false start reopens it
        stopped = self._stop_reply() if self.cfg.interrupt_response else None  # barge-in
        await self.emit(F.UserSpeechStarted(self.turns.current, self._user_item, ev.padded_start_ms))
        if stopped is not None:
            await self._report_stop(stopped, "turn_detected")
            await self._reopen_if_false_start(stopped, self._listener.wall_at(ev.audio_start_ms))
        elif self.cfg.interrupt_response:
            self.conversation.cut_last_reply()

    async def _reopen_if_false_start(self, stopped: Reply, resumed_at: float) -> None:
        """The user spoke again within false_start_ms of the end of the turn the cut reply answered: the
        turn was not over. The reply and the half turn leave the conversation (the client is told), and
        the next turn is heard as the half turn's words followed by its own (`_joined`). A reply that
        called a tool stays: what the tool did is done."""
        answered, self._answered = self._answered, None
        if answered is None or answered.reply is not stopped or stopped.calls or answered.speech_end is None:
            return
        if (resumed_at - answered.speech_end) * 1000.0 > self.cfg.false_start_ms:
            return
        for item_id in (stopped.item_id, answered.item_id):
            if self.conversation.find(item_id) is not None:
                self.conversation.delete(item_id)
                await self.emit(F.ItemDeleted(self.turns.current, item_id))
        self._unfinished = answered.text

    def _joined(self, text: str) -> str:
        """What the user said in this turn, after the half turn of a false start if it continues one."""
        return join_turns(self._unfinished, text) if self._unfinished else text.strip()

    async def _speech_stopped(self, ev: SpeechStopped) -> None:
        item = self._user_item = self._user_item or new_id("item")
        # The VAD decided at stream position confirmed_ms; feed() returns later, once Whisper is done.
        wall = self._listener.wall_at
        self._clock = LatencyClock(speech_end=wall(ev.audio_end_ms), stop_decided=wall(ev.confirmed_ms))
        await self.emit(F.UserSpeechStopped(self.turns.current, item, ev.audio_end_ms))
        await self.emit(F.AudioCommitted(self.turns.current, item, self.conversation.last_id()))

    async def _user_said(self, item: str, text: str, clock: LatencyClock, auto_reply: bool) -> None:
        text = text.strip()
        await self.emit(F.UserTranscript(self.turns.current, item, text))
        self.conversation.add(Item(item, "user", text))
        if text and auto_reply and self.reply is None:
            await self.create_response(clock)

    # -- replies ---------------------------------------------------------------------------------------
    async def create_response(
        self,
        clock: LatencyClock | None = None,
        modalities: tuple[str, ...] | None = None,
        overrides: dict | None = None,
    ) -> Reply | None:
        """Start a reply to the conversation so far. `overrides`: SessionConfig fields for this reply only."""
        if self.reply is not None:
            await self.error("conversation_already_has_active_response", "a response is already in progress")
            return None
        await self._discard_speculative()
        clock = clock or self._clock or LatencyClock()
        self._clock = None
        cfg = self.cfg.replace(**(overrides or {}))
        reply = self._start_reply(clock, modalities or cfg.output_modalities, cfg)
        self.reply = reply
        await self.emit(F.ResponseStarted(reply.turn_id, reply.response_id, reply.item_id, reply.modalities))
        return reply

    def _start_reply(
        self, clock: LatencyClock, modalities, cfg: SessionConfig, user_text: str = "", **extra
    ) -> Reply:
        """A new reply task under a new turn id. `user_text`: the speculative transcript a held reply
        answers (not in the conversation yet); empty for a reply to the conversation as it is. `extra`:
        Reply fields (a timer's announcement and metadata)."""
        clock.response_start = time.perf_counter()
        turn = self.turns.advance()
        reply = Reply(
            response_id=new_id("resp"),
            item_id=new_id("item"),
            turn_id=turn,
            clock=clock,
            modalities=modalities,
            cfg=cfg,
            gate=Gate(self.emit, assumed=user_text),
            **extra,
        )
        messages = self.conversation.messages(cfg.instructions)
        if user_text:
            messages.append({"role": "user", "content": user_text})
        reply.task = asyncio.create_task(self._respond(reply, messages, self._tool_turn(cfg)))
        return reply

    def _tool_turn(self, cfg: SessionConfig) -> ToolTurn:
        """The tools of a reply: the client's, and the built-in ones where the model can call tools (the
        bundled model predates them: a tool list it never saw would only make its replies worse)."""
        lm = self.engines.lm
        builtin = cfg.builtin_tools and lm is not None and lm.knows_tools
        toolbox = self.toolbox if builtin else None
        return ToolTurn(cfg, toolbox, self.conversation, self.timer_watch.tool_ran)

    # -- speculation: a reply started in the user's pause, held until the end of the turn is confirmed --
    async def _turn_likely(self, ev: TurnLikely) -> None:
        text = self._joined(ev.text)
        if (
            not text
            or not self.cfg.create_response
            or self.reply is not None
            or self._speculative is not None
        ):
            return
        clock = LatencyClock(speech_end=self._listener.wall_at(ev.audio_end_ms))
        self._speculative = self._start_reply(clock, self.cfg.output_modalities, self.cfg, user_text=text)
        self.speculation["started"] += 1

    async def _release(self, reply: Reply, heard: LatencyClock) -> None:
        """The turn ended as the held reply assumed: it becomes the reply, and what it held goes out."""
        self.reply = reply
        self.speculation["used"] += 1
        started = F.ResponseStarted(reply.turn_id, reply.response_id, reply.item_id, reply.modalities)
        await reply.gate.release(started, reply.clock, heard)

    async def _discard_speculative(self, wait: bool = False) -> None:
        """Drop the held reply (it stops before its next LM step or piper piece; `wait` for that)."""
        reply, self._speculative = self._speculative, None
        if reply is None:
            return
        reply.task.cancel()
        if wait:
            with contextlib.suppress(BaseException):
                await reply.task
        self.speculation["discarded"] += 1
        self.speculation["wasted_forward_passes"] += reply.nfe
        self.speculation["wasted_audio_ms"] += round(reply.synthesized_ms, 1)

    async def cancel(self, reason: str = "client_cancelled") -> bool:
        """Stop the current reply now (barge-in or response.cancel). False if none was running."""
        reply = self._stop_reply()
        if reply is None:
            return False
        await self._report_stop(reply, reason)
        return True

    def _stop_reply(self) -> Reply | None:
        """The synchronous half of a cancel: from its return on, no frame of the reply reaches the client."""
        reply = self.reply
        if reply is None:
            return None
        self.turns.advance()
        self.reply = None
        reply.task.cancel()  # closes the LM and TTS iterators between two steps
        return reply

    async def _report_stop(self, reply: Reply, reason: str) -> None:
        played = reply.spoken.played_ms() if "audio" in reply.modalities else None
        text = reply.text.strip() if played is None else reply.spoken.text_until(played)
        await self.emit(F.Interrupted(self.turns.current, reply.response_id, reply.item_id, played or 0.0))
        await self._finish(reply, "cancelled", text, reason)

    async def _respond(self, reply: Reply, messages: list[dict], tools: ToolTurn) -> None:
        try:
            await ReplyStream(reply, self.engines, self.turns).run(messages, self.id, tools)
            await reply.gate.opened()  # a held reply finishes only as the reply to a confirmed turn
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 -- reported as a failed response, the session lives on
            if self._speculative is reply:  # never shown: the confirmed turn gets a fresh reply
                self._speculative = None
                return
            if self.reply is reply:
                self.reply = None
                self.turns.advance()
                await self.error("response_failed", f"{type(exc).__name__}: {exc}")
                await self._finish(reply, "failed", reply.text, str(exc))
            return
        if self.reply is reply:
            self.reply = None
            await self._finish(reply, "completed", reply.text.strip(), None)

    async def _finish(self, reply: Reply, status: str, text: str, reason: str | None) -> None:
        if not reply.calls and (frame := reply.open_message(self.turns.current)) is not None:
            await self.emit(frame)  # every reply has a message or a call
        if reply.message_index is not None:
            self.conversation.add(Item(reply.item_id, "assistant", text, reply.spoken))
        if self.engines.lm is not None:
            tools = self._tool_turn(self.cfg).definitions
            self.conversation.trim(self.engines.lm, self.cfg.instructions, self.cfg.max_output_tokens, tools)
        metrics = reply.clock.latency_ms()
        done = F.ResponseDone(
            self.turns.current,
            response_id=reply.response_id,
            item_id=reply.item_id,
            status=status,
            text=text,
            modalities=reply.modalities,
            reason=reason,
            audio_ms=reply.spoken.audio_ms,
            metrics=metrics,
            calls=reply.calls,
            message_index=reply.message_index,
            metadata=reply.metadata,
            p_complete=reply.clock.p_complete,
        )
        await self.emit(done)
        if self.on_turn is not None:
            turn = {"session_id": self.id, "response_id": reply.response_id, "item_id": reply.item_id}
            turn.update(status=status, speculative=reply.gate.speculative, p_complete=reply.clock.p_complete)
            self.on_turn({**turn, "latency_ms": metrics})

    # -- tools ---------------------------------------------------------------------------------------
    async def add_tool_output(self, call_id: str, output: str) -> str:
        """The client's result for its function's call joins the conversation (then response.create).
        KeyError: no call with that id; ValueError: the output cannot fit the context."""
        if self.conversation.find_call(call_id) is None:
            raise KeyError(call_id)
        self._check_fits(output)
        previous = self.conversation.last_id()
        item = self.conversation.add(Item(new_id("item"), "tool", output, type=OUTPUT, call_id=call_id))
        await self.emit(F.FunctionOutput(self.turns.current, item.id, previous, call_id, output))
        return item.id

    async def _speak_up(self, extra: dict) -> None:
        """A reply nobody asked for (a timer went off; `extra`: its Reply fields), started at once."""
        reply = self._start_reply(LatencyClock(), self.cfg.output_modalities, self.cfg, **extra)
        self.reply = reply
        await self.emit(
            F.ResponseStarted(
                reply.turn_id, reply.response_id, reply.item_id, reply.modalities, reply.metadata
            )
        )

    # -- conversation edits from the client ------------------------------------------------------------
    def truncate(self, item_id: str, audio_end_ms: float) -> str:
        """The client played only `audio_end_ms` of an assistant item: keep that much of its text."""
        return self.conversation.truncate(item_id, audio_end_ms)

    def delete_item(self, item_id: str) -> None:
        self.conversation.delete(item_id)

    def messages(self, cfg: SessionConfig | None = None) -> list[dict]:
        """The chat the LM would answer now."""
        return self.conversation.messages((cfg or self.cfg).instructions)

    # -- lifetime --------------------------------------------------------------------------------------
    async def close(self) -> None:
        """End the session: stop its reply (its LM and TTS stop before their next step), its listener,
        and free what the engine keeps for it (the conversation's KV cache)."""
        if self._closed:
            return
        self._closed = True
        self.timer_watch.close()
        await self._discard_speculative(wait=True)
        reply = self._stop_reply()
        await self._listener.close()
        if reply is not None:
            with contextlib.suppress(BaseException):
                await reply.task  # returns once the current LM step / piper piece is done
        if self.engines.lm is not None:
            self.engines.lm.drop_session(self.id)
