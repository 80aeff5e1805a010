"""Tools end to end: built-in tools run in a Session, timers speak up, and Realtime function calling
through the official `openai` SDK (a client function, its output, the reply that uses it; bad input).

The tiny test model memorised a few tool calls (testkit/tool_chat.py); with another model
(DLM_TEST_MODEL) the tests that need a particular call are skipped, the protocol tests still run.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from assistant import frames as F
from assistant.session import Session
from testkit.tool_chat import CLIENT_ANSWER, CLIENT_CALL, CLIENT_RESULT, CLIENT_TOOL
from tests.conftest import TEST_INSTRUCTIONS, ServerThread, session_config
from tests.test_builtin_tools import FakeClock
from tests.test_pipeline import frames_until
from tests.test_realtime import recv_until

openai = pytest.importorskip("openai")

QUIET_S = 1.0  # how long a test watches for a reply that must not start
TINY = TEST_INSTRUCTIONS is not None  # the tiny model, which knows the calls of testkit/tool_chat.py
needs_tiny = pytest.mark.skipif(not TINY, reason="only the tiny test model is known to make these calls")


def tool_session(engines, **kw) -> Session:
    return Session(engines, session_config(builtin_tools=True, output_modalities=("text",), **kw))


async def ask(s: Session, text: str, got: list) -> F.ResponseDone:
    await s.add_text(text)
    reply = await s.create_response()
    return await frames_until(
        s, lambda f: isinstance(f, F.ResponseDone) and f.response_id == reply.response_id, got
    )


async def ask_once(engines, text: str) -> tuple[Session, list, F.ResponseDone]:
    """A tool session asked `text` once, then closed: (the session, every frame, the response's end)."""
    s = tool_session(engines)
    got: list = []
    try:
        done = await ask(s, text, got)
    finally:
        await s.close()
    return s, got, done


@needs_tiny
async def test_a_builtin_call_runs_and_joins_the_conversation(engines):
    s, got, done = await ask_once(engines, "What time is it?")
    calls = [f for f in got if isinstance(f, F.FunctionCall)]
    outputs = [f for f in got if isinstance(f, F.FunctionOutput)]
    assert [c.name for c in calls] == ["get_time"] and json.loads(calls[0].arguments) == {}
    result = json.loads(outputs[0].output)
    assert outputs[0].call_id == calls[0].call_id and {"time", "date", "weekday"} <= set(result)
    assert done.status == "completed" and [c["name"] for c in done.calls] == ["get_time"]
    text = "".join(f.text for f in got if isinstance(f, F.TextDelta))
    assert "<tool_call>" not in text and "tool_call" not in done.text  # markup is never shown
    kinds = [it.type for it in s.conversation.items]
    assert kinds[:3] == ["message", "function_call", "function_call_output"], kinds
    messages = s.messages()
    assert messages[1]["tool_calls"][0]["function"]["name"] == "get_time" and messages[2]["role"] == "tool"


@needs_tiny
async def test_a_misread_result_is_said_as_the_tool_says_it(engines):
    """The tiny model memorised a wrong sum after calculate's result (testkit.tool_chat.MISREAD): the
    words said are the tool's, and the wrong number never goes out, not even in a text delta."""
    _, got, done = await ask_once(engines, "What is 6 times 7?")
    outputs = [f for f in got if isinstance(f, F.FunctionOutput)]
    assert [json.loads(f.output)["result"] for f in outputs] == [42]
    text = "".join(f.text for f in got if isinstance(f, F.TextDelta))
    assert text == json.loads(outputs[0].output)["text"] == done.text and "43" not in text


def fake_clock(s: Session) -> FakeClock:
    """Put the session's timers on a clock that moves only when the test advances it."""
    clock = FakeClock()
    s.toolbox.timers.clock = clock
    return clock


async def advance(s: Session, clock: FakeClock, seconds: float) -> None:
    """Move the timers' clock on and wake the session's watch, as the passing time would."""
    clock.advance(seconds)
    s.timer_watch.tool_ran()
    await asyncio.sleep(0)


async def nothing_starts(s: Session, got: list) -> None:
    """No reply starts within a moment (an absence: it passes vacuously on a slow machine, never wrongly)."""
    with pytest.raises(asyncio.TimeoutError):
        await frames_until(s, lambda f: isinstance(f, F.ResponseStarted), got, timeout=QUIET_S)


@needs_tiny
async def test_a_timer_fires_with_a_chime_when_its_time_has_come(engines):
    s = Session(engines, session_config(builtin_tools=True))
    clock = fake_clock(s)
    got: list = []
    try:
        await ask(s, "Set a timer for three seconds.", got)
        out = json.loads(next(f for f in got if isinstance(f, F.FunctionOutput)).output)
        assert out["seconds"] == 3 and out["id"].startswith("timer_")
        await advance(s, clock, 2.5)
        await nothing_starts(s, got)  # not before its time
        await advance(s, clock, 0.5)
        started = await frames_until(
            s, lambda f: isinstance(f, F.ResponseStarted) and f.metadata is not None, got
        )
        assert started.metadata == {"source": "timer", "timer": {"id": out["id"], "label": "", "seconds": 3}}
        done = await frames_until(s, lambda f: isinstance(f, F.ResponseDone), got)
        assert "timer is done" in done.text.lower()
        audio = [f for f in got if isinstance(f, F.AudioOut) and f.response_id == started.response_id]
        assert audio[0].text == "" and done.audio_ms > 400  # the chime, then the words
    finally:
        await s.close()
    assert s.conversation.items[-1].text == done.text  # the announcement is part of the conversation


@needs_tiny
async def test_a_cancelled_timer_never_speaks_up(engines):
    s = tool_session(engines)
    clock = fake_clock(s)
    got: list = []
    try:
        await ask(s, "Set a timer for three seconds.", got)
        assert len(s.toolbox.timers.list()) == 1
        # The tiny model knows its requests only at the start of a conversation: a new turn, no history.
        s.conversation.items.clear()
        cancelled = await ask(s, "Cancel my timer.", got)
        output = [f for f in got if isinstance(f, F.FunctionOutput)][-1]
        assert cancelled.status == "completed" and len(json.loads(output.output)["cancelled"]) == 1
        await advance(s, clock, 10)  # well past the time it would have gone off
        await nothing_starts(s, got)
    finally:
        await s.close()
    assert s.toolbox.timers.list() == []


async def test_tool_choice_none_and_builtin_tools_off_offer_no_tools(engines):
    for cfg in (dict(builtin_tools=True, tool_choice="none"), dict(builtin_tools=False)):
        s = Session(engines, session_config(output_modalities=("text",), **cfg))
        got: list = []
        try:
            done = await ask(s, "What time is it?", got)
        finally:
            await s.close()
        assert not [f for f in got if isinstance(f, F.FunctionCall)] and done.calls == [], cfg
        assert s._tool_turn(s.cfg).definitions is None


# ------------------------------------------------------------------------------- Realtime, via the SDK


@pytest.fixture(scope="module")
def tool_server(engines):
    s = ServerThread(engines, session=session_config(builtin_tools=True))
    yield s
    s.close()


def client(server):
    return openai.AsyncOpenAI(api_key="x", base_url=f"http://127.0.0.1:{server.port}/v1")


async def say(conn, text: str) -> None:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    await conn.conversation.item.create(item=item)
    await conn.response.create()


async def test_client_function_call_output_and_reply(tool_server):
    """The SDK defines a function, the model calls it, the client answers, and the reply uses it."""
    got: list = []
    async with client(tool_server).realtime.connect(model="dlm") as conn:
        await conn.session.update(session={"type": "realtime", "tools": [CLIENT_TOOL], "tool_choice": "auto"})
        updated = await recv_until(conn, lambda e: e.type == "session.updated", got)
        assert [t.name for t in updated.session.tools] == [CLIENT_TOOL["name"]]
        await say(conn, CLIENT_CALL[0])
        done = await recv_until(conn, lambda e: e.type == "response.done", got)
        calls = [o for o in done.response.output if o.type == "function_call"]
        if not TINY:
            pytest.skip("only the tiny test model is known to call this function")
        assert [c.name for c in calls] == [CLIENT_TOOL["name"]]
        assert json.loads(calls[0].arguments) == CLIENT_CALL[1]
        kinds = [e.type for e in got]
        for kind in (
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
        ):
            assert kind in kinds, kinds
        args_done = next(e for e in got if e.type == "response.function_call_arguments.done")
        assert args_done.call_id == calls[0].call_id and args_done.name == CLIENT_TOOL["name"]
        # The client runs its function and answers; the spoken reply uses the result.
        output = {"type": "function_call_output", "call_id": calls[0].call_id, "output": CLIENT_RESULT}
        await conn.conversation.item.create(item=output)
        added = await recv_until(conn, lambda e: e.type == "conversation.item.added", got)
        assert added.item.type == "function_call_output" and added.item.call_id == calls[0].call_id
        await conn.response.create()
        done = await recv_until(conn, lambda e: e.type == "response.done", got)
        spoken = [c.transcript for o in done.response.output if o.type == "message" for c in o.content]
        assert spoken == [CLIENT_ANSWER], spoken
        audio = [e for e in got if e.type == "response.output_audio.delta"]
        assert audio, "the reply is spoken"


@needs_tiny
async def test_builtin_calls_show_as_completed_items(tool_server):
    got: list = []
    async with client(tool_server).realtime.connect(model="dlm") as conn:
        await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        await say(conn, "What time is it?")
        done = await recv_until(conn, lambda e: e.type == "response.done", got)
    calls = [o for o in done.response.output if o.type == "function_call"]
    assert [c.name for c in calls] == ["get_time"] and calls[0].status == "completed"
    outputs = [
        e.item for e in got if e.type == "conversation.item.done" and e.item.type == "function_call_output"
    ]
    assert outputs and outputs[0].call_id == calls[0].call_id
    assert {"time", "date", "weekday"} <= set(json.loads(outputs[0].output))
    assert done.response.status == "completed"


async def test_bad_tool_definitions_and_outputs_get_errors_naming_the_field(tool_server):
    bad = [
        ({"tools": [{"type": "function", "name": "no spaces allowed"}]}, "session.tools[0].name"),
        ({"tools": [{"type": "retrieval", "name": "x"}]}, "session.tools[0].type"),
        (
            {"tools": [{**CLIENT_TOOL, "parameters": {"type": "object", "required": ["nope"]}}]},
            "session.tools[0].parameters.required",
        ),
        ({"tools": [CLIENT_TOOL, CLIENT_TOOL]}, "session.tools[1].name"),
        ({"tool_choice": {"type": "function", "name": "not_offered"}}, "session.tool_choice.name"),
        ({"tool_choice": "sometimes"}, "session.tool_choice"),
    ]
    got: list = []
    async with client(tool_server).realtime.connect(model="dlm") as conn:
        for session, param in bad:
            await conn.session.update(session={"type": "realtime", **session})
            err = await recv_until(conn, lambda e: e.type in ("error", "session.updated"), got)
            assert err.type == "error" and err.error.param == param, (session, err)
        stray = {"type": "function_call_output", "call_id": "call_unknown", "output": "{}"}
        await conn.conversation.item.create(item=stray)
        err = await recv_until(conn, lambda e: e.type == "error", got)
        assert err.error.param == "item.call_id"
        await conn.conversation.item.create(
            item={"type": "function_call_output", "call_id": "c", "output": 7}
        )
        err = await recv_until(conn, lambda e: e.type == "error", got)
        assert err.error.param == "item.output"
        # The connection lives on, and a good definition is taken.
        await conn.session.update(
            session={"type": "realtime", "tools": [CLIENT_TOOL], "tool_choice": "required"}
        )
        ok = await recv_until(conn, lambda e: e.type in ("error", "session.updated"), got)
        assert ok.type == "session.updated" and ok.session.tool_choice == "required"
