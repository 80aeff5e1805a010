"""A false start: the user goes on right after the reply to what seemed a whole turn began. The reply stops,
and the whole utterance is answered as one turn, without the cut reply in the conversation. Real speech,
real Whisper, the served LM, through the official `openai` SDK."""

from __future__ import annotations

import asyncio

import pytest

from assistant.conversation import join_turns
from testkit.speech import normalize_text
from tests.conftest import ServerThread, session_config
from tests.test_realtime import TRAIL_S, client, recv_until, speech, stream
from turn_taking.vad import VadConfig

QUESTION = "What is the capital of France?"  # the test model answers it at length: its reply is still on
GOES_ON = "in the living room."
SILENCE_MS = 500  # server_vad ends the first half's turn after this much silence ...
PAUSE_S = 1.5  # ... and the user goes on after this much: the reply has begun even on a loaded machine
FALSE_START_MS = 2500  # the session takes speech this soon after a turn as that turn going on


def test_join_turns_undoes_what_whisper_added_to_each_half():
    assert join_turns("I would like to book a table for.", "Two people tomorrow.") == (
        "I would like to book a table for two people tomorrow."
    )
    assert join_turns("Send it to", "I think Anna.") == "Send it to I think Anna."
    assert join_turns("Is it far?", "In miles.") == "Is it far? In miles."
    assert join_turns("", "Hello.") == "Hello." and join_turns("Hello.", " ") == "Hello."


@pytest.fixture(scope="module")
def false_start_server(engines):
    cfg = session_config(
        eagerness=None,
        turn_detection=VadConfig(silence_duration_ms=SILENCE_MS),
        false_start_ms=FALSE_START_MS,
    )
    s = ServerThread(engines, session=cfg)
    yield s
    s.close()


@pytest.mark.slow
async def test_a_false_start_is_answered_as_one_turn(false_start_server):
    events: list = []
    async with client(false_start_server).realtime.connect(model="dlm") as conn:
        await recv_until(conn, lambda e: e.type == "session.created", events)
        sender = asyncio.create_task(stream(conn, speech([0.3, QUESTION, PAUSE_S, GOES_ON, TRAIL_S])))
        done = await recv_until(
            conn, lambda e: e.type == "response.done" and e.response.status == "completed", events
        )
        await sender
    cut = [e.response for e in events if e.type == "response.done" and e.response.status == "cancelled"]
    assert len(cut) == 1, "the reply to the first half had not begun when the user went on"
    heard = [e for e in events if e.type == "conversation.item.input_audio_transcription.completed"]
    assert len(heard) == 2, [e.transcript for e in heard]
    first, whole = heard
    deleted = [e.item_id for e in events if e.type == "conversation.item.deleted"]
    cut_items = [item.id for item in cut[0].output]
    assert first.item_id in deleted and all(i in deleted for i in cut_items), (deleted, cut_items)
    words = normalize_text(whole.transcript)
    assert "france" in words and "living room" in words, whole.transcript  # both halves, one turn
    assert normalize_text(first.transcript) in words
    answered = next(e for e in events if e.type == "response.created" and e.response.id == done.response.id)
    assert events.index(answered) > events.index(whole)  # the reply answers the whole utterance
    resumed = [e for e in events if e.type == "input_audio_buffer.speech_started"][1]
    stop = next(e for e in events if e.type == "response.done" and e.response.status == "cancelled")
    print(
        f"\nfalse start: {first.transcript!r} then {whole.transcript!r}; "
        f"reply cut {1000 * (stop.received_at - resumed.received_at):.0f} ms after speech_started"
    )
