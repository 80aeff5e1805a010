"""Client events of the OpenAI Realtime protocol (GA dialect), validated into our own values.

Every function either returns what the event means for the session or raises `ProtocolError` naming the
offending field (`error.param`); nothing here touches a session, so a refused event changes nothing.

    cfg = apply_session_update(cfg, event["session"])     # -> a new SessionConfig, all of it or none
    session_object(cfg, session_id)                       # -> the `session` of session.created|updated
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import replace
from typing import Any

import numpy as np

from assistant.config import MAX_REPLY_TOKENS, MODALITIES, DlmKnobs, SessionConfig
from assistant.realtime_errors import ProtocolError, check_keys
from assistant.realtime_tools import parse_function_output, parse_tool_choice, parse_tools
from assistant.tools.builtin import BUILTIN_TOOLS
from audio import pcm
from turn_taking.endpoint import EAGERNESS
from turn_taking.vad import VadConfig

AUDIO_FORMAT = {"type": "audio/pcm", "rate": pcm.SAMPLE_RATE_API}  # int16 LE mono, base64 in JSON
AUDIO_FORMAT_NAMES = ("audio/pcm", "pcm16")
MAX_APPEND_BYTES = 15 * 1024 * 1024  # the protocol's limit for one input_audio_buffer.append
CONTENT_INDEX = 0  # one content part per item
MAX_AUDIO_END_MS = 24 * 3600 * 1000  # a played position beyond a day is a client bug (and no float)
MODEL_NAME = "dlm"
ROLES = ("user", "assistant", "system")
TEXT_PARTS = ("input_text", "text", "output_text")
# Session fields accepted when they carry their default (or a neutral value), and otherwise refused.
NEUTRAL = {
    "tracing": (None, "auto"),
    "truncation": ("auto", "disabled", None),
    "include": ([], None),
    "prompt": (None,),
}
SESSION_KEYS = {
    "type",
    "model",
    "instructions",
    "output_modalities",
    "audio",
    "max_output_tokens",
    "dlm",
    "tools",
    "tool_choice",
}
SESSION_ECHO_KEYS = {"object", "id", "expires_at"}  # what a client may send back from session.created
TURN_DETECTION_KEYS = {
    "type",
    "threshold",
    "prefix_padding_ms",
    "silence_duration_ms",
    "create_response",
    "interrupt_response",
    "idle_timeout_ms",
}
VAD_NUMBERS = ("threshold", "prefix_padding_ms", "silence_duration_ms")
VAD_FLAGS = ("create_response", "interrupt_response")
SEMANTIC_VAD_KEYS = {"type", "eagerness", *VAD_FLAGS}


def parse_message(message: str | bytes) -> dict:
    """One websocket message -> a client event (a JSON object)."""
    if isinstance(message, bytes):
        raise ProtocolError(
            "binary frames are not part of the protocol; send JSON text", None, "invalid_json"
        )
    try:
        ev = json.loads(message, parse_constant=_no_constant)
    except RecursionError as e:  # json.loads recurses once per nesting level
        raise ProtocolError("the JSON is nested too deeply", None, "invalid_json") from e
    except ValueError as e:  # malformed JSON, NaN/Infinity, or an integer too long to convert
        raise ProtocolError(f"not valid JSON: {e}", None, "invalid_json") from e
    if not isinstance(ev, dict):
        raise ProtocolError("an event must be a JSON object", None, "invalid_json")
    return ev


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


# ------------------------------------------------------------------------------------------ session


def apply_session_update(cfg: SessionConfig, s: Any) -> SessionConfig:
    """A Realtime `session` object -> a new SessionConfig (all of it or none: errors raise ProtocolError)."""
    check_keys(s, SESSION_KEYS | SESSION_ECHO_KEYS | set(NEUTRAL), "session")
    if s.get("type", "realtime") != "realtime":
        raise ProtocolError("only session.type 'realtime' is served here", "session.type")
    for key, ok in NEUTRAL.items():
        if key in s and s[key] not in ok:
            raise ProtocolError(
                f"session.{key} is not supported by this server", f"session.{key}", "unsupported"
            )
    new = _reply_settings(s, "session", cfg)
    if "output_modalities" in s:
        new["output_modalities"] = _modalities(s["output_modalities"], "session.output_modalities")
    new.update(_session_audio(s.get("audio") or {}, cfg))
    if "dlm" in s:
        new["dlm"] = _dlm_knobs(s["dlm"], cfg.dlm)
    try:
        return replace(cfg, **new)
    except ValueError as e:
        raise ProtocolError(str(e), "session") from e


def _session_audio(audio: Any, cfg: SessionConfig) -> dict:
    """session.audio -> SessionConfig fields. The voice is accepted and ignored: the server speaks with
    the voice it was started with."""
    check_keys(audio, {"input", "output"}, "session.audio")
    inp = check_keys(
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
        check_keys(inp["transcription"], {"model", "language", "prompt"}, "session.audio.input.transcription")
    new = {}
    if "turn_detection" in inp:
        where = "session.audio.input.turn_detection"
        new.update(_turn_detection(inp["turn_detection"], cfg.turn_detection, where))
    out = check_keys(audio.get("output") or {}, {"format", "voice", "speed"}, "session.audio.output")
    _format(out.get("format"), "session.audio.output.format")
    if "speed" in out and out["speed"] not in (1, 1.0):
        raise ProtocolError("only speed 1.0 is supported", "session.audio.output.speed", "unsupported")
    return new


def _format(obj: Any, where: str) -> None:
    if obj is None:
        return
    check_keys(obj, {"type", "rate"}, where)
    if (
        obj.get("type", "audio/pcm") not in AUDIO_FORMAT_NAMES
        or obj.get("rate", AUDIO_FORMAT["rate"]) != AUDIO_FORMAT["rate"]
    ):
        raise ProtocolError(f"{where} must be {AUDIO_FORMAT} (pcm16, 24 kHz mono)", where)


def _turn_detection(td: Any, current: VadConfig | None, where: str) -> dict:
    """turn_detection -> SessionConfig fields: server_vad (silence only), semantic_vad (end of turn judged
    from what was said, with an eagerness), or null (manual turns)."""
    if td is None:
        return {"turn_detection": None}
    kind = td.get("type", "server_vad") if isinstance(td, dict) else None
    if kind == "semantic_vad":
        check_keys(td, SEMANTIC_VAD_KEYS, where)
        eagerness = td.get("eagerness", "auto")
        if not isinstance(eagerness, str) or eagerness not in EAGERNESS:
            raise ProtocolError(f"{where}.eagerness must be one of {sorted(EAGERNESS)}", f"{where}.eagerness")
        new = {"turn_detection": current or VadConfig(), "eagerness": eagerness}
    else:
        check_keys(td, TURN_DETECTION_KEYS, where)
        if kind != "server_vad":
            raise ProtocolError(
                f"{where}.type {kind!r} is not supported; use 'server_vad', 'semantic_vad' or null",
                f"{where}.type",
            )
        new = {"turn_detection": _server_vad(td, current, where), "eagerness": None}
    for k in VAD_FLAGS:
        if k in td:
            if not isinstance(td[k], bool):
                raise ProtocolError(f"{where}.{k} must be true or false", f"{where}.{k}")
            new[k] = td[k]
    return new


def _server_vad(td: dict, current: VadConfig | None, where: str) -> VadConfig:
    if td.get("idle_timeout_ms") is not None:
        raise ProtocolError("idle_timeout_ms is not supported", f"{where}.idle_timeout_ms")
    over = {k: td[k] for k in VAD_NUMBERS if k in td}
    for k, v in over.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise ProtocolError(f"{where}.{k} must be a number", f"{where}.{k}")
    try:
        return (current or VadConfig()).replace(**over)
    except ValueError as e:
        raise ProtocolError(str(e), where) from e


def _dlm_knobs(d: Any, current: DlmKnobs) -> DlmKnobs:
    """session.dlm: a preset alone resets the fine knobs to the preset's own; knobs alone keep the preset."""
    check_keys(d, {"preset", "threshold", "max_steps_per_block"}, "session.dlm")
    base = {"preset": d["preset"]} if "preset" in d else dict(current.__dict__)
    try:
        return DlmKnobs(**{**base, **d})
    except (TypeError, ValueError) as e:
        raise ProtocolError(str(e), "session.dlm") from e


