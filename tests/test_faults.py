"""Faults inside one session's stages, and clients that vanish mid-reply.

A fault (an exception) in the LM or in piper ends that response with `response.done` status `failed`
and an `error`; a fault in the VAD or in Whisper is an `error`; in every case that session takes the
next turn and other sessions never notice. A client that disconnects mid-reply leaves nothing behind:
its generation stops, its KV cache is freed, its endpointer thread ends and no task of it is left.
Faults are injected by wrapping the real engines, which do the real work around the fault.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import numpy as np
import pytest

from assistant import frames as F
from assistant.engines import Engines
from assistant.session import Session
from audio import pcm
from testkit.speech import speech_samples
from tests.conftest import VOICE_PAIRS, session_config

QUESTION = VOICE_PAIRS[0][0]
FRAME_TIMEOUT_S = 60
SETTLE_S = 1.5  # a loaded machine finishes the step in flight well within this
TRAILING_SILENCE_S = 2.5  # ends the turn whatever the end-of-turn judge thinks (it waits 2 s at most)


class Injected(RuntimeError):
    pass


class FaultyLM:
    """The real LM; the first reply it streams fails after `after` chunks."""

    def __init__(self, lm, after: int = 0):
        self.lm, self.after, self.failed = lm, after, False

    def __getattr__(self, name):
        return getattr(self.lm, name)

    def reply(self, messages, cfg=None, session_id=None, **kw):
        it = self.lm.reply(messages, cfg, session_id=session_id, **kw)
        if self.failed:
            return it
        self.failed = True
        return self._failing(it)

    def _failing(self, it):
        try:
            for i, chunk in enumerate(it):
                if i == self.after:
                    raise Injected("the LM failed")
                yield chunk
        finally:
            it.close()


class FaultyTTS:
    """The real piper voice; its first piece fails."""

    def __init__(self, tts):
        self.tts, self.failed = tts, False

    def __getattr__(self, name):
        return getattr(self.tts, name)

    def synthesize_piece(self, piece, rate=None):
        if not self.failed:
            self.failed = True
            raise Injected("piper failed")
        return self.tts.synthesize_piece(piece, rate=rate)


class FaultyASR:
    """The real Whisper; its first transcription fails."""

    def __init__(self, asr):
        self.asr, self.name, self.failed = asr, asr.name, False

    def transcribe(self, x):
        if not self.failed:
            self.failed = True
            raise Injected("whisper failed")
        return self.asr.transcribe(x)


async def until(session: Session, done) -> list[F.Frame]:
    got = []

    async def loop():
        while True:
            got.append(await session.next_frame())
            if done(got[-1]):
                return got

    return await asyncio.wait_for(loop(), FRAME_TIMEOUT_S)


def is_done(f) -> bool:
    return isinstance(f, F.ResponseDone)


async def text_turn(session: Session) -> list[F.Frame]:
    await session.add_text(QUESTION)
    await session.create_response()
    return await until(session, is_done)


@pytest.mark.parametrize("stage", ["lm", "tts"])
async def test_a_failing_reply_stage_fails_the_response_and_nothing_else(engines, stage):
    faulty = Engines(
        lm=FaultyLM(engines.lm) if stage == "lm" else engines.lm,
        asr=engines.asr,
        tts=FaultyTTS(engines.tts) if stage == "tts" else engines.tts,
        tts_lock=engines.tts_lock,
    )
    hit, other = Session(faulty, session_config()), Session(engines, session_config())
    try:
        got, other_got = await asyncio.gather(text_turn(hit), text_turn(other))
        errors = [f for f in got if isinstance(f, F.ErrorFrame)]
        assert errors and errors[0].code == "response_failed" and "Injected" in errors[0].message
        assert got[-1].status == "failed"
        assert other_got[-1].status == "completed" and not [
            f for f in other_got if isinstance(f, F.ErrorFrame)
        ]
        again = await text_turn(hit)  # the same session takes the next turn
        assert again[-1].status == "completed" and not [f for f in again if isinstance(f, F.ErrorFrame)]
    finally:
        await hit.close()
        await other.close()


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * pcm.SAMPLE_RATE_ASR), np.float32)


async def speak(session: Session, x: np.ndarray) -> None:
    chunk = pcm.ms_to_samples(100, pcm.SAMPLE_RATE_ASR)
    for i in range(0, len(x), chunk):
        await session.push_audio(x[i : i + chunk], pcm.SAMPLE_RATE_ASR)


async def test_a_failing_transcription_is_an_error_and_the_next_turn_works(engines):
    faulty = Engines(lm=engines.lm, asr=FaultyASR(engines.asr), tts=engines.tts, tts_lock=engines.tts_lock)
    s = Session(faulty, session_config())
    try:
        said = np.concatenate([silence(0.3), speech_samples(QUESTION), silence(TRAILING_SILENCE_S)])
        await speak(s, said)
        got = await until(s, lambda f: isinstance(f, F.ErrorFrame))
        assert got[-1].code == "transcription_failed" and "Injected" in got[-1].message
        await speak(s, said)  # the same session hears the next turn
        got = await until(s, is_done)
        heard = [f.text for f in got if isinstance(f, F.UserTranscript)]
        assert heard and heard[-1] and got[-1].status == "completed"
    finally:
        await s.close()


async def test_a_failing_vad_is_an_error_and_the_next_turn_works(engines, monkeypatch):
    from audio.vad import SileroModel

    real_call, failed = SileroModel.__call__, []

    def failing_once(self, frame):
        if not failed:
            failed.append(True)
            raise Injected("the VAD failed")
        return real_call(self, frame)

    monkeypatch.setattr(SileroModel, "__call__", failing_once)
    s = Session(engines, session_config())
    try:
        await speak(s, silence(0.2))
        got = await until(s, lambda f: isinstance(f, F.ErrorFrame))
        assert "Injected" in got[-1].message
        await speak(s, np.concatenate([silence(0.3), speech_samples(QUESTION), silence(TRAILING_SILENCE_S)]))
        assert (await until(s, is_done))[-1].status == "completed"
    finally:
        await s.close()


def _loop_tasks(server) -> int:
    async def count():
        return len(asyncio.all_tasks())

    return asyncio.run_coroutine_threadsafe(count(), server.loop).result(10)


def _session_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if not t.name.startswith("asyncio_")}


async def test_a_client_that_vanishes_mid_reply_leaves_nothing_behind(server, engines):
    from websockets.asyncio.client import connect

    tasks_before, threads_before = _loop_tasks(server), _session_threads()
    async with connect(f"ws://127.0.0.1:{server.port}/v1/realtime") as ws:
        session_id = json.loads(await ws.recv())["session"]["id"]
        await ws.send(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": QUESTION}]}
        await ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
        await ws.send(json.dumps({"type": "response.create"}))
        while (
            json.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT_S))["type"]
            != "response.output_audio.delta"
        ):
            pass
        ws.transport.abort()  # gone, without a close frame
    time.sleep(SETTLE_S)
    calls = engines.lm.forward_calls
    time.sleep(SETTLE_S)
    assert engines.lm.forward_calls == calls  # no generation for a client that is gone
    assert engines.lm.session_cached_tokens(session_id) == 0  # its KV cache is freed
    assert _session_threads() <= threads_before  # its endpointer thread ended
    assert _loop_tasks(server) <= tasks_before  # and no task of it is left on the server's loop
