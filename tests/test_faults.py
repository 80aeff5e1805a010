"""Faults inside one session's stages, and clients that vanish mid-reply.

A fault (an exception) in the LM or in piper ends that response with `response.done` status `failed`
and an `error`; a fault in the VAD, in Whisper or in the end-of-turn judge is an `error`; in every case
that session takes the next turn and other sessions never notice. A built-in tool that raises gives the
model an error result, and the reply goes on. A client that disconnects mid-reply (text or voice) stops
its generation and its synthesis as soon as the server sees it go (no LM step but the one under way, no
new piper piece begins after that, as the stages note themselves: an order, not a duration), and leaves
nothing behind: no KV cache, thread, task or session
object. Faults are injected by wrapping the real engines, which do the real work around the fault.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import threading
import time
import weakref

import numpy as np
import pytest

from assistant import frames as F
from assistant.config import DlmKnobs
from assistant.engines import Engines
from assistant.realtime import RealtimeConnection
from assistant.session import Session
from audio import pcm
from testkit.speech import speech_samples
from tests.conftest import TEST_INSTRUCTIONS, VOICE_PAIRS, ServerThread, session_config

pytestmark = pytest.mark.slow  # whole spoken turns with faults injected

QUESTION = VOICE_PAIRS[0][0]
JOKE = VOICE_PAIRS[2][0]  # a two-sentence reply: two piper pieces
FRAME_TIMEOUT_S = 60
TRAILING_SILENCE_S = 2.5  # ends the turn whatever the end-of-turn judge thinks (it waits 2 s at most)
# A vanished client's generation stops at once: of the ~13 steps its reply had left, at most the one the
# engine thread was already asked for (and the one in flight) begin after the server saw it go.
LATE_STEPS = 2
# A vanishing client's reply must still be going when it leaves: each LM step is slowed as a bigger model's
# would be, and one token is committed per step (17 steps for the tiny model's replies, ~0.8 s in all).
STEP_DELAY_S = 0.04
ONE_TOKEN_PER_STEP = DlmKnobs(threshold=1.0, max_steps_per_block=64)
VANISH_AT_STEP = 4  # the "lm" case leaves as this LM step begins: ~13 steps (~0.5 s) would be left
NOTHING_MORE_S = 0.5  # after the session is gone, the engine is watched this long for stray work


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


class SilentFirstTTS(FaultyTTS):
    """The real piper voice; its first piece makes no sound (piper makes none for "..." or a lone quote)."""

    def synthesize_piece(self, piece, rate=None):
        if not self.failed:
            self.failed = True
            return iter(())
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


class FaultyJudge:
    """The real end-of-turn judge; its first call of `method` ("p_audio" or "p_complete") fails."""

    def __init__(self, judge, method: str):
        self.judge, self.method, self.failed = judge, method, False

    def __getattr__(self, name):
        return getattr(self.judge, name)

    def p_audio(self, audio_16k):
        self._fail_once("p_audio")
        return self.judge.p_audio(audio_16k)

    def p_complete(self, p_audio, text, p_last_word=None):
        self._fail_once("p_complete")
        return self.judge.p_complete(p_audio, text, p_last_word)

    def _fail_once(self, method: str) -> None:
        if method == self.method and not self.failed:
            self.failed = True
            raise Injected(f"the turn judge's {method} failed")


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


def has_error(frames: list[F.Frame]) -> bool:
    return any(isinstance(f, F.ErrorFrame) for f in frames)


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
        assert other_got[-1].status == "completed" and not has_error(other_got)
        again = await text_turn(hit)  # the same session takes the next turn
        assert again[-1].status == "completed" and not has_error(again)
    finally:
        await hit.close()
        await other.close()


async def test_a_first_piece_without_sound_does_not_stall_the_reply(engines):
    # The LM waits for the reply's first audio (reply.py); a first piece with no sound must end that wait.
    tts = SilentFirstTTS(engines.tts)
    session = Session(
        Engines(lm=engines.lm, asr=engines.asr, tts=tts, tts_lock=engines.tts_lock), session_config()
    )
    try:
        await session.add_text(JOKE)  # a two-sentence reply: the second piece is spoken
        await session.create_response()
        got = await until(session, is_done)
        assert tts.failed and got[-1].status == "completed" and not has_error(got)
        assert any(isinstance(f, F.AudioOut) for f in got)
    finally:
        await session.close()


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * pcm.SAMPLE_RATE_ASR), np.float32)


def said(text: str) -> np.ndarray:
    """A spoken turn at 16 kHz: a little silence, the words, and enough silence to end the turn."""
    return np.concatenate([silence(0.3), speech_samples(text), silence(TRAILING_SILENCE_S)])


async def speak(session: Session, x: np.ndarray) -> None:
    chunk = pcm.ms_to_samples(100, pcm.SAMPLE_RATE_ASR)
    for i in range(0, len(x), chunk):
        await session.push_audio(x[i : i + chunk], pcm.SAMPLE_RATE_ASR)


async def voice_turn(session: Session, text: str) -> list[F.Frame]:
    """Speak `text`; the frames up to the reply to it. Frames an earlier turn still sends (a turn that
    survived a fault) are skipped: the reply counts once the transcript of these words came."""
    await speak(session, said(text))
    key = text.split()[-1].strip("?.!").lower()  # Whisper punctuates as it likes; the last word stays
    heard, got = False, []
    while True:
        got += await until(session, lambda f: is_done(f) or isinstance(f, F.UserTranscript))
        if isinstance(got[-1], F.UserTranscript):
            heard = heard or key in got[-1].text.lower()
        elif heard:
            return got


async def fault_then_next_turn(hit: Session, other: Session) -> tuple[list, list, list]:
    """The hit session hears a turn that fails; the other session talks meanwhile; then the hit session
    takes its next turn. Returns (the hit session's frames up to its error, the other's, the next turn's)."""

    async def failing_turn():
        await speak(hit, said(JOKE))
        return await until(hit, lambda f: isinstance(f, F.ErrorFrame))

    got, other_got = await asyncio.gather(failing_turn(), voice_turn(other, QUESTION))
    return got, other_got, await voice_turn(hit, QUESTION)


def assert_unaffected_and_recovered(other_got: list, again: list) -> None:
    assert other_got[-1].status == "completed" and not has_error(other_got), other_got
    heard = [f.text for f in again if isinstance(f, F.UserTranscript)]
    assert heard and heard[-1] and again[-1].status == "completed", again


async def test_a_failing_transcription_is_an_error_and_the_next_turn_works(engines):
    asr = FaultyASR(engines.asr)
    faulty = Engines(lm=engines.lm, asr=asr, tts=engines.tts, tts_lock=engines.tts_lock, judge=engines.judge)
    hit, other = Session(faulty, session_config()), Session(engines, session_config())
    try:
        got, other_got, again = await fault_then_next_turn(hit, other)
        assert got[-1].code == "transcription_failed" and "Injected" in got[-1].message
        assert asr.failed
        assert_unaffected_and_recovered(other_got, again)
    finally:
        await hit.close()
        await other.close()


async def test_a_failing_vad_is_an_error_and_the_next_turn_works(engines, monkeypatch):
    from turn_taking.vad import SileroModel

    hit, other = Session(engines, session_config()), Session(engines, session_config())
    target = hit._listener._ep.vad.model  # only the hit session's VAD fails
    real_call, failed = SileroModel.__call__, []

    def failing_once(self, frame):
        if self is target and not failed:
            failed.append(True)
            raise Injected("the VAD failed")
        return real_call(self, frame)

    monkeypatch.setattr(SileroModel, "__call__", failing_once)
    try:
        got, other_got, again = await fault_then_next_turn(hit, other)
        assert got[-1].code == "vad_failed" and "Injected" in got[-1].message and failed
        assert_unaffected_and_recovered(other_got, again)
    finally:
        await hit.close()
        await other.close()


@pytest.mark.parametrize("method", ["p_audio", "p_complete"])
async def test_a_failing_turn_judge_is_an_error_and_the_next_turn_works(engines, method):
    assert engines.judge is not None, "the test engines load the end-of-turn judge"
    judge = FaultyJudge(engines.judge, method)
    faulty = Engines(lm=engines.lm, asr=engines.asr, tts=engines.tts, tts_lock=engines.tts_lock, judge=judge)
    hit, other = Session(faulty, session_config()), Session(engines, session_config())
    assert hit.cfg.endpointing.semantic is not None  # semantic_vad: the judge decides where turns end
    try:
        got, other_got, again = await fault_then_next_turn(hit, other)
        assert got[-1].code == "turn_detection_failed", got[-1]
        assert f"Injected: the turn judge's {method} failed" in got[-1].message and judge.failed, got[-1]
        assert_unaffected_and_recovered(other_got, again)
    finally:
        await hit.close()
        await other.close()


class CountingLM:
    """The real LM, counting the passes it is asked for."""

    def __init__(self, lm):
        self.lm, self.passes = lm, 0

    def __getattr__(self, name):
        return getattr(self.lm, name)

    def reply(self, *args, **kw):
        self.passes += 1
        return self.lm.reply(*args, **kw)


@pytest.mark.skipif(TEST_INSTRUCTIONS is None, reason="only the tiny test model is known to call get_time")
async def test_a_builtin_tool_that_raises_gives_the_model_an_error_and_the_reply_goes_on(engines):
    lm = CountingLM(engines.lm)
    counted = Engines(lm=lm, asr=engines.asr, tts=engines.tts, tts_lock=engines.tts_lock)
    s = Session(counted, session_config(builtin_tools=True, output_modalities=("text",)))

    def broken_clock():
        raise OSError("the clock is on fire")

    s.toolbox._tools["get_time"] = broken_clock
    try:
        await s.add_text("What time is it?")
        await s.create_response()
        got = await until(s, is_done)
        calls = [f for f in got if isinstance(f, F.FunctionCall)]
        outputs = [f for f in got if isinstance(f, F.FunctionOutput)]
        assert [c.name for c in calls] == ["get_time"], got
        assert json.loads(outputs[0].output) == {"error": "The get_time tool failed."}
        assert got[-1].status == "completed" and not has_error(got), got
        assert lm.passes == 2  # the model was given the error and went on from it, in the same response
        assert (await text_turn(s))[-1].status == "completed"  # and the session takes the next turn
    finally:
        await s.close()


class SlowLM:
    """The real LM with every step (one forward pass) STEP_DELAY_S slower, as a bigger model's would be.
    Each step's start and end are noted in the thread that runs it; `begun` is set as step `at` begins."""

    def __init__(self, lm, at: int):
        self.lm, self.at = lm, at
        self.steps: list[tuple[float, float]] = []  # (start, end), perf_counter
        self.finished: float | None = None  # when a reply ran to its end
        self.begun = threading.Event()

    def __getattr__(self, name):
        return getattr(self.lm, name)

    def reply(self, messages, cfg=None, session_id=None, **kw):
        return self._timed(self.lm.reply(messages, cfg, session_id=session_id, **kw))

    def _timed(self, it):
        try:
            while True:
                t0 = time.perf_counter()
                if len(self.steps) + 1 == self.at:
                    self.begun.set()
                time.sleep(STEP_DELAY_S)
                chunk = next(it, None)
                self.steps.append((t0, time.perf_counter()))
                if chunk is None:
                    self.finished = time.perf_counter()
                    return
                yield chunk
        finally:
            it.close()


class TimedTTS:
    """The real piper voice; each call's start and end are noted in the thread that runs it, and `begun`
    is set as the first call starts."""

    def __init__(self, tts):
        self.tts = tts
        self.calls: list[list[float]] = []  # [start, end of its last chunk], perf_counter
        self.begun = threading.Event()

    def __getattr__(self, name):
        return getattr(self.tts, name)

    def synthesize_piece(self, piece, rate=None):
        call = [time.perf_counter(), time.perf_counter()]
        self.calls.append(call)
        self.begun.set()
        for chunk in self.tts.synthesize_piece(piece, rate=rate):
            call[1] = time.perf_counter()
            yield chunk


class Departure:
    """When the server saw the client go (its receive loop ended), and a weak reference to the session."""

    def __init__(self, monkeypatch):
        self.seen: float | None = None
        self.session = None
        receive = RealtimeConnection._receive

        async def noting(conn):
            self.session = weakref.ref(conn.session)
            try:
                await receive(conn)
            finally:
                self.seen = time.perf_counter()

        monkeypatch.setattr(RealtimeConnection, "_receive", noting)


def _loop_tasks(server) -> int:
    async def count():
        return len(asyncio.all_tasks())

    return asyncio.run_coroutine_threadsafe(count(), server.loop).result(10)


def _session_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if not t.name.startswith("asyncio_")}