def _reply_settings(obj: dict, where: str, cfg: SessionConfig) -> dict:
    """`instructions`, `max_output_tokens`, `tools` and `tool_choice` of a session or one response ->
    SessionConfig fields."""
    out = _tool_settings(obj, where, cfg)
    if "instructions" in obj:
        if not isinstance(obj["instructions"], str):
            raise ProtocolError(f"{where}.instructions must be a string", f"{where}.instructions")
        out["instructions"] = obj["instructions"]
    if "max_output_tokens" in obj:
        out["max_output_tokens"] = _max_tokens(obj["max_output_tokens"], f"{where}.max_output_tokens")
    return out


def _tool_settings(obj: dict, where: str, cfg: SessionConfig) -> dict:
    out = {}
    if obj.get("tools") is not None:
        out["tools"] = parse_tools(obj["tools"], f"{where}.tools")
    if obj.get("tool_choice") is not None:
        offered = {t["name"] for t in out.get("tools", cfg.tools)}
        if cfg.builtin_tools:
            offered |= {t["name"] for t in BUILTIN_TOOLS}
        out["tool_choice"] = parse_tool_choice(obj["tool_choice"], f"{where}.tool_choice", offered)
    return out


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


def session_object(cfg: SessionConfig, session_id: str) -> dict:
    """The `session` of session.created / session.updated."""
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": MODEL_NAME,
        "instructions": cfg.instructions,
        "output_modalities": list(cfg.output_modalities),
        "max_output_tokens": cfg.max_output_tokens,
        "tools": [dict(t) for t in cfg.tools],
        "tool_choice": cfg.tool_choice,
        "audio": {
            "input": {
                "format": AUDIO_FORMAT,
                "transcription": {"model": "whisper", "language": "en"},
                "turn_detection": _turn_detection_object(cfg),
                "noise_reduction": None,
            },
            "output": {"format": AUDIO_FORMAT, "voice": "default", "speed": 1.0},
        },
        "dlm": dict(cfg.dlm.__dict__),
    }


