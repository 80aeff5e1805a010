"""The diffusion LM as a network service: the official `openai` SDK against `lm-server`, and voice sessions
whose LM is that server (`serve --lm-url`).

Real parts only: the test LM (tests/conftest.py) served over loopback HTTP, the SDK's own HTTP client,
Whisper and piper in the gateway. Replies are checked against what the same LM answers in-process (greedy
decoding: the same text), and tool calls against the tiny test model's memorised calls. A vanishing
client is shown by slowing each LM step as a bigger model's would be (as tests/test_faults.py does), so
that its reply is still being made when it leaves.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from assistant import frames as F
from assistant.config import MAX_REPLY_TOKENS, DlmKnobs, ServerConfig
from assistant.engines import Engines
from assistant.lm_server import LmServer, LmServerConfig
from assistant.remote_lm import RemoteLM
from assistant.session import Session
from testkit.speech import make_conversation_wav, word_error_rate
from testkit.tool_chat import CLIENT_ANSWER, CLIENT_CALL, CLIENT_RESULT, CLIENT_TOOL, tool_definitions
from tests.conftest import ROOT, TEST_INSTRUCTIONS, VOICE_PAIRS, ServerThread, session_config

openai = pytest.importorskip("openai")

MODEL = "dlm-test"
KEY = "k" * 24  # long enough for ServerConfig
QUESTION, ANSWER = VOICE_PAIRS[0]
JOKE = VOICE_PAIRS[2][0]
TIMEOUT_S = 60
STEP_DELAY_S = 0.1  # a slowed LM step: the tiny model's joke then takes ~1.5 s at one token per step
ONE_TOKEN_PER_STEP = {"threshold": 1.0, "max_steps_per_block": 64}
NOTHING_MORE_S = 0.5  # after a client left, the engine is watched this long for stray work
TINY = TEST_INSTRUCTIONS is not None
needs_tiny = pytest.mark.skipif(not TINY, reason="only the tiny test model is known to make these calls")


class LmServerThread:
    """An LmServer on its own event loop in a background thread."""

    def __init__(self, engine, server: ServerConfig | None = None):
        self.loop = asyncio.new_event_loop()
        cfg = LmServerConfig(server or ServerConfig(port=0), model_name=MODEL)
        self.server = LmServer(engine, cfg)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(30)
        self.url = f"http://127.0.0.1:{self.server.port}/v1"

    def close(self):
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class SlowLM:
    """The real LM with every step STEP_DELAY_S slower; notes whether a reply ran to its end."""

    def __init__(self, lm):
        self.lm, self.finished, self.closed_early = lm, 0, 0

    def __getattr__(self, name):
        return getattr(self.lm, name)

    def reply(self, messages, cfg=None, session_id=None, **kw):
        return self._slowed(self.lm.reply(messages, cfg, session_id=session_id, **kw))

    def _slowed(self, it):
        ended = False
        try:
            for chunk in it:
                time.sleep(STEP_DELAY_S)
                yield chunk
            ended = True
            self.finished += 1
        finally:
            self.closed_early += not ended
            it.close()


@pytest.fixture(scope="module")
def lm_server(engines):
    s = LmServerThread(engines.lm)
    yield s
    s.close()


def client(url: str, key: str = "unused"):
    return openai.AsyncOpenAI(api_key=key, base_url=url, max_retries=0)


def local_reply(engines, messages: list[dict]) -> str:
    """What the LM answers in-process with the server's default decoding."""
    cfg = DlmKnobs().sampler(MAX_REPLY_TOKENS, engines.lm.family)
    return "".join(c.text for c in engines.lm.reply(messages, cfg))


def asked(text: str, instructions: str | None = TEST_INSTRUCTIONS) -> list[dict]:
    system = [{"role": "system", "content": instructions}] if instructions else []
    return [*system, {"role": "user", "content": text}]


async def until_idle(server: LmServer) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while server.generations and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert not server.generations, "a generation went on after its client left"


# ---- the official SDK against lm-server -----------------------------------------------------------------