def appends(x16: np.ndarray) -> list[str]:
    """16 kHz audio as the client's 100 ms input_audio_buffer.append events (pcm16 at 24 kHz)."""
    x, step = pcm.resample(x16, pcm.SAMPLE_RATE_ASR, pcm.SAMPLE_RATE_API), pcm.SAMPLE_RATE_API // 10
    return [
        json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm_bytes).decode()})
        for pcm_bytes in (pcm.float_to_int16_bytes(x[i : i + step]) for i in range(0, len(x), step))
    ]


async def vanish_mid_reply(port: int, turn: str, begun: threading.Event) -> str:
    """Ask (typed, or spoken as fast as the socket takes it), then vanish without a close frame as soon
    as `begun` is set (the stage is at work on the reply). Returns the session id."""
    from websockets.asyncio.client import connect

    async with connect(f"ws://127.0.0.1:{port}/v1/realtime") as ws:
        session_id = json.loads(await ws.recv())["session"]["id"]
        if turn == "text":
            item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": JOKE}]}
            await ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
            await ws.send(json.dumps({"type": "response.create"}))
        else:
            for append in appends(said(JOKE)):
                await ws.send(append)
        assert await asyncio.to_thread(begun.wait, FRAME_TIMEOUT_S), "the reply never reached the stage"
        ws.transport.abort()  # gone, without a close frame
    return session_id


