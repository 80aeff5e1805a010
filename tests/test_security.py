"""Who may use the server: Origin checks, API keys, limits per client, idle clients, static files, logs.

Each test runs its own AssistantServer (on the shared engines) with the configuration it is about, and
speaks raw HTTP where a real browser or a real attacker would send headers the SDK never sends.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import logging
import os
import urllib.request

import pytest

from assistant.config import ServerConfig
from tests.conftest import ServerThread

KEY = "k3y-" + "x" * 28
EVIL = "http://evil.example"


@pytest.fixture()
def served(engines):
    """A factory: served(**ServerConfig fields) -> a running server, stopped after the test."""
    started = []

    def start(**kw) -> ServerThread:
        s = ServerThread(engines, ServerConfig(port=0, **kw))
        started.append(s)
        return s

    yield start
    for s in started:
        s.close()


def handshake(port: int, headers: dict, path: str = "/v1/realtime") -> tuple[int, dict]:
    """A websocket opening handshake with exactly these headers: (HTTP status, response headers)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    base = {
        "Host": f"127.0.0.1:{port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
    }
    conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
    for name, value in {**base, **headers}.items():
        conn.putheader(name, value)
    conn.endheaders()
    resp = conn.getresponse()
    status, got = resp.status, {k.lower(): v for k, v in resp.getheaders()}
    conn.close()
    return status, got


def get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path)
    status = conn.getresponse().status
    conn.close()
    return status


def test_other_sites_cannot_open_the_realtime_socket(served):
    s = served()
    own = f"http://127.0.0.1:{s.port}"
    assert handshake(s.port, {"Origin": own})[0] == 101  # the server's own page
    assert handshake(s.port, {})[0] == 101  # no Origin: not a browser (the SDK, a script)
    assert (
        handshake(s.port, {"Origin": f"http://localhost:{s.port}", "Host": f"localhost:{s.port}"})[0] == 101
    )
    assert handshake(s.port, {"Origin": EVIL})[0] == 403
    assert handshake(s.port, {"Origin": "null"})[0] == 403  # a file:// page or a sandboxed frame
    assert handshake(s.port, {"Origin": f"http://127.0.0.1:{s.port + 1}"})[0] == 403  # another local app
    # DNS rebinding: evil.example resolves to 127.0.0.1, so the browser sends a matching Host header.
    rebound = {"Origin": f"http://evil.example:{s.port}", "Host": f"evil.example:{s.port}"}
    assert handshake(s.port, rebound)[0] == 403


def test_listed_origins_are_allowed(served):
    s = served(allow_origins=("https://app.example.com",))
    assert handshake(s.port, {"Origin": "https://app.example.com"})[0] == 101
    assert handshake(s.port, {"Origin": "https://app.example.com.evil.example"})[0] == 403


def test_an_api_key_is_required_when_configured(served):
    s = served(api_key=KEY)
    assert handshake(s.port, {})[0] == 401
    assert handshake(s.port, {"Authorization": "Bearer wrong-" + KEY})[0] == 401
    assert handshake(s.port, {"Authorization": f"Bearer {KEY}"})[0] == 101
    # A browser page passes the key as a subprotocol and must get "realtime" back.
    status, headers = handshake(
        s.port,
        {
            "Origin": f"http://127.0.0.1:{s.port}",
            "Sec-WebSocket-Protocol": f"realtime, openai-insecure-api-key.{KEY}",
        },
    )
    assert status == 101 and headers.get("sec-websocket-protocol") == "realtime"
    bad = {
        "Origin": f"http://127.0.0.1:{s.port}",
        "Sec-WebSocket-Protocol": "realtime, openai-insecure-api-key.no",
    }
    assert handshake(s.port, bad)[0] == 401
    assert get(s.port, "/") == 200  # the page itself is not secret


async def test_the_openai_sdk_passes_the_key(served):
    openai = pytest.importorskip("openai")
    s = served(api_key=KEY)
    base = f"http://127.0.0.1:{s.port}/v1"
    async with openai.AsyncOpenAI(api_key=KEY, base_url=base).realtime.connect(model="dlm") as conn:
        first = await asyncio.wait_for(conn.recv(), 30)
        assert first.type == "session.created"
    with pytest.raises(Exception) as refused:
        async with openai.AsyncOpenAI(api_key="not-the-key", base_url=base).realtime.connect(
            model="dlm"
        ) as conn:
            await asyncio.wait_for(conn.recv(), 30)
    assert "401" in str(refused.value)