async def test_the_sdk_streams_the_reply_the_engine_makes(lm_server, engines):
    c = client(lm_server.url)
    assert [m.id for m in (await c.models.list()).data] == [MODEL]
    stream = await c.chat.completions.create(
        model=MODEL, messages=asked(QUESTION), stream=True, stream_options={"include_usage": True}
    )
    deltas, finish, usage = [], None, None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            deltas.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    text = "".join(deltas)
    assert text == local_reply(engines, asked(QUESTION))
    if TINY:
        assert text == ANSWER
    assert len([d for d in deltas if d]) > 1, "the reply came in one piece, not streamed"
    assert finish == "stop" and usage.completion_tokens > 0 and usage.prompt_tokens > 0
    whole = await c.chat.completions.create(model=MODEL, messages=asked(QUESTION))
    assert whole.choices[0].message.content == text and whole.choices[0].finish_reason == "stop"


@needs_tiny
async def test_a_tool_call_streams_as_tool_call_deltas_and_its_result_is_answered(lm_server):
    c, tools = client(lm_server.url), tool_definitions((CLIENT_TOOL,))
    request, args = CLIENT_CALL
    messages = [{"role": "user", "content": request}]
    stream = await c.chat.completions.create(model=MODEL, messages=messages, tools=tools, stream=True)
    calls, content, finish = [], "", None
    async for chunk in stream:
        delta = chunk.choices[0].delta
        calls += delta.tool_calls or []
        content += delta.content or ""
        finish = chunk.choices[0].finish_reason or finish
    assert [(tc.index, tc.type, tc.function.name) for tc in calls] == [(0, "function", CLIENT_TOOL["name"])]
    assert json.loads(calls[0].function.arguments) == args and calls[0].id
    assert finish == "tool_calls" and not content.strip()
    forced = await c.chat.completions.create(
        model=MODEL, messages=messages, tools=tools, tool_choice="required"
    )
    assert forced.choices[0].message.tool_calls[0].function.name == CLIENT_TOOL["name"]
    call = {
        "id": calls[0].id,
        "type": "function",
        "function": {"name": CLIENT_TOOL["name"], "arguments": "{}"},
    }
    call["function"]["arguments"] = calls[0].function.arguments
    after = [
        *messages,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": calls[0].id, "content": CLIENT_RESULT},
    ]
    answer = await c.chat.completions.create(model=MODEL, messages=after, tools=tools)
    assert answer.choices[0].message.content == CLIENT_ANSWER


@pytest.mark.parametrize(
    "body, param",
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        ({"temperature": 5}, "temperature"),
        ({"n": 2}, "n"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": [{"type": "function", "function": {"name": "no spaces allowed"}}]}, "tools[0]"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 100_000}, "messages"),  # it cannot fit the model's context
        ({"extra_body": {"dlm": {"preset": "warp"}}}, "dlm"),
    ],
)
async def test_a_bad_request_gets_an_openai_error_and_the_server_goes_on(lm_server, body, param):
    c = client(lm_server.url)
    kw = {"model": MODEL, "messages": [{"role": "user", "content": QUESTION}], **body}
    with pytest.raises(openai.BadRequestError) as err:
        await c.chat.completions.create(**kw)
    assert err.value.status_code == 400 and err.value.body["param"] == param, err.value.body
    assert err.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        await c.chat.completions.create(model="no-such-model", messages=kw["messages"])
    ok = await c.chat.completions.create(model=MODEL, messages=asked(QUESTION))
    assert ok.choices[0].finish_reason == "stop"


