"""The /v1/realtime API end to end, with the official `openai` SDK as the client and a live server.

Real parts only: piper speech made offline and streamed in real time, the bundled Whisper, the diffusion
LM (tests/conftest.py), piper for the reply. The reply's content is checked two ways: its transcript is
what the same LM answers to the transcribed question, and its audio transcribes back to that text.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from audio import pcm
from testkit.speech import make_conversation_wav, normalize_text, word_error_rate

pytestmark = pytest.mark.slow  # spoken turns through the official SDK in real time

openai = pytest.importorskip("openai")

QUESTION = "What is the capital of France?"
BARGE_IN = "Tell me a joke."
# Whisper tiny.en hears piper's renditions of it as "Tell me the / they / that joke" and once "Tell me
# that Joe.": the second turn is checked to be these words, up to two of the four misheard.
BARGE_IN_MAX_WER = 0.5
CHUNK_MS = 40  # how much audio each append carries, like a browser's capture
TRAIL_S = 2.5  # silence after speech: outlasts semantic_vad's longest wait for a turn it takes as unfinished
TURN_TIMEOUT_S = 120  # one spoken turn on a busy 2-core machine
# A barge-in comes after the user has heard some of the reply: speech sooner after the question would be
# the question going on (a false start, SessionConfig.false_start_ms, tests/test_false_start.py).
HEARD_S = 1.6


def b64(x: np.ndarray) -> str:
    return base64.b64encode(pcm.float_to_int16_bytes(x)).decode()


def pcm_of(events) -> np.ndarray:
    raw = b"".join(base64.b64decode(e.delta) for e in events if e.type == "response.output_audio.delta")
    return pcm.int16_bytes_to_float(raw, allow_empty=True)


async def stream(conn, x: np.ndarray, realtime: bool = True) -> None:
    """Append 24 kHz audio in CHUNK_MS pieces, paced like a live microphone."""
    step = pcm.ms_to_samples(CHUNK_MS, pcm.SAMPLE_RATE_API)
    t0 = time.perf_counter()
    for i, start in enumerate(range(0, len(x), step)):
        await conn.input_audio_buffer.append(audio=b64(x[start : start + step]))
        if realtime:
            await asyncio.sleep(max(0.0, t0 + (i + 1) * CHUNK_MS / 1000 - time.perf_counter()))


async def recv_until(conn, done, events: list, timeout: float = TURN_TIMEOUT_S):
    """Read events into `events` until done(event) is true; returns that event."""

    async def loop():
        while True:
            ev = await conn.recv()
            ev.received_at = time.perf_counter()
            events.append(ev)
            if done(ev):
                return ev

    return await asyncio.wait_for(loop(), timeout)


def http_get(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
        return r.read()


def client(server):
    return openai.AsyncOpenAI(api_key="x", base_url=f"http://127.0.0.1:{server.port}/v1")


def expected_reply(engines, text: str) -> str:
    """What the served LM answers to `text` (the session's prompt, no history)."""
    from tests.conftest import session_config

    cfg = session_config()
    msgs = ([{"role": "system", "content": cfg.instructions}] if cfg.instructions else []) + [
        {"role": "user", "content": text}
    ]
    return "".join(c.text for c in engines.lm.reply(msgs, cfg.sampler(engines.lm.family))).strip()


def speech(parts) -> np.ndarray:
    return make_conversation_wav(parts, rate=pcm.SAMPLE_RATE_API).samples


async def test_spoken_question_server_vad(server, engines):
    """Stream speech in real time; read the transcription, the reply transcript and the reply audio."""
    x = speech([0.5, QUESTION, TRAIL_S])
    events: list = []
    async with client(server).realtime.connect(model="dlm") as conn:
        await recv_until(conn, lambda e: e.type == "session.created", events)
        sender = asyncio.create_task(stream(conn, x))
        done = await recv_until(conn, lambda e: e.type == "response.done", events)
        metrics = await recv_until(conn, lambda e: e.type == "dlm.turn_metrics", events)
        await sender
    types = [e.type for e in events]
    for t in (
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_audio.delta",
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
    ):
        assert t in types, (t, types)
    heard = next(
        e for e in events if e.type == "conversation.item.input_audio_transcription.completed"
    ).transcript
    assert word_error_rate(QUESTION, heard) <= 0.2, heard
    assert done.response.status == "completed"
    said = "".join(e.delta for e in events if e.type == "response.output_audio_transcript.delta").strip()
    assert said and said == expected_reply(engines, heard)
    final = next(e for e in events if e.type == "response.output_audio_transcript.done").transcript
    assert normalize_text(final) == normalize_text(said)
    audio = pcm_of(events)
    assert len(audio) > pcm.SAMPLE_RATE_API // 2, len(audio)  # at least half a second of reply
    back = engines.asr.transcribe(pcm.resample(audio, pcm.SAMPLE_RATE_API, pcm.SAMPLE_RATE_ASR)).text
    assert word_error_rate(said, back) <= 0.5, (said, back)
    lat = metrics.latency_ms
    assert lat["voice_to_voice"] is not None and 0 < lat["voice_to_voice"] < 60_000, lat
    assert 0.0 <= metrics.p_complete <= 1.0  # the server's default, semantic_vad, judged the turn
    print(f"\nvoice_to_voice {lat['voice_to_voice']} ms, latency_ms {lat}")
    body = json.loads(await asyncio.to_thread(http_get, server.port, "/metrics"))
    turn = next(t for t in body["turns"] if t["response_id"] == done.response.id)
    assert turn["p_complete"] == pytest.approx(metrics.p_complete, abs=1e-3)  # as dlm.turn_metrics said


async def test_manual_commit_and_text_modality(server, engines):
    """turn_detection null: the client commits and asks for a response; then, in a new conversation (the
    tiny test model answers only the prompts it memorised), typed text gets a text reply."""
    x = speech([0.3, QUESTION, 0.3])
    events: list = []
    async with client(server).realtime.connect(model="dlm") as conn:
        await conn.session.update(session={"type": "realtime", "audio": {"input": {"turn_detection": None}}})
        await recv_until(conn, lambda e: e.type == "session.updated", events)
        await stream(conn, x, realtime=False)
        await conn.input_audio_buffer.commit()
        tr = await recv_until(
            conn, lambda e: e.type == "conversation.item.input_audio_transcription.completed", events
        )
        assert "speech_started" not in " ".join(e.type for e in events)  # no server VAD
        assert word_error_rate(QUESTION, tr.transcript) <= 0.2, tr.transcript
        await conn.response.create()
        done = await recv_until(conn, lambda e: e.type == "response.done", events)
        assert done.response.status == "completed"
        assert any(e.type == "response.output_audio.delta" for e in events)

    events.clear()
    async with client(server).realtime.connect(model="dlm") as conn:
        await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        await conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Tell me a joke."}],
            }
        )
        await conn.response.create()
        done = await recv_until(conn, lambda e: e.type == "response.done", events)
    types = [e.type for e in events]
    assert "conversation.item.added" in types and "response.output_text.done" in types
    assert "response.output_audio.delta" not in types
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta").strip()
    assert text and done.response.status == "completed"
    assert next(e for e in events if e.type == "response.output_text.done").text == text


