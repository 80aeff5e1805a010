"""The OpenAI Realtime protocol (GA dialect, as the `openai` SDK speaks it) on top of a pipeline Session.

    conn = RealtimeConnection(websocket, engines, on_turn=metrics.append)
    await conn.run()                     # until the client goes away

Client events handled: session.update (incl. tools and tool_choice), input_audio_buffer.append|commit|
clear, conversation.item.create (input_text, function_call_output), conversation.item.truncate,
conversation.item.delete, response.create, response.cancel; they are validated in `realtime_schema`.
Server events: one function per frame type in `realtime_events`. Anything we cannot honour becomes an
`error` event naming the field (`error.param`), and the connection stays up.

Our extension, `session.dlm = {"preset": "fastest"|"balanced"|"quality", "threshold": float,
"max_steps_per_block": int}`, sets the diffusion sampler's speed/quality trade-off, and after each
response the server sends `{"type": "dlm.turn_metrics", "response_id", "item_id", "latency_ms": {...}}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import ClassVar

from websockets.exceptions import ConnectionClosed

from assistant import frames as F
from assistant.config import DEFAULT_IDLE_TIMEOUT_S, SessionConfig
from assistant.engines import Engines
from assistant.realtime_events import error_event, frame_to_events
from assistant.realtime_schema import (
    CONTENT_INDEX,
    ProtocolError,
    apply_session_update,
    parse_append,
    parse_item,
    parse_message,
    parse_response_create,
    parse_truncate,
    session_object,
)
from assistant.session import Session
from assistant.turns import new_id
from audio import pcm

log = logging.getLogger(__name__)
CLOSE_NORMAL = 1000


class RealtimeConnection:
    """One websocket client: a receiver task (client events -> session) and a sender task (frames -> JSON)."""

    def __init__(
        self,
        ws,
        engines: Engines,
        cfg: SessionConfig | None = None,
        on_turn=None,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
        speculation: dict | None = None,
    ):
        self.ws = ws
        self.session = Session(engines, cfg or SessionConfig(), on_turn=on_turn, speculation=speculation)
        self.idle_timeout_s = idle_timeout_s

    async def run(self) -> None:
        s = self.session
        await self._ack({"type": "session.created", "session": session_object(s.cfg, s.id)})
        tasks = [asyncio.create_task(self._receive()), asyncio.create_task(self._send())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(BaseException):
                    await t
            await s.close()

    async def _send(self) -> None:
        while True:
            frame = await self.session.next_frame()
            for ev in frame_to_events(frame):
                await self.ws.send(json.dumps({"event_id": new_id("event"), **ev}))

    async def _receive(self) -> None:
        while True:
            try:
                message = await asyncio.wait_for(self.ws.recv(), self.idle_timeout_s)
            except asyncio.TimeoutError:
                await self._close_idle()
                return
            except ConnectionClosed:
                return
            event_id = None
            try:
                ev = parse_message(message)
                event_id = ev.get("event_id")
                await self.handle(ev)
            except ProtocolError as e:
                await self.session.error(e.code, str(e), e.param, event_id)
            except Exception as e:  # a bug must not take the connection down
                log.exception("client event failed")
                await self.session.error("server_error", f"{type(e).__name__}: {e}", None, event_id)

    async def _close_idle(self) -> None:
        """The client sent nothing for idle_timeout_s: say so, then close (its session ends with it)."""
        seconds = round(self.idle_timeout_s)
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(json.dumps(error_event("idle_timeout", f"no client event for {seconds} s")))
            await self.ws.close(CLOSE_NORMAL, "idle timeout")

    async def handle(self, ev: dict) -> None:
        kind = ev.get("type")
        handler = self.HANDLERS.get(kind)
        if handler is None:
            raise ProtocolError(f"unknown or unsupported event type {kind!r}", "type", "unknown_event")
        await handler(self, ev, self.session)

    async def _ack(self, payload: dict) -> None:
        """A server event of the connection's own, queued so it keeps its place among the frames."""
        await self.session.emit(F.Notice(self.session.turns.current, payload))

    # -- client events --------------------------------------------------------------------------------
    async def _session_update(self, ev, s: Session) -> None:
        s.update(apply_session_update(s.cfg, ev.get("session")))
        await self._ack({"type": "session.updated", "session": session_object(s.cfg, s.id)})

    async def _append(self, ev, s: Session) -> None:
        x = parse_append(ev)
        if x.size:
            await s.push_audio(x, pcm.SAMPLE_RATE_API)

    async def _commit(self, ev, s: Session) -> None:
        await s.commit()

    async def _clear(self, ev, s: Session) -> None:
        await s.clear_audio()
        await self._ack({"type": "input_audio_buffer.cleared"})

    async def _item_create(self, ev, s: Session) -> None:
        parsed = parse_item(ev)
        if len(parsed) == 3:  # the client's result of a function call
            _, call_id, output = parsed
            try:
                await s.add_tool_output(call_id, output)
            except KeyError:
                raise ProtocolError(
                    f"no function_call with call_id {call_id!r} in the conversation", "item.call_id"
                ) from None
            except ValueError as e:
                raise ProtocolError(str(e), "item.output", "input_too_long") from e
            return
        text, role = parsed
        try:
            await s.add_text(text, role)
        except ValueError as e:
            raise ProtocolError(str(e), "item.content", "input_too_long") from e

    async def _truncate(self, ev, s: Session) -> None:
        item_id, ms = parse_truncate(ev)
        try:
            s.truncate(item_id, ms)
        except KeyError:
            raise ProtocolError(
                f"no assistant item {item_id!r} in the conversation", "item_id", "item_not_found"
            ) from None
        except ValueError as e:
            raise ProtocolError(str(e), "audio_end_ms") from e
        done = {"item_id": item_id, "content_index": CONTENT_INDEX, "audio_end_ms": int(ms)}
        await self._ack({"type": "conversation.item.truncated", **done})

    async def _item_delete(self, ev, s: Session) -> None:
        item_id = ev.get("item_id")
        try:
            s.delete_item(item_id)
        except KeyError:
            raise ProtocolError(
                f"no item {item_id!r} in the conversation", "item_id", "item_not_found"
            ) from None
        await self._ack({"type": "conversation.item.deleted", "item_id": item_id})

    async def _response_create(self, ev, s: Session) -> None:
        modalities, overrides = parse_response_create(ev, s.cfg)
        await s.create_response(modalities=modalities, overrides=overrides)

    async def _response_cancel(self, ev, s: Session) -> None:
        if not await s.cancel("client_cancelled"):
            raise ProtocolError("there is no active response to cancel", None, "response_cancel_not_active")

    HANDLERS: ClassVar[dict] = {
        "session.update": _session_update,
        "input_audio_buffer.append": _append,
        "input_audio_buffer.commit": _commit,
        "input_audio_buffer.clear": _clear,
        "conversation.item.create": _item_create,
        "conversation.item.truncate": _truncate,
        "conversation.item.delete": _item_delete,
        "response.create": _response_create,
        "response.cancel": _response_cancel,
    }