def _turn_detection_object(cfg: SessionConfig) -> dict | None:
    vad = cfg.turn_detection
    if vad is None:
        return None
    flags = {"create_response": cfg.create_response, "interrupt_response": cfg.interrupt_response}
    if cfg.eagerness is not None:
        return {"type": "semantic_vad", "eagerness": cfg.eagerness, **flags}
    return {
        "type": "server_vad",
        "threshold": vad.threshold,
        "prefix_padding_ms": vad.prefix_padding_ms,
        "silence_duration_ms": vad.silence_duration_ms,
        **flags,
        "idle_timeout_ms": None,
    }


# ---------------------------------------------------------------------------------- other client events


def parse_append(ev: dict) -> np.ndarray:
    """input_audio_buffer.append -> float32 [n] at 24 kHz."""
    audio = ev.get("audio")
    if not isinstance(audio, str):
        raise ProtocolError("audio must be a base64 string of pcm16 24 kHz mono", "audio")
    if len(audio) * 3 // 4 > MAX_APPEND_BYTES:
        raise ProtocolError(f"audio is larger than {MAX_APPEND_BYTES // (1024 * 1024)} MiB", "audio")
    try:
        raw = base64.b64decode(audio, validate=True)
        return pcm.int16_bytes_to_float(raw, allow_empty=True)
    except (binascii.Error, ValueError) as e:
        raise ProtocolError(f"audio is not base64 pcm16: {e}", "audio") from e


def parse_item(ev: dict) -> tuple[str, str] | tuple[str, str, str]:
    """conversation.item.create -> (text, role) for a text message, or ("function_call_output", call_id,
    output) for the client's result of a function call."""
    item = ev.get("item")
    kind = item.get("type", "message") if isinstance(item, dict) else None
    if kind == "function_call_output":
        return ("function_call_output", *parse_function_output(item))
    check_keys(item, {"id", "type", "object", "role", "content", "status"}, "item")
    if kind != "message":
        raise ProtocolError(
            "only items of type 'message' and 'function_call_output' are supported",
            "item.type",
            "unsupported",
        )
    role = item.get("role", "user")
    if role not in ROLES:
        raise ProtocolError("item.role must be user, assistant or system", "item.role")
    content = item.get("content")
    if not isinstance(content, list) or not content:
        raise ProtocolError("item.content must be a non-empty list", "item.content")
    texts = []
    for i, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in TEXT_PARTS:
            raise ProtocolError(
                "only text content (input_text) is supported", f"item.content[{i}].type", "unsupported"
            )
        if not isinstance(part.get("text"), str):
            raise ProtocolError("text content needs a 'text' string", f"item.content[{i}].text")
        texts.append(part["text"])
    return " ".join(texts), role


def parse_truncate(ev: dict) -> tuple[Any, float]:
    """conversation.item.truncate -> (item_id, audio_end_ms)."""
    ms = ev.get("audio_end_ms")
    if not isinstance(ms, (int, float)) or isinstance(ms, bool) or not 0 <= ms <= MAX_AUDIO_END_MS:
        raise ProtocolError(f"audio_end_ms must be a number in [0, {MAX_AUDIO_END_MS}]", "audio_end_ms")
    if ev.get("content_index", CONTENT_INDEX) != CONTENT_INDEX:
        raise ProtocolError("content_index must be 0", "content_index")
    return ev.get("item_id"), float(ms)


def parse_response_create(ev: dict, cfg: SessionConfig) -> tuple[tuple[str, ...] | None, dict | None]:
    """response.create -> (output modalities or None, SessionConfig overrides for this response or None)."""
    keys = {"output_modalities", "instructions", "max_output_tokens", "metadata", "conversation", "tools"}
    r = check_keys(ev.get("response") or {}, keys | {"tool_choice"}, "response")
    modalities = None
    if "output_modalities" in r:
        modalities = _modalities(r["output_modalities"], "response.output_modalities")
    if r.get("conversation", "auto") != "auto":
        raise ProtocolError(
            "only the default conversation is supported", "response.conversation", "unsupported"
        )
    return modalities, _reply_settings(r, "response", cfg) or None