def test_beyond_loopback_needs_a_key_or_an_explicit_opt_out():
    with pytest.raises(ValueError, match="API key"):
        ServerConfig(host="0.0.0.0", api_key=None)
    with pytest.raises(ValueError, match="API key"):
        ServerConfig(host="192.168.1.5", api_key=None)
    assert ServerConfig(host="0.0.0.0", api_key=KEY).needs_key
    assert not ServerConfig(host="0.0.0.0", api_key=None, insecure_no_auth=True).needs_key
    assert not ServerConfig(host="127.0.0.2", api_key=None).needs_key  # all of 127/8 is this machine
    with pytest.raises(ValueError, match="characters"):
        ServerConfig(api_key="short")


def test_static_files_cannot_escape_the_web_folder(served):
    s = served()
    assert get(s.port, "/") == 200 and get(s.port, "/app.js") == 200
    for path in (
        "/../pyproject.toml",
        "/%2e%2e/pyproject.toml",
        "/..%2fpyproject.toml",
        "/web/../README.md",
        "/__init__.py",
        "/.hidden",
        "//etc/passwd",
        "/..\\\\pyproject.toml",
    ):
        assert get(s.port, path) == 404, path


async def ws_events(port: int, n: int, headers=None) -> list[dict]:
    from websockets.asyncio.client import connect

    async with connect(f"ws://127.0.0.1:{port}/v1/realtime", additional_headers=headers) as ws:
        return [json.loads(await asyncio.wait_for(ws.recv(), 30)) for _ in range(n)]


async def test_one_client_cannot_take_every_session(served):
    from websockets.asyncio.client import connect

    s = served(max_sessions=4, max_sessions_per_client=2)
    url = f"ws://127.0.0.1:{s.port}/v1/realtime"
    async with connect(url) as a, connect(url) as b:
        for ws in (a, b):
            assert json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] == "session.created"
        third = await ws_events(s.port, 1)
        assert third[0]["type"] == "error" and third[0]["error"]["code"] == "too_many_sessions_for_client"
        await a.send(json.dumps({"type": "response.cancel"}))  # the first two still work
        reply = json.loads(await asyncio.wait_for(a.recv(), 30))
        assert reply["type"] == "error" and reply["error"]["code"] == "response_cancel_not_active"
    for _ in range(100):  # the server notices the closes a moment later
        if (
            json.loads(urllib.request.urlopen(f"http://127.0.0.1:{s.port}/healthz", timeout=30).read())[
                "sessions"
            ]
            == 0
        ):
            break
        await asyncio.sleep(0.1)
    assert (await ws_events(s.port, 1))[0]["type"] == "session.created"  # freed on close


async def test_an_idle_client_is_disconnected(served):
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    s = served(idle_timeout_s=1.0)
    async with connect(f"ws://127.0.0.1:{s.port}/v1/realtime") as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] == "session.created"
        got = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert got["type"] == "error" and got["error"]["code"] == "idle_timeout"
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 30)


async def test_keys_and_conversation_text_stay_out_of_the_logs(served, caplog):
    from websockets.asyncio.client import connect

    secret_text = "my secret diary entry about zebras"
    s = served(api_key=KEY)
    caplog.set_level(logging.INFO)  # the most the CLI logs (-v); the default is WARNING
    assert handshake(s.port, {"Authorization": "Bearer wrong-" + KEY})[0] == 401
    async with connect(
        f"ws://127.0.0.1:{s.port}/v1/realtime", additional_headers={"Authorization": f"Bearer {KEY}"}
    ) as ws:
        await ws.recv()
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": secret_text}]}
        await ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
        await ws.send("{not json")
        for _ in range(3):
            await asyncio.wait_for(ws.recv(), 30)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "401" in logged or "API key" in logged  # the refusal is logged ...
    assert KEY not in logged and "wrong-" not in logged and "zebras" not in logged  # ... not what was sent


async def test_a_malformed_tool_call_is_logged_without_what_the_model_wrote(caplog):
    from types import SimpleNamespace

    from assistant.reply import ReplyStream
    from dlm_core.tool_calls import BadToolCall, ToolCallParser

    secret = "my secret diary entry about zebras"
    (bad,) = [e for e in ToolCallParser().push(f"<tool_call>{{{secret}}}</tool_call>") if e]
    assert isinstance(bad, BadToolCall) and secret in bad.raw
    text_only = ReplyStream(SimpleNamespace(modalities=("text",)), SimpleNamespace(tts=None), None)
    caplog.set_level(logging.INFO)  # the most the CLI logs (-v)
    assert await text_only._events([bad], (None, None, None)) is None  # dropped, never spoken
    logged = [r for r in caplog.records if r.name == "assistant.reply"]
    assert logged and all(secret not in r.getMessage() for r in logged), [r.getMessage() for r in logged]
    assert any("malformed tool call" in r.getMessage() and r.levelno == logging.WARNING for r in logged)
    caplog.clear()
    caplog.set_level(logging.DEBUG, logger="assistant.reply")  # someone debugging may see it
    await text_only._events([bad], (None, None, None))
    assert any(secret in r.getMessage() and r.levelno == logging.DEBUG for r in caplog.records)