def is_error(e) -> bool:
    return e.type == "error"


async def test_malformed_events_get_errors_and_the_connection_lives(server):
    events: list = []
    async with client(server).realtime.connect(model="dlm") as conn:
        await recv_until(conn, lambda e: e.type == "session.created", events)
        cases = [
            (
                {"type": "session.update", "session": {"type": "realtime", "bogus_field": 1}},
                "session.bogus_field",
            ),
            (
                {
                    "type": "session.update",
                    "session": {
                        "audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "soon"}}}
                    },
                },
                "session.audio.input.turn_detection.eagerness",
            ),
            ({"type": "session.update", "session": {"dlm": {"preset": "warp"}}}, "session.dlm"),
            ({"type": "input_audio_buffer.append", "audio": "not base64!!"}, "audio"),
            ({"type": "no.such.event"}, "type"),
            ({"type": "conversation.item.truncate", "item_id": "item_nope", "audio_end_ms": 10}, "item_id"),
        ]
        for ev, param in cases:
            await conn.send(ev)
            err = await recv_until(conn, is_error, events, timeout=10)
            assert err.error.param == param, (ev, err.error)
            assert err.error.message
        await conn.send_raw("{not json")
        err = await recv_until(conn, is_error, events, timeout=10)
        assert err.error.code == "invalid_json"
        await conn.response.cancel()
        err = await recv_until(conn, is_error, events, timeout=10)
        assert err.error.code == "response_cancel_not_active"
        # Still alive and still configurable.
        await conn.session.update(
            session={"type": "realtime", "dlm": {"preset": "fastest", "threshold": 0.8}}
        )
        upd = await recv_until(conn, lambda e: e.type == "session.updated", events, timeout=10)
        # The SDK keeps fields it does not know (our `dlm` extension) in pydantic's model_extra.
        dlm = (upd.session.model_extra or {}).get("dlm")
        assert dlm is not None and dlm["preset"] == "fastest" and dlm["threshold"] == 0.8, upd.session
    for path in ("/healthz", "/", "/app.js"):
        assert await asyncio.to_thread(http_get, server.port, path)
    with pytest.raises(urllib.error.HTTPError) as e:
        await asyncio.to_thread(http_get, server.port, "/favicon.ico")
    assert e.value.code == 404


