"""The OpenAI Realtime protocol (GA dialect, as the `openai` SDK speaks it) on top of a pipeline Session.

    conn = RealtimeConnection(websocket, engines, on_turn=metrics.append)
    await conn.run()                     # until the client goes away

Client events handled: session.update, input_audio_buffer.append|commit|clear, conversation.item.create
(input_text), conversation.item.truncate, conversation.item.delete, response.create, response.cancel.
Server events: see `FrameMapper`. Anything we cannot honour becomes an `error` event naming the field
(`error.param`), and the connection stays up.

Our extension, `session.dlm = {"preset": "fastest"|"balanced"|"quality", "threshold": float,
"max_steps_per_block": int}`, sets the diffusion sampler's speed/quality trade-off, and after each
response the server sends `{"type": "dlm.turn_metrics", "response_id", "item_id", "latency_ms": {...}}`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from dataclasses import replace
from typing import Any, ClassVar

from assistant import frames as F
from assistant.config import MAX_REPLY_TOKENS, MODALITIES, DlmKnobs, SessionConfig
from assistant.pipeline import Engines, Session
from assistant.turns import new_id
from audio import pcm
from audio.vad import VadConfig

log = logging.getLogger(__name__)

AUDIO_FORMAT = {"type": "audio/pcm", "rate": pcm.SAMPLE_RATE_API}  # int16 LE mono, base64 in JSON
MAX_APPEND_BYTES = 15 * 1024 * 1024  # the protocol's limit for one input_audio_buffer.append
OUTPUT_INDEX = CONTENT_INDEX = 0  # one output item with one content part per response
MODEL_NAME = "dlm"
# Session fields accepted when they carry their default (or a neutral value), and otherwise refused.
NEUTRAL = {
    "tools": ([], None),
    "tool_choice": ("auto", "none", None),
    "tracing": (None, "auto"),
    "truncation": ("auto", "disabled", None),
    "include": ([], None),
    "prompt": (None,),
}


class ProtocolError(ValueError):
    """A client event we refuse; becomes an `error` event."""

    def __init__(self, message: str, param: str | None = None, code: str = "invalid_value"):
        super().__init__(message)
        self.param, self.code = param, code


# ------------------------------------------------------------------------------------------ sessions


def _check_keys(obj: Any, allowed: set[str], where: str) -> dict:
    if not isinstance(obj, dict):
        raise ProtocolError(f"{where} must be an object", where)
    for key in obj:
        if key not in allowed:
            raise ProtocolError(
                f"unknown or unsupported field {where}.{key}", f"{where}.{key}", "unknown_parameter"
            )
    return obj


def _format(obj: Any, where: str) -> None:
    if obj is None:
        return
    _check_keys(obj, {"type", "rate"}, where)
    if (
        obj.get("type", "audio/pcm") not in ("audio/pcm", "pcm16")
        or obj.get("rate", AUDIO_FORMAT["rate"]) != AUDIO_FORMAT["rate"]
    ):
        raise ProtocolError(f"{where} must be {AUDIO_FORMAT} (pcm16, 24 kHz mono)", where)


def _turn_detection(td: Any, current: VadConfig | None, where: str) -> tuple[VadConfig | None, dict]:
    if td is None:
        return None, {}
    _check_keys(
        td,
        {
            "type",
            "threshold",
            "prefix_padding_ms",
            "silence_duration_ms",
            "create_response",
            "interrupt_response",
            "idle_timeout_ms",
        },
        where,
    )
    if td.get("type", "server_vad") != "server_vad":
        raise ProtocolError(
            f"{where}.type {td.get('type')!r} is not supported; use 'server_vad' or null", f"{where}.type"
        )
    if td.get("idle_timeout_ms") is not None:
        raise ProtocolError("idle_timeout_ms is not supported", f"{where}.idle_timeout_ms")
    vad = current or VadConfig()
    over = {k: td[k] for k in ("threshold", "prefix_padding_ms", "silence_duration_ms") if k in td}
    for k, v in over.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise ProtocolError(f"{where}.{k} must be a number", f"{where}.{k}")
    try:
        vad = vad.replace(**over)
    except ValueError as e:
        raise ProtocolError(str(e), where) from e
    flags = {k: td[k] for k in ("create_response", "interrupt_response") if k in td}
    for k, v in flags.items():
        if not isinstance(v, bool):
            raise ProtocolError(f"{where}.{k} must be true or false", f"{where}.{k}")
    return vad, flags


def _modalities(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) != 1 or value[0] not in MODALITIES:
        raise ProtocolError(f'{where} must be ["audio"] or ["text"]', where)
    return tuple(value)


def _max_tokens(value: Any, where: str) -> int:
    if value == "inf":
        return MAX_REPLY_TOKENS
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ProtocolError(f"{where} must be a positive integer or 'inf'", where)
    return value


def apply_session_update(cfg: SessionConfig, s: Any) -> SessionConfig:
    """A Realtime `session` object -> a new SessionConfig (all of it or none: errors raise ProtocolError)."""
    _check_keys(
        s,
        {
            "type",
            "model",
            "instructions",
            "output_modalities",
            "audio",
            "max_output_tokens",
            "dlm",
            "object",
            "id",
            "expires_at",
            *NEUTRAL,
        },
        "session",
    )
    if s.get("type", "realtime") != "realtime":
        raise ProtocolError("only session.type 'realtime' is served here", "session.type")
    for key, ok in NEUTRAL.items():
        if key in s and s[key] not in ok:
            raise ProtocolError(
                f"session.{key} is not supported by this server", f"session.{key}", "unsupported"
            )
    new = {}
    if "instructions" in s:
        if not isinstance(s["instructions"], str):
            raise ProtocolError("session.instructions must be a string", "session.instructions")
        new["instructions"] = s["instructions"]
    if "output_modalities" in s:
        new["output_modalities"] = _modalities(s["output_modalities"], "session.output_modalities")
    if "max_output_tokens" in s:
        new["max_output_tokens"] = _max_tokens(s["max_output_tokens"], "session.max_output_tokens")
    audio = _check_keys(s.get("audio") or {}, {"input", "output"}, "session.audio")
    inp = _check_keys(
        audio.get("input") or {},
        {"format", "transcription", "turn_detection", "noise_reduction"},
        "session.audio.input",
    )
    _format(inp.get("format"), "session.audio.input.format")
    if inp.get("noise_reduction") is not None:
        raise ProtocolError(
            "noise_reduction is not supported", "session.audio.input.noise_reduction", "unsupported"
        )
    if inp.get("transcription") is not None:
        _check_keys(
            inp["transcription"], {"model", "language", "prompt"}, "session.audio.input.transcription"
        )
    if "turn_detection" in inp:
        vad, flags = _turn_detection(
            inp["turn_detection"], cfg.turn_detection, "session.audio.input.turn_detection"
        )
        new["turn_detection"] = vad
        new.update(flags)
    out = _check_keys(audio.get("output") or {}, {"format", "voice", "speed"}, "session.audio.output")
    _format(out.get("format"), "session.audio.output.format")
    if "speed" in out and out["speed"] not in (1, 1.0):
        raise ProtocolError("only speed 1.0 is supported", "session.audio.output.speed", "unsupported")
    # `voice` is accepted and ignored: the server speaks with the voice it was started with.
    if "dlm" in s:
        d = _check_keys(s["dlm"], {"preset", "threshold", "max_steps_per_block"}, "session.dlm")
        try:
            # A preset alone resets the fine knobs to the preset's own; knobs alone keep the preset.
            base = {"preset": d["preset"]} if "preset" in d else dict(cfg.dlm.__dict__)
            new["dlm"] = DlmKnobs(**{**base, **d})
        except (TypeError, ValueError) as e:
            raise ProtocolError(str(e), "session.dlm") from e
    try:
        return replace(cfg, **new)
    except ValueError as e:
        raise ProtocolError(str(e), "session") from e


def session_object(cfg: SessionConfig, session_id: str) -> dict:
    vad = cfg.turn_detection
    td = (
        None
        if vad is None
        else {
            "type": "server_vad",
            "threshold": vad.threshold,
            "prefix_padding_ms": vad.prefix_padding_ms,
            "silence_duration_ms": vad.silence_duration_ms,
            "create_response": cfg.create_response,
            "interrupt_response": cfg.interrupt_response,
            "idle_timeout_ms": None,
        }
    )
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": MODEL_NAME,
        "instructions": cfg.instructions,
        "output_modalities": list(cfg.output_modalities),
        "max_output_tokens": cfg.max_output_tokens,
        "tools": [],
        "tool_choice": "auto",
        "audio": {
            "input": {
                "format": AUDIO_FORMAT,
                "transcription": {"model": "whisper", "language": "en"},
                "turn_detection": td,
                "noise_reduction": None,
            },
            "output": {"format": AUDIO_FORMAT, "voice": "default", "speed": 1.0},
        },
        "dlm": dict(cfg.dlm.__dict__),
    }


# ------------------------------------------------------------------------------------- server events


def _user_item(item_id: str, content: list[dict]) -> dict:
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "status": "completed",
        "role": "user",
        "content": content,
    }


def _reply_item(item_id: str, modalities, text: str | None, status: str) -> dict:
    content = (
        []
        if text is None
        else [
            {"type": "output_audio", "transcript": text}
            if "audio" in modalities
            else {"type": "output_text", "text": text}
        ]
    )
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _part(modalities, text: str) -> dict:
    return {"type": "audio", "transcript": text} if "audio" in modalities else {"type": "text", "text": text}


def _response(
    response_id: str, status: str, modalities, output: list[dict], reason: str | None = None
) -> dict:
    details = None if status in ("in_progress", "completed") else {"type": status, "reason": reason}
    return {
        "object": "realtime.response",
        "id": response_id,
        "status": status,
        "status_details": details,
        "output": output,
        "output_modalities": list(modalities),
        "conversation_id": "conv_default",
        "usage": None,
        "metadata": None,
    }


def frame_to_events(f: F.Frame) -> list[dict]:
    """One pipeline frame -> the Realtime server events it stands for (without event ids)."""
    if isinstance(f, F.Notice):
        return [f.payload]
    if isinstance(f, F.SpeechStarted):
        return [
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": int(f.audio_start_ms),
                "item_id": f.item_id,
            }
        ]
    if isinstance(f, F.SpeechStopped):
        return [
            {
                "type": "input_audio_buffer.speech_stopped",
                "audio_end_ms": int(f.audio_end_ms),
                "item_id": f.item_id,
            }
        ]
    if isinstance(f, F.Committed):
        return [
            {
                "type": "input_audio_buffer.committed",
                "previous_item_id": f.previous_item_id,
                "item_id": f.item_id,
            },
            {
                "type": "conversation.item.added",
                "previous_item_id": f.previous_item_id,
                "item": _user_item(f.item_id, [{"type": "input_audio", "transcript": None}]),
            },
        ]
    if isinstance(f, F.UserTranscript):
        return [
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": f.item_id,
                "content_index": CONTENT_INDEX,
                "transcript": f.text,
            },
            {
                "type": "conversation.item.done",
                "item": _user_item(f.item_id, [{"type": "input_audio", "transcript": f.text}]),
            },
        ]
    if isinstance(f, F.UserText):
        item = _user_item(f.item_id, [{"type": "input_text", "text": f.text}])
        return [
            {"type": "conversation.item.added", "previous_item_id": f.previous_item_id, "item": item},
            {"type": "conversation.item.done", "previous_item_id": f.previous_item_id, "item": item},
        ]
    if isinstance(f, F.ResponseStarted):
        item = _reply_item(f.item_id, f.modalities, None, "in_progress")
        ids = {"response_id": f.response_id, "output_index": OUTPUT_INDEX}
        return [
            {
                "type": "response.created",
                "response": _response(f.response_id, "in_progress", f.modalities, []),
            },
            {"type": "response.output_item.added", **ids, "item": item},
            {"type": "conversation.item.added", "item": item},
            {
                "type": "response.content_part.added",
                **ids,
                "item_id": f.item_id,
                "content_index": CONTENT_INDEX,
                "part": _part(f.modalities, ""),
            },
        ]
    if isinstance(f, F.TextDelta):
        kind = "response.output_audio_transcript.delta" if f.spoken else "response.output_text.delta"
        return [{"type": kind, **_content_ids(f), "delta": f.text}]
    if isinstance(f, F.AudioOut):
        x = (
            f.samples
            if f.rate == pcm.SAMPLE_RATE_API
            else pcm.resample(f.samples, f.rate, pcm.SAMPLE_RATE_API)
        )
        delta = base64.b64encode(pcm.float_to_int16_bytes(x, allow_empty=True)).decode("ascii")
        return [{"type": "response.output_audio.delta", **_content_ids(f), "delta": delta}]
    if isinstance(f, F.ResponseDone):
        ids = _content_ids(f)
        audio = "audio" in f.modalities
        item_status = "completed" if f.status == "completed" else "incomplete"
        item = _reply_item(f.item_id, f.modalities, f.text, item_status)
        out = (
            [
                {"type": "response.output_audio.done", **ids},
                {"type": "response.output_audio_transcript.done", **ids, "transcript": f.text},
            ]
            if audio
            else [{"type": "response.output_text.done", **ids, "text": f.text}]
        )
        return out + [
            {"type": "response.content_part.done", **ids, "part": _part(f.modalities, f.text)},
            {
                "type": "response.output_item.done",
                "response_id": f.response_id,
                "output_index": OUTPUT_INDEX,
                "item": item,
            },
            {"type": "conversation.item.done", "item": item},
            {
                "type": "response.done",
                "response": _response(f.response_id, f.status, f.modalities, [item], f.reason),
            },
            {
                "type": "dlm.turn_metrics",
                "response_id": f.response_id,
                "item_id": f.item_id,
                "status": f.status,
                "audio_ms": round(f.audio_ms, 1),
                "latency_ms": f.metrics,
            },
        ]
    if isinstance(f, F.ErrorFrame):
        return [error_event(f.code, f.message, f.param, f.event_id)]
    return []  # Interrupted: the client learns it from speech_started / response.done


def _content_ids(f) -> dict:
    return {
        "response_id": f.response_id,
        "item_id": f.item_id,
        "output_index": OUTPUT_INDEX,
        "content_index": CONTENT_INDEX,
    }


def error_event(code: str, message: str, param: str | None = None, event_id: str | None = None) -> dict:
    return {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "code": code,
            "message": message,
            "param": param,
            "event_id": event_id,
        },
    }


# --------------------------------------------------------------------------------------- connection


class RealtimeConnection:
    """One websocket client: a receiver task (client events -> session) and a sender task (frames -> JSON)."""

    def __init__(self, ws, engines: Engines, cfg: SessionConfig | None = None, on_turn=None):
        self.ws = ws
        self.session = Session(engines, cfg or SessionConfig(), on_turn=on_turn)

    async def run(self) -> None:
        s = self.session
        await s.emit(
            F.Notice(s.turns.current, {"type": "session.created", "session": session_object(s.cfg, s.id)})
        )
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
        s = self.session
        while True:
            frame = await s.out.get()
            if s.turns.is_stale(frame):
                continue  # a reply that was interrupted after this frame was queued
            for ev in frame_to_events(frame):
                ev = {"event_id": new_id("event"), **ev}
                await self.ws.send(json.dumps(ev))

    async def _receive(self) -> None:
        async for message in self.ws:
            event_id = None
            try:
                if isinstance(message, bytes):
                    raise ProtocolError(
                        "binary frames are not part of the protocol; send JSON text", None, "invalid_json"
                    )
                try:
                    ev = json.loads(message)
                except json.JSONDecodeError as e:
                    raise ProtocolError(f"not valid JSON: {e}", None, "invalid_json") from e
                if not isinstance(ev, dict):
                    raise ProtocolError("an event must be a JSON object", None, "invalid_json")
                event_id = ev.get("event_id")
                await self.handle(ev)
            except ProtocolError as e:
                await self.session.error(e.code, str(e), e.param, event_id)
            except Exception as e:  # a bug must not take the connection down
                log.exception("client event failed")
                await self.session.error("server_error", f"{type(e).__name__}: {e}", None, event_id)

    async def handle(self, ev: dict) -> None:
        s = self.session
        kind = ev.get("type")
        handler = self.HANDLERS.get(kind)
        if handler is None:
            raise ProtocolError(f"unknown or unsupported event type {kind!r}", "type", "unknown_event")
        await handler(self, ev, s)

    async def _ack(self, payload: dict) -> None:
        await self.session.emit(F.Notice(self.session.turns.current, payload))

    # -- client events --------------------------------------------------------------------------------
    async def _session_update(self, ev, s: Session) -> None:
        s.update(apply_session_update(s.cfg, ev.get("session")))
        await self._ack({"type": "session.updated", "session": session_object(s.cfg, s.id)})

    async def _append(self, ev, s: Session) -> None:
        audio = ev.get("audio")
        if not isinstance(audio, str):
            raise ProtocolError("audio must be a base64 string of pcm16 24 kHz mono", "audio")
        if len(audio) * 3 // 4 > MAX_APPEND_BYTES:
            raise ProtocolError("audio is larger than 15 MiB", "audio")
        try:
            raw = base64.b64decode(audio, validate=True)
            x = pcm.int16_bytes_to_float(raw, allow_empty=True)
        except (binascii.Error, ValueError) as e:
            raise ProtocolError(f"audio is not base64 pcm16: {e}", "audio") from e
        if x.size:
            await s.push_audio(x, pcm.SAMPLE_RATE_API)

    async def _commit(self, ev, s: Session) -> None:
        await s.commit()

    async def _clear(self, ev, s: Session) -> None:
        await s.clear_audio()
        await self._ack({"type": "input_audio_buffer.cleared"})

    async def _item_create(self, ev, s: Session) -> None:
        item = _check_keys(ev.get("item"), {"id", "type", "object", "role", "content", "status"}, "item")
        if item.get("type", "message") != "message":
            raise ProtocolError("only items of type 'message' are supported", "item.type", "unsupported")
        role = item.get("role", "user")
        if role not in ("user", "assistant", "system"):
            raise ProtocolError("item.role must be user, assistant or system", "item.role")
        content = item.get("content")
        if not isinstance(content, list) or not content:
            raise ProtocolError("item.content must be a non-empty list", "item.content")
        texts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") not in ("input_text", "text", "output_text"):
                raise ProtocolError(
                    "only text content (input_text) is supported", f"item.content[{i}].type", "unsupported"
                )
            if not isinstance(part.get("text"), str):
                raise ProtocolError("text content needs a 'text' string", f"item.content[{i}].text")
            texts.append(part["text"])
        await s.add_text(" ".join(texts), role)

    async def _truncate(self, ev, s: Session) -> None:
        item_id, ms = ev.get("item_id"), ev.get("audio_end_ms")
        if not isinstance(ms, (int, float)) or isinstance(ms, bool) or ms < 0:
            raise ProtocolError("audio_end_ms must be a number >= 0", "audio_end_ms")
        if ev.get("content_index", CONTENT_INDEX) != CONTENT_INDEX:
            raise ProtocolError("content_index must be 0", "content_index")
        try:
            s.truncate(item_id, float(ms))
        except KeyError:
            raise ProtocolError(
                f"no assistant item {item_id!r} in the conversation", "item_id", "item_not_found"
            )
        except ValueError as e:
            raise ProtocolError(str(e), "audio_end_ms") from e
        await self._ack(
            {
                "type": "conversation.item.truncated",
                "item_id": item_id,
                "content_index": CONTENT_INDEX,
                "audio_end_ms": int(ms),
            }
        )

    async def _item_delete(self, ev, s: Session) -> None:
        try:
            s.delete_item(ev.get("item_id"))
        except KeyError:
            raise ProtocolError(
                f"no item {ev.get('item_id')!r} in the conversation", "item_id", "item_not_found"
            )
        await self._ack({"type": "conversation.item.deleted", "item_id": ev.get("item_id")})

    async def _response_create(self, ev, s: Session) -> None:
        r = _check_keys(
            ev.get("response") or {},
            {"output_modalities", "instructions", "max_output_tokens", "metadata", "conversation"},
            "response",
        )
        modalities = (
            _modalities(r["output_modalities"], "response.output_modalities")
            if "output_modalities" in r
            else None
        )
        if r.get("conversation", "auto") != "auto":
            raise ProtocolError(
                "only the default conversation is supported", "response.conversation", "unsupported"
            )
        if "instructions" in r and not isinstance(r["instructions"], str):
            raise ProtocolError("response.instructions must be a string", "response.instructions")
        over = {}
        if "instructions" in r:
            over["instructions"] = r["instructions"]
        if "max_output_tokens" in r:
            over["max_output_tokens"] = _max_tokens(r["max_output_tokens"], "response.max_output_tokens")
        await s.create_response(modalities=modalities, overrides=over or None)

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
