"""Pipeline frames -> Realtime server events: one small function per frame type, in one table.

for event in frame_to_events(frame):    # dicts without event ids; the connection adds them
    ...
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from assistant import frames as F
from assistant.conversation import CALL, OUTPUT, Item
from assistant.realtime_schema import CONTENT_INDEX
from audio import pcm


def error_event(code: str, message: str, param: str | None = None, event_id: str | None = None) -> dict:
    error = {
        "type": "invalid_request_error",
        "code": code,
        "message": message,
        "param": param,
        "event_id": event_id,
    }
    return {"type": "error", "error": error}


def frame_to_events(f: F.Frame) -> list[dict]:
    """One pipeline frame -> the Realtime server events it stands for (without event ids)."""
    to_events = FRAME_EVENTS.get(type(f))
    return to_events(f) if to_events is not None else []


# ------------------------------------------------------------------------------------------ builders


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
    content = []
    if text is not None:
        audio = "audio" in modalities
        content = [
            {"type": "output_audio", "transcript": text} if audio else {"type": "output_text", "text": text}
        ]
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
    response_id: str,
    status: str,
    modalities,
    output: list[dict],
    reason: str | None = None,
    metadata: dict | None = None,
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
        "metadata": metadata,
    }


def _content_ids(f, output_index: int | None = None) -> dict:
    return {
        "response_id": f.response_id,
        "item_id": f.item_id,
        "output_index": f.output_index if output_index is None else output_index,
        "content_index": CONTENT_INDEX,
    }


# ---------------------------------------------------------------------------------- one per frame type


def _notice(f: F.Notice) -> list[dict]:
    return [f.payload]


def _speech_started(f: F.UserSpeechStarted) -> list[dict]:
    ev = {
        "type": "input_audio_buffer.speech_started",
        "audio_start_ms": int(f.audio_start_ms),
        "item_id": f.item_id,
    }
    return [ev]


def _speech_stopped(f: F.UserSpeechStopped) -> list[dict]:
    return [
        {
            "type": "input_audio_buffer.speech_stopped",
            "audio_end_ms": int(f.audio_end_ms),
            "item_id": f.item_id,
        }
    ]


def _audio_committed(f: F.AudioCommitted) -> list[dict]:
    item = _user_item(f.item_id, [{"type": "input_audio", "transcript": None}])
    return [
        {
            "type": "input_audio_buffer.committed",
            "previous_item_id": f.previous_item_id,
            "item_id": f.item_id,
        },
        {"type": "conversation.item.added", "previous_item_id": f.previous_item_id, "item": item},
    ]


def _user_transcript(f: F.UserTranscript) -> list[dict]:
    item = _user_item(f.item_id, [{"type": "input_audio", "transcript": f.text}])
    return [
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": f.item_id,
            "content_index": CONTENT_INDEX,
            "transcript": f.text,
        },
        {"type": "conversation.item.done", "item": item},
    ]


def _item_deleted(f: F.ItemDeleted) -> list[dict]:
    return [{"type": "conversation.item.deleted", "item_id": f.item_id}]


def _user_text(f: F.UserText) -> list[dict]:
    item = _user_item(f.item_id, [{"type": "input_text", "text": f.text}])
    return [
        {"type": "conversation.item.added", "previous_item_id": f.previous_item_id, "item": item},
        {"type": "conversation.item.done", "previous_item_id": f.previous_item_id, "item": item},
    ]


def _response_started(f: F.ResponseStarted) -> list[dict]:
    response = _response(f.response_id, "in_progress", f.modalities, [], metadata=f.metadata)
    return [{"type": "response.created", "response": response}]


def _message_started(f: F.MessageStarted) -> list[dict]:
    item = _reply_item(f.item_id, f.modalities, None, "in_progress")
    ids = {"response_id": f.response_id, "output_index": f.output_index}
    part = {**ids, "item_id": f.item_id, "content_index": CONTENT_INDEX, "part": _part(f.modalities, "")}
    return [
        {"type": "response.output_item.added", **ids, "item": item},
        {"type": "conversation.item.added", "item": item},
        {"type": "response.content_part.added", **part},
    ]


def _function_call(f: F.FunctionCall) -> list[dict]:
    done = Item(f.item_id, "assistant", "", type=CALL, call_id=f.call_id, name=f.name, arguments=f.arguments)
    done = done.realtime()
    added = {**done, "status": "in_progress", "arguments": ""}
    ids = {"response_id": f.response_id, "output_index": f.output_index}
    args = {**ids, "item_id": f.item_id, "call_id": f.call_id}
    return [
        {"type": "response.output_item.added", **ids, "item": added},
        {"type": "conversation.item.added", "item": added},
        {"type": "response.function_call_arguments.delta", **args, "delta": f.arguments},
        {"type": "response.function_call_arguments.done", **args, "name": f.name, "arguments": f.arguments},
        {"type": "response.output_item.done", **ids, "item": done},
        {"type": "conversation.item.done", "item": done},
    ]


def _function_output(f: F.FunctionOutput) -> list[dict]:
    item = Item(f.item_id, "tool", f.output, type=OUTPUT, call_id=f.call_id).realtime()
    return [
        {"type": "conversation.item.added", "previous_item_id": f.previous_item_id, "item": item},
        {"type": "conversation.item.done", "previous_item_id": f.previous_item_id, "item": item},
    ]


def _text_delta(f: F.TextDelta) -> list[dict]:
    kind = "response.output_audio_transcript.delta" if f.spoken else "response.output_text.delta"
    return [{"type": kind, **_content_ids(f), "delta": f.text}]


def _audio_out(f: F.AudioOut) -> list[dict]:
    x = f.samples if f.rate == pcm.SAMPLE_RATE_API else pcm.resample(f.samples, f.rate, pcm.SAMPLE_RATE_API)
    delta = base64.b64encode(pcm.float_to_int16_bytes(x, allow_empty=True)).decode("ascii")
    return [{"type": "response.output_audio.delta", **_content_ids(f), "delta": delta}]


def _response_done(f: F.ResponseDone) -> list[dict]:
    output, events = list(f.calls), []
    if f.message_index is not None:  # the message item takes its place among the calls
        events = _message_done(f)
        item = _reply_item(
            f.item_id, f.modalities, f.text, "completed" if f.status == "completed" else "incomplete"
        )
        output.insert(min(f.message_index, len(output)), item)
    metrics = {"response_id": f.response_id, "item_id": f.item_id, "status": f.status}
    metrics["p_complete"] = None if f.p_complete is None else round(f.p_complete, 3)
    response = _response(f.response_id, f.status, f.modalities, output, f.reason, f.metadata)
    return events + [
        {"type": "response.done", "response": response},
        {"type": "dlm.turn_metrics", **metrics, "audio_ms": round(f.audio_ms, 1), "latency_ms": f.metrics},
    ]


def _message_done(f: F.ResponseDone) -> list[dict]:
    """The closing events of the response's message item."""
    ids = _content_ids(f, f.message_index)
    item_status = "completed" if f.status == "completed" else "incomplete"
    item = _reply_item(f.item_id, f.modalities, f.text, item_status)
    if "audio" in f.modalities:
        content_done = [
            {"type": "response.output_audio.done", **ids},
            {"type": "response.output_audio_transcript.done", **ids, "transcript": f.text},
        ]
    else:
        content_done = [{"type": "response.output_text.done", **ids, "text": f.text}]
    item_ids = {"response_id": f.response_id, "output_index": f.message_index}
    return content_done + [
        {"type": "response.content_part.done", **ids, "part": _part(f.modalities, f.text)},
        {"type": "response.output_item.done", **item_ids, "item": item},
        {"type": "conversation.item.done", "item": item},
    ]


def _error(f: F.ErrorFrame) -> list[dict]:
    return [error_event(f.code, f.message, f.param, f.event_id)]


# F.Interrupted has no event of its own: the client learns it from speech_started / response.done.
FRAME_EVENTS: dict[type, Callable[[F.Frame], list[dict]]] = {
    F.Notice: _notice,
    F.UserSpeechStarted: _speech_started,
    F.UserSpeechStopped: _speech_stopped,
    F.AudioCommitted: _audio_committed,
    F.UserTranscript: _user_transcript,
    F.UserText: _user_text,
    F.ItemDeleted: _item_deleted,
    F.ResponseStarted: _response_started,
    F.MessageStarted: _message_started,
    F.FunctionCall: _function_call,
    F.FunctionOutput: _function_output,
    F.TextDelta: _text_delta,
    F.AudioOut: _audio_out,
    F.ResponseDone: _response_done,
    F.ErrorFrame: _error,
}
