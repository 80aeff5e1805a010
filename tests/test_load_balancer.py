"""Two voice gateways (`serve --lm-url`) behind HAProxy with the shipped deploy/haproxy.cfg, sharing one
`lm-server`: every part a real process, as a deployment runs them. One gateway is killed mid-run: its own
session ends, the session on the other gateway goes on, and new sessions through the proxy still succeed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pytest

from testkit.system import require_program
from tests.conftest import ROOT, TEST_INSTRUCTIONS, TINY_FLAGS, VOICE_PAIRS, lm_spec, weaker_check

pytestmark = pytest.mark.slow  # gateways behind HAProxy

openai = pytest.importorskip("openai")

QUESTION, ANSWER = VOICE_PAIRS[0]
START_TIMEOUT_S = 240  # model loading on a busy 2-core machine
TURN_TIMEOUT_S = 60
NEW_SESSIONS_AFTER_KILL = 3
CONFIG = ROOT / "deploy" / "haproxy.cfg"


def require_haproxy() -> str:
    """The haproxy binary; skip without it, unless CI demands system parts (DLM_REQUIRE_SYSTEM=1)."""
    require_program("haproxy", apt="haproxy")
    return shutil.which("haproxy")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A process this test started; its first stdout line announces where it serves."""

    def __init__(self, args: list[str], logs, env: dict | None = None, announces: bool = True):
        out = subprocess.PIPE if announces else logs  # HAProxy logs to stdout: to the file, not a pipe
        self.p = subprocess.Popen(
            args, cwd=ROOT, stdout=out, stderr=logs, text=True, env={**os.environ, **(env or {})}
        )

    def first_line(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and self.p.poll() is None:
            if select.select([self.p.stdout], [], [], 0.5)[0]:
                return self.p.stdout.readline()
        raise AssertionError(f"{self.p.args[:4]} did not start (exit {self.p.poll()})")

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(30)


def assistant(*args: str) -> list[str]:
    return [sys.executable, "-m", "assistant", *args]


def port_of(line: str) -> int:
    """The port in "serving ... on http://127.0.0.1:PORT/..."."""
    return int(line.split("http://127.0.0.1:", 1)[1].split("/", 1)[0])


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=TURN_TIMEOUT_S) as r:
        return json.loads(r.read())


def wait_until_served(url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, urllib.error.HTTPError):
            if get_json(url).get("ok"):
                return
        time.sleep(0.2)
    raise AssertionError(f"{url} never answered")


async def typed_turn(conn) -> str:
    """One typed question through an open Realtime connection; returns the text reply."""
    await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": QUESTION}]}
    await conn.conversation.item.create(item=item)
    await conn.response.create()
    text = ""

    async def loop():
        nonlocal text
        while (ev := await conn.recv()).type != "response.done":
            text += ev.delta if ev.type == "response.output_text.delta" else ""
        return ev

    done = await asyncio.wait_for(loop(), TURN_TIMEOUT_S)
    assert done.response.status == "completed", done.response
    return text.strip()


async def drain(conn) -> None:
    """Read what the server sent after the last turn (its metrics) until the connection ends."""
    while True:
        await conn.recv()


def check_reply(text: str) -> None:
    """The tiny test model's memorised answer (the turn itself completed: typed_turn checked that)."""
    if TEST_INSTRUCTIONS is not None:
        assert text == ANSWER, text
    else:
        weaker_check("the replies through the proxy")


async def open_session(stack: contextlib.AsyncExitStack, lb_port: int):
    client = openai.AsyncOpenAI(api_key="unused", base_url=f"http://127.0.0.1:{lb_port}/v1")
    conn = await stack.enter_async_context(client.realtime.connect(model="dlm"))
    assert (await asyncio.wait_for(conn.recv(), TURN_TIMEOUT_S)).type == "session.created"
    return conn


def sessions_of(gateways: list[int]) -> list[int]:
    return [get_json(f"http://127.0.0.1:{port}/healthz")["sessions"] for port in gateways]


@pytest.fixture
def deployment():
    """lm-server, two gateways and HAProxy, all started here: (lb port, gateway ports, gateway procs, lm)."""
    haproxy = require_haproxy()
    procs: list[Proc] = []
    with tempfile.TemporaryFile("w+") as logs:
        try:
            lm = Proc(assistant("lm-server", "--model", lm_spec(), "--name", "dlm", "--port", "0"), logs)
            procs.append(lm)
            lm_url = f"http://127.0.0.1:{port_of(lm.first_line())}/v1"
            serve = assistant("serve", "--lm-url", lm_url, "--port", "0", "--no-builtin-tools", *TINY_FLAGS)
            gateways = [Proc(serve, logs) for _ in range(2)]
            procs += gateways
            ports = [port_of(g.first_line()) for g in gateways]
            lb_port = free_port()
            env = {"DLM_LB_BIND": f"127.0.0.1:{lb_port}"}
            env.update({f"DLM_GATEWAY_{i + 1}": f"127.0.0.1:{port}" for i, port in enumerate(ports)})
            procs.append(Proc([haproxy, "-db", "-f", str(CONFIG)], logs, env, announces=False))
            wait_until_served(f"http://127.0.0.1:{lb_port}/healthz")
            yield lb_port, ports, gateways, lm_url
        finally:
            for proc in reversed(procs):
                proc.stop()
            logs.seek(0)
            print(logs.read()[-4000:])  # shown when the test fails


async def test_a_killed_gateway_loses_only_its_session_and_new_sessions_still_succeed(deployment):
    lb_port, ports, gateways, lm_url = deployment
    async with contextlib.AsyncExitStack() as stack:
        doomed = await open_session(stack, lb_port)
        check_reply(await typed_turn(doomed))
        counts = await asyncio.to_thread(sessions_of, ports)
        assert sorted(counts) == [0, 1], counts
        victim = counts.index(1)
        survivor = await open_session(stack, lb_port)  # leastconn: the other gateway
        assert await asyncio.to_thread(sessions_of, ports) == [1, 1]

        gateways[victim].stop(signal.SIGKILL)  # mid-run: two sessions open, one on each gateway
        with pytest.raises(Exception) as gone:  # the SDK raises the websocket library's ConnectionClosed
            await asyncio.wait_for(drain(doomed), TURN_TIMEOUT_S)
        assert "Closed" in type(gone.value).__name__, repr(gone.value)
        check_reply(await typed_turn(survivor))  # the other gateway's session goes on

    for _ in range(NEW_SESSIONS_AFTER_KILL):  # at once: before the health check has marked it down
        async with contextlib.AsyncExitStack() as stack:
            check_reply(await typed_turn(await open_session(stack, lb_port)))
    alive = ports[1 - victim]
    lm = await asyncio.to_thread(get_json, lm_url.removesuffix("/v1") + "/healthz")
    assert lm["completed"] >= 2 + NEW_SESSIONS_AFTER_KILL, lm  # every reply came from the one LM server
    served = await asyncio.to_thread(get_json, f"http://127.0.0.1:{alive}/metrics")
    assert served["summary"]["turns"] >= 1 + NEW_SESSIONS_AFTER_KILL, served["summary"]
