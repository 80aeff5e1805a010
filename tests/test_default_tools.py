"""The bundled default model uses the built-in tools: a spoken "What time is it?" and "Set a timer for
one minute." through the official `openai` SDK, real-time pacing, the server's default settings (its
instructions, built-in tools, semantic_vad), real Whisper and piper. The model's words are not checked:
which tool it calls and what the tool did are."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest

from assistant.config import SessionConfig
from assistant.grounding import numbers
from tests.conftest import ServerThread
from tests.test_realtime import TRAIL_S, client, recv_until, speech, stream


@pytest.fixture(scope="module")
def default_server(engines):
    from dlm_core.checkpoints import BUNDLED_MODEL
    from dlm_core.engine import DlmEngine

    lm = DlmEngine.load(str(BUNDLED_MODEL))
    assert lm.knows_tools
    s = ServerThread(dataclasses.replace(engines, lm=lm), session=SessionConfig())
    yield s
    s.close()
    lm.close()


async def spoken_turn(server, text: str) -> tuple[list, object]:
    """Say `text` once; (every event, the response.done that answers it)."""
    events: list = []
    async with client(server).realtime.connect(model="dlm") as conn:
        await recv_until(conn, lambda e: e.type == "session.created", events)
        sender = asyncio.create_task(stream(conn, speech([0.5, text, TRAIL_S])))
        done = await recv_until(conn, lambda e: e.type == "response.done", events)
        await sender
    return events, done


def tool_outputs(events) -> list[dict]:
    items = [e.item for e in events if e.type == "conversation.item.done"]
    return [json.loads(i.output) for i in items if i.type == "function_call_output"]


def called(done) -> list[str]:
    return [o.name for o in done.response.output if o.type == "function_call"]


def said(events) -> str:
    return "".join(e.delta for e in events if e.type == "response.output_audio_transcript.delta")


@pytest.mark.slow
async def test_the_default_model_tells_the_time_with_the_tool(default_server):
    events, done = await spoken_turn(default_server, "What time is it?")
    assert called(done) == ["get_time"], done.response.output
    (result,) = tool_outputs(events)
    words = said(events)
    audio = [e for e in events if e.type == "response.output_audio.delta"]
    assert done.response.status == "completed" and words.strip() and audio
    assert numbers(words) <= numbers(json.dumps(result)), (words, result)  # the tool's time, if any


@pytest.mark.slow
async def test_the_default_model_sets_a_one_minute_timer(default_server):
    events, done = await spoken_turn(default_server, "Set a timer for one minute.")
    assert called(done) == ["set_timer"], done.response.output
    (result,) = tool_outputs(events)
    assert 55 <= result["seconds"] <= 60, result  # a minute from when it ran
    assert done.response.status == "completed" and said(events).strip()
