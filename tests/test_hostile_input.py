"""Hostile and malformed client events over a raw websocket: each gets an `error` event in OpenAI's
shape (type, code, message, param, event_id), the connection lives on and the session is unchanged.
A message over the server's size cap is the exception: that connection is closed with 1009 (message too
big), and the server goes on serving the others."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from tests.conftest import VOICE_PAIRS

TIMEOUT_S = 30
QUESTION = VOICE_PAIRS[0][0]
TOO_LONG_WORDS = 5000  # far beyond any bundled or test model's context
CLOSE_MESSAGE_TOO_BIG = 1009

CASES = [  # (what is sent: a JSON-able event, raw text or bytes; the error's param, or None)
    (b"\x00\x01binary", None),
    ("{not json", None),
    ("[1, 2, 3]", None),
    ("null", None),
    ({"no_type": 1}, "type"),
    ({"type": 42}, "type"),
    ({"type": "input_audio_buffer.append", "audio": "not base64!!"}, "audio"),
    ({"type": "input_audio_buffer.append", "audio": base64.b64encode(b"\x01\x02\x03").decode()}, "audio"),
    ({"type": "input_audio_buffer.append", "audio": 12}, "audio"),
    ({"type": "session.update", "session": "realtime"}, "session"),
    ({"type": "session.update", "session": {"max_output_tokens": 0}}, "session.max_output_tokens"),
    ({"type": "session.update", "session": {"output_modalities": ["video"]}}, "session.output_modalities"),
    ({"type": "session.update", "session": {"dlm": {"threshold": -1}}}, "session.dlm"),
    (
        {
            "type": "session.update",
            "session": {"audio": {"input": {"turn_detection": {"threshold": "high"}}}},
        },
        "session.audio.input.turn_detection.threshold",
    ),
    (
        {
            "type": "session.update",
            "session": {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 8000}}}},
        },
        "session.audio.input.format",
    ),
    (
        {
            "type": "session.update",
            "session": {"tools": [{"type": "function", "name": "f", "parameters": "{"}]},
        },
        "session.tools[0].parameters",
    ),
    (
        {
            "type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": "call_x", "output": "{}"},
        },
        "item.call_id",
    ),
    ({"type": "conversation.item.create", "item": {"type": "message", "content": []}}, "item.content"),
    ({"type": "conversation.item.create", "item": {"type": "message", "role": "robot"}}, "item.role"),
    ({"type": "conversation.item.truncate", "item_id": "x", "audio_end_ms": -5}, "audio_end_ms"),
    ({"type": "conversation.item.delete", "item_id": "item_nope"}, "item_id"),
    ({"type": "response.create", "response": {"conversation": "none"}}, "response.conversation"),
    ({"type": "response.create", "response": {"max_output_tokens": "lots"}}, "response.max_output_tokens"),
]


async def recv_json(ws) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))


@pytest.mark.parametrize("sent, param", CASES, ids=[str(c[0])[:50] for c in CASES])
async def test_each_bad_event_gets_an_error_and_changes_nothing(server, sent, param):
    from websockets.asyncio.client import connect

    async with connect(f"ws://127.0.0.1:{server.port}/v1/realtime") as ws:
        before = (await recv_json(ws))["session"]
        event_id = "evt_hostile_1"
        if isinstance(sent, dict):
            await ws.send(json.dumps({**sent, "event_id": event_id}))
        else:
            await ws.send(sent)
        err = await recv_json(ws)
        assert err["type"] == "error", err
        assert set(err["error"]) == {"type", "code", "message", "param", "event_id"}
        assert err["error"]["message"] and err["error"]["param"] == param
        assert err["error"]["event_id"] == (event_id if isinstance(sent, dict) else None)
        await ws.send(json.dumps({"type": "session.update", "session": {}}))  # still alive: echo the session
        after = await recv_json(ws)
        assert after["type"] == "session.updated" and after["session"] == before


async def test_text_longer_than_the_context_is_refused_before_it_joins_the_conversation(server):
    from websockets.asyncio.client import connect

    async with connect(f"ws://127.0.0.1:{server.port}/v1/realtime") as ws:
        await recv_json(ws)
        for text in (QUESTION, " ".join(["word"] * TOO_LONG_WORDS)):
            item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
            await ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
        assert (await recv_json(ws))["type"] == "conversation.item.added"
        assert (await recv_json(ws))["type"] == "conversation.item.done"
        err = await recv_json(ws)
        assert err["type"] == "error" and err["error"]["code"] == "input_too_long", err
        assert "tokens" in err["error"]["message"]
        await ws.send(json.dumps({"type": "response.create", "response": {"output_modalities": ["text"]}}))
        while (ev := await recv_json(ws))["type"] != "response.done":
            assert ev["type"] != "error", ev
        assert ev["response"]["status"] == "completed"  # the conversation never held the long text


def test_history_is_capped_oldest_first():
    from assistant.conversation import MAX_ITEMS, Conversation, Item

    c = Conversation()
    for i in range(MAX_ITEMS + 10):
        c.add(Item(f"item_{i}", "user", f"message {i}"))
    assert len(c.items) == MAX_ITEMS
    assert c.items[0].id == "item_10" and c.items[-1].id == f"item_{MAX_ITEMS + 9}"


async def test_a_message_over_the_size_cap_closes_that_connection_with_1009_and_no_other(server):
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    from assistant.server import MAX_MESSAGE_BYTES

    url = f"ws://127.0.0.1:{server.port}/v1/realtime"
    async with connect(url) as other:
        # Not a context manager: closing a connection the server already closed trips over asyncio's
        # closed transport in websockets' close().
        ws = await connect(url)
        for c in (other, ws):
            assert (await recv_json(c))["type"] == "session.created"
        empty = json.dumps({"type": "input_audio_buffer.append", "audio": ""})
        audio = "A" * (MAX_MESSAGE_BYTES + 1 - len(empty))  # an append one byte over the cap
        message = json.dumps({"type": "input_audio_buffer.append", "audio": audio})
        assert len(message) == MAX_MESSAGE_BYTES + 1
        with pytest.raises(ConnectionClosed) as closed:
            await ws.send(message)
            await recv_json(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_MESSAGE_TOO_BIG, closed.value
        # The other connection is served as before, and so is a new one.
        await other.send(json.dumps({"type": "response.cancel"}))
        err = await recv_json(other)
        assert err["type"] == "error" and err["error"]["code"] == "response_cancel_not_active", err
    async with connect(url) as again:
        assert (await recv_json(again))["type"] == "session.created"