async def until_gone(server: ServerThread) -> None:
    """Until the server has closed the session (its handler counted it out)."""
    deadline = time.monotonic() + FRAME_TIMEOUT_S
    while server.server.sessions and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert not server.server.sessions, "the session of a vanished client was never closed"


@pytest.mark.parametrize("turn, stage", [("text", "lm"), ("text", "tts"), ("voice", "tts")])
async def test_a_client_that_vanishes_mid_reply_stops_it_and_leaves_nothing_behind(
    engines, monkeypatch, turn, stage
):
    lm, tts = SlowLM(engines.lm, VANISH_AT_STEP), TimedTTS(engines.tts)
    probed = Engines(lm=lm, asr=engines.asr, tts=tts, tts_lock=engines.tts_lock, judge=engines.judge)
    departure = Departure(monkeypatch)
    # Audio is sent as fast as piper makes it, so a synthesis that goes on shows at once.
    server = ServerThread(probed, session=session_config(dlm=ONE_TOKEN_PER_STEP, audio_lead_ms=None))
    try:
        tasks_before, threads_before = _loop_tasks(server), _session_threads()
        session_id = await vanish_mid_reply(server.port, turn, lm.begun if stage == "lm" else tts.begun)
        await until_gone(server)
        calls = engines.lm.forward_calls
        await asyncio.sleep(NOTHING_MORE_S)
        assert engines.lm.forward_calls == calls  # no generation for a client that is gone
        gone = departure.seen
        assert lm.finished is None or lm.finished > gone, "the reply ended before the client left"
        late = [start for start, _ in lm.steps if start > gone]  # LM steps begun after the server saw it go
        assert len(late) <= LATE_STEPS, f"the LM took {len(late)} more steps for a client that is gone"
        # piper cannot be cut short: the piece it was making when the client left ends, and no other starts
        assert not [c for c in tts.calls if c[0] > gone], "piper started a piece for a client that is gone"
        assert engines.lm.session_cached_tokens(session_id) == 0  # its KV cache is freed
        assert _session_threads() <= threads_before  # its endpointer threads ended
        assert _loop_tasks(server) <= tasks_before  # and no task of it is left on the server's loop
        gc.collect()
        assert departure.session() is None  # nor the session itself (its audio, history, reply)
    finally:
        server.close()