def post(url: str, data: bytes, headers: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


async def test_broken_json_a_wrong_path_a_foreign_origin_and_a_wrong_key_are_refused_in_openai_shape(engines):
    keyed = LmServerThread(engines.lm, ServerConfig(port=0, api_key=KEY))
    try:
        status, body = await asyncio.to_thread(
            post, keyed.url + "/chat/completions", b"{not json", _bearer(KEY)
        )
        assert status == 400 and "JSON" in body["error"]["message"], body
        status, body = await asyncio.to_thread(post, keyed.url + "/no/such/path", b"{}", _bearer(KEY))
        assert status == 404 and body["error"]["code"] == "not_found", body
        foreign = {**_bearer(KEY), "Origin": "https://evil.example"}  # another site's page in a browser
        status, body = await asyncio.to_thread(post, keyed.url + "/chat/completions", b"{}", foreign)
        assert status == 403 and body["error"]["code"] == "forbidden", body
        with pytest.raises(openai.AuthenticationError):
            await client(keyed.url, "wrong-key-of-enough-length").chat.completions.create(
                model=MODEL, messages=asked(QUESTION)
            )
        health = await asyncio.to_thread(_get, f"http://127.0.0.1:{keyed.server.port}/healthz")
        assert health["ok"] is True  # a load balancer's check needs no key
        ok = await client(keyed.url, KEY).chat.completions.create(model=MODEL, messages=asked(QUESTION))
        assert ok.choices[0].message.content
    finally:
        keyed.close()


def _bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as r:
        return json.loads(r.read())


async def test_a_client_that_closes_its_stream_stops_the_generation(engines):
    slow = SlowLM(engines.lm)
    s = LmServerThread(slow)
    try:
        stream = await client(s.url).chat.completions.create(
            model=MODEL, messages=asked(JOKE), stream=True, extra_body={"dlm": ONE_TOKEN_PER_STEP}
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break  # the reply has begun: leave mid-stream
        await stream.close()
        await until_idle(s.server)
        calls = engines.lm.forward_calls
        await asyncio.sleep(NOTHING_MORE_S)
        assert engines.lm.forward_calls == calls  # no forward pass for a client that is gone
        assert slow.finished == 0 and slow.closed_early == 1, "the reply was not closed before its end"
        assert s.server.outcomes["disconnected"] == 1, s.server.outcomes
    finally:
        s.close()


# ---- a voice gateway whose LM is the server ----------------------------------------------------------------


def gateway_engines(engines, url: str) -> Engines:
    """The gateway's models: Whisper, piper and the turn judge here, the LM behind `url`."""
    return Engines(
        lm=RemoteLM.connect(url),
        asr=engines.asr,
        tts=engines.tts,
        tts_lock=engines.tts_lock,
        judge=engines.judge,
    )


async def test_a_spoken_realtime_turn_through_a_gateway_whose_lm_is_remote(lm_server, engines):
    cfg = session_config(builtin_tools=False)  # the reply is compared with one made without tools
    gateway = ServerThread(gateway_engines(engines, lm_server.url), session=cfg)
    x = make_conversation_wav([0.5, QUESTION, 2.5], rate=24000).samples
    events: list = []
    try:
        async with client(f"http://127.0.0.1:{gateway.port}/v1").realtime.connect(model="dlm") as conn:
            await _until(conn, "session.created", events)
            sender = asyncio.create_task(_stream_audio(conn, x))
            done = await _until(conn, "response.done", events)
            metrics = await _until(conn, "dlm.turn_metrics", events)
            await sender
    finally:
        gateway.close()
    heard = next(e for e in events if e.type == "conversation.item.input_audio_transcription.completed")
    assert word_error_rate(QUESTION, heard.transcript) <= 0.2, heard.transcript
    said = "".join(e.delta for e in events if e.type == "response.output_audio_transcript.delta")
    assert done.response.status == "completed"
    assert said.strip() == local_reply(engines, asked(heard.transcript, cfg.instructions)).strip()
    if TINY:
        assert said.strip() == ANSWER
    if said.strip():  # spoken, not only written
        assert any(e.type == "response.output_audio.delta" for e in events)
    lat = metrics.latency_ms
    assert lat["lm_round_trip"] is not None and lat["lm_round_trip"] > 0, lat
    if said.strip():  # the network LM's first text, counted from the request
        assert lat["lm_first_text"] is not None and lat["lm_round_trip"] <= lat["lm_first_text"], lat
    assert lm_server.server.outcomes["completed"] >= 1


async def _until(conn, kind: str, events: list):
    async def loop():
        while True:
            events.append(ev := await conn.recv())
            if ev.type == kind:
                return ev

    return await asyncio.wait_for(loop(), TIMEOUT_S)


async def _stream_audio(conn, x) -> None:
    """24 kHz audio in 40 ms appends, paced like a microphone."""
    import base64

    from audio import pcm

    step, t0 = pcm.ms_to_samples(40, pcm.SAMPLE_RATE_API), time.perf_counter()
    for i, start in enumerate(range(0, len(x), step)):
        audio = base64.b64encode(pcm.float_to_int16_bytes(x[start : start + step])).decode()
        await conn.input_audio_buffer.append(audio=audio)
        await asyncio.sleep(max(0.0, t0 + (i + 1) * 0.04 - time.perf_counter()))


async def next_of(session: Session, kind: type) -> F.Frame:
    async def loop():
        while not isinstance(frame := await session.next_frame(), kind):
            pass
        return frame

    return await asyncio.wait_for(loop(), TIMEOUT_S)


async def test_cancelling_a_reply_closes_its_remote_stream(engines):
    slow = SlowLM(engines.lm)
    s = LmServerThread(slow)
    cfg = session_config(output_modalities=("text",), turn_detection=None, dlm=DlmKnobs(**ONE_TOKEN_PER_STEP))
    session = Session(gateway_engines(engines, s.url), cfg)
    try:
        await session.add_text(JOKE)
        await session.create_response()
        await next_of(session, F.TextDelta)  # the reply is streaming
        assert await session.cancel("turn_detected")  # as a barge-in does
        assert (await next_of(session, F.ResponseDone)).status == "cancelled"
        await until_idle(s.server)
        assert slow.finished == 0 and s.server.outcomes["disconnected"] == 1, s.server.outcomes
    finally:
        await session.close()
        s.close()


@needs_tiny
async def test_a_builtin_tool_runs_in_the_gateway_on_the_remote_lm_s_call(lm_server, engines):
    cfg = session_config(output_modalities=("text",), turn_detection=None, builtin_tools=True)
    session = Session(gateway_engines(engines, lm_server.url), cfg)
    try:
        await session.add_text("What time is it?")
        await session.create_response()
        call = await next_of(session, F.FunctionCall)
        output = await next_of(session, F.FunctionOutput)
        done = await next_of(session, F.ResponseDone)
    finally:
        await session.close()
    assert call.name == "get_time" and json.loads(call.arguments) == {}
    assert output.call_id == call.call_id and "weekday" in json.loads(output.output), output.output
    assert done.status == "completed"


@needs_tiny
async def test_a_required_call_to_a_client_function_round_trips_through_the_remote_lm(lm_server, engines):
    """tool_choice "required" travels as itself: the server starts the reply with a call's opening, and the
    gateway, whose parser already holds that opening, reads the rest of the call from the tool-call delta."""
    cfg = session_config(
        output_modalities=("text",), turn_detection=None, builtin_tools=True, tools=(CLIENT_TOOL,)
    )
    session = Session(gateway_engines(engines, lm_server.url), cfg.replace(tool_choice="required"))
    try:
        await session.add_text(CLIENT_CALL[0])
        await session.create_response()
        call = await next_of(session, F.FunctionCall)
        done = await next_of(session, F.ResponseDone)
    finally:
        await session.close()
    assert (call.name, json.loads(call.arguments)) == (CLIENT_TOOL["name"], CLIENT_CALL[1])
    assert done.status == "completed" and not done.text


def test_a_remote_lm_trims_the_history_by_its_estimate_and_keeps_calls_with_results():
    lm = RemoteLM("http://127.0.0.1:1/v1", None, MODEL, context_len=64, knows_tools=True)
    call = {"type": "function", "function": {"name": "get_time", "arguments": {}}}
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "x" * 100},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "y" * 100},
        {"role": "user", "content": "What time is it?"},
    ]
    assert lm.messages_to_drop(messages[:1] + messages[-1:], 16) == 0  # it fits
    assert lm.messages_to_drop(messages, 16) == 3  # the call goes with its result; the last one stays
    assert lm.messages_to_drop(messages, 60) == 3  # nothing fits: all but the last
    with pytest.raises(ValueError):
        lm.messages_to_drop(messages, 64)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_the_command_line_refuses_an_lm_server_without_a_key_beyond_loopback_and_an_unreachable_lm():
    p = run_cli("lm-server", "--host", "0.0.0.0")
    assert p.returncode == 2 and "API key" in p.stderr, p.stderr
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    p = run_cli("chat", "--lm-url", f"http://127.0.0.1:{closed}/v1", "--text", QUESTION)
    assert p.returncode == 1 and "cannot reach the LM server" in p.stderr, p.stderr