async def test_barge_in(server, engines):
    """Speak during the reply: the reply is cancelled, no audio of it arrives after speech_started, the
    interrupting question gets its own answer, and the history keeps only what was played."""
    events: list = []
    async with client(server).realtime.connect(model="dlm") as conn:
        await recv_until(conn, lambda e: e.type == "session.created", events)
        sender = asyncio.create_task(stream(conn, speech([0.3, QUESTION, TRAIL_S])))
        first = await recv_until(conn, lambda e: e.type == "response.output_audio.delta", events)
        old = first.response_id
        sender.cancel()
        await asyncio.sleep(HEARD_S)
        # The user talks over the reply (the client keeps streaming its microphone).
        sender = asyncio.create_task(stream(conn, speech([BARGE_IN, TRAIL_S])))
        started = await recv_until(conn, lambda e: e.type == "input_audio_buffer.speech_started", events)
        cancelled = await recv_until(
            conn, lambda e: e.type == "response.done" and e.response.id == old, events
        )
        new_done = await recv_until(
            conn, lambda e: e.type == "response.done" and e.response.id != old, events
        )
        await sender
    assert cancelled.response.status == "cancelled"
    after = events[events.index(started) + 1 :]
    assert not [e for e in after if e.type == "response.output_audio.delta" and e.response_id == old]
    assert new_done.response.status == "completed"
    heard = [
        e.transcript for e in events if e.type == "conversation.item.input_audio_transcription.completed"
    ]
    assert len(heard) == 2 and word_error_rate(BARGE_IN, heard[1]) <= BARGE_IN_MAX_WER, heard
    # The cancelled item keeps only what was played: a prefix of the full reply.
    full = expected_reply(engines, heard[0])
    kept = next(
        e for e in events if e.type == "response.output_audio_transcript.done" and e.response_id == old
    ).transcript
    assert normalize_text(full).startswith(normalize_text(kept)), (kept, full)
    assert len(kept) < len(full), (kept, full)


async def test_two_sessions_at_once(server, engines):
    """Two clients talk at the same time; each gets the answer to its own question."""
    questions = [QUESTION, "Hello, how are you today?"]

    async def one(q):
        events: list = []
        async with client(server).realtime.connect(model="dlm") as conn:
            await conn.session.update(
                session={
                    "type": "realtime",
                    "output_modalities": ["text"],
                    "audio": {"input": {"turn_detection": None}},
                }
            )
            await conn.conversation.item.create(
                item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": q}]}
            )
            await conn.response.create()
            await recv_until(conn, lambda e: e.type == "response.done", events)
        return "".join(e.delta for e in events if e.type == "response.output_text.delta").strip()

    got = await asyncio.gather(*(one(q) for q in questions))
    want = [expected_reply(engines, q) for q in questions]
    assert got == want and got[0] != got[1], (got, want)
