"""Every subcommand of `python -m assistant`, run as a user would, with real models on real offline speech."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from audio import pcm
from testkit.speech import make_speech, normalize_text, word_error_rate
from tests.conftest import (
    FOLLOW_UP,
    ROOT,
    TEST_INSTRUCTIONS,
    TINY_FLAGS,
    VOICE_PAIRS,
    lm_spec,
    weaker_check,
)

pytestmark = pytest.mark.slow  # the CLI as processes that load the models

RUN_TIMEOUT_S = 240  # model loading on a busy 2-core machine


def run(*args, env=None, timeout=RUN_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def lm_flags() -> list[str]:
    return ["--model", lm_spec(), *TINY_FLAGS]


def test_chat_answers_each_text_on_its_own_line():
    questions = [q for q, _ in VOICE_PAIRS[:2]]
    p = run("chat", *lm_flags(), *[a for q in questions for a in ("--text", q)])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == len(questions), p.stdout
    if TEST_INSTRUCTIONS is not None:  # the tiny test model memorised these replies
        assert lines == [a for _, a in VOICE_PAIRS[:2]], lines
    else:  # another model: a reply in words to each question
        assert all(normalize_text(line) for line in lines), lines
        weaker_check("chat's replies")
    # stdin REPL: one reply per line, the conversation kept between lines (--text starts afresh).
    p = subprocess.run(
        [sys.executable, "-m", "assistant", "chat", *lm_flags()],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        input=questions[0] + "\n\n" + questions[1] + "\n",
        timeout=RUN_TIMEOUT_S,
    )
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 2 and all(ln.strip() for ln in lines), p.stdout
    if TEST_INSTRUCTIONS is not None:  # the reply memorised for the second question after the first
        assert lines == [VOICE_PAIRS[0][1], FOLLOW_UP[2]], lines


def test_transcribe_json(tmp_path):
    texts = ["Turn on the kitchen lights.", "What is the capital of France?"]
    files = [
        make_speech(t, tmp_path / f"u{i}.wav", rate=rate)
        for i, (t, rate) in enumerate(zip(texts, (16000, 24000)))
    ]
    p = run("transcribe", "--json", *map(str, files))
    assert p.returncode == 0, p.stderr
    rows = [json.loads(ln) for ln in p.stdout.splitlines()]
    assert [r["file"] for r in rows] == list(map(str, files))
    for text, row in zip(texts, rows):
        assert word_error_rate(text, row["text"]) <= 0.2, row
        assert row["ms"] > 0
    p = run("transcribe", str(files[0]))  # plain output: FILE<TAB>TEXT
    assert p.returncode == 0 and p.stdout.startswith(f"{files[0]}\t"), p.stdout


def test_say_writes_speech_that_transcribes_back(tmp_path):
    from testkit.speech import load_transcriber

    text = "The weather is sunny and warm today."
    out = tmp_path / "say.wav"
    p = run("say", text, "-o", str(out))
    assert p.returncode == 0, p.stderr
    x, rate = pcm.read_wav(out)
    assert len(x) / rate > 1.0
    heard = load_transcriber().transcribe(pcm.resample(x, rate, pcm.SAMPLE_RATE_ASR)).text
    assert word_error_rate(text, heard) <= 0.2, heard


def test_missing_model_is_one_clear_line(tmp_path):
    p = run("chat", "--model", str(tmp_path / "no_such_model"), "--text", "hi")
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "no_such_model" in p.stderr
    p = run("transcribe", "--asr-model", str(tmp_path / "nope"), str(tmp_path / "x.wav"))
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    p = run("say", "hi", "--voice", str(tmp_path / "nope.onnx"), "-o", str(tmp_path / "o.wav"))
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr


def test_help_of_every_subcommand():
    for cmd in ("serve", "mic", "chat", "transcribe", "say"):
        p = run(cmd, "--help", timeout=60)
        assert p.returncode == 0 and "--model" in p.stdout, (cmd, p.stdout, p.stderr)
    assert "--headphones" in run("mic", "--help", timeout=60).stdout


SIGTERM_EXIT_S = 10  # generous for a loaded machine; it takes well under a second when idle


async def close_code_on_sigterm(proc: subprocess.Popen, url: str) -> int:
    """Open a Realtime session, SIGTERM the server, and return the close code the client gets."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async with connect(url.replace("http://", "ws://") + "v1/realtime") as ws:
        json.loads(await ws.recv())  # session.created: the session is up
        proc.send_signal(signal.SIGTERM)
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as e:
            return e.rcvd.code if e.rcvd else None


async def first_events(url: str, clients: int) -> list[dict]:
    """Open `clients` Realtime sessions from this address at once; the first event each one got."""
    from contextlib import AsyncExitStack

    from websockets.asyncio.client import connect

    async with AsyncExitStack() as stack:
        got = []
        for _ in range(clients):
            ws = await stack.enter_async_context(connect(url.replace("http://", "ws://") + "v1/realtime"))
            got.append(json.loads(await ws.recv()))
        return got


def test_serve_session_limits_are_flags():
    from assistant.__main__ import UsageError, build_parser, server_cfg

    def cfg(*flags):
        return server_cfg(build_parser().parse_args(["serve", *flags]))

    assert (cfg().max_sessions, cfg().max_sessions_per_client) == (8, 4)
    wide = cfg("--max-sessions", "32", "--max-sessions-per-client", "6")
    assert (wide.max_sessions, wide.max_sessions_per_client) == (32, 6)
    assert cfg("--max-sessions", "2").max_sessions_per_client == 2  # the per-client default fits under it
    for flags, field in (
        (["--max-sessions", "0"], "max_sessions"),
        (["--max-sessions", "2", "--max-sessions-per-client", "3"], "max_sessions_per_client"),
        (["--max-sessions-per-client", "0"], "max_sessions_per_client"),
    ):
        with pytest.raises(UsageError, match=field):
            cfg(*flags)
    p = run("serve", "--max-sessions", "0", timeout=60)  # refused before any model loads
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "max_sessions" in p.stderr, p.stderr


def until_no_sessions(url: str) -> None:
    """The server counts a closed session out a moment after the client closed it."""
    for _ in range(100):
        if not json.loads(urllib.request.urlopen(url + "healthz", timeout=30).read())["sessions"]:
            return
        time.sleep(0.1)
    raise AssertionError("a closed session was still counted 10 s later")


def test_serve_prints_the_url_and_answers(tmp_path):
    limits = ["--max-sessions", "2", "--max-sessions-per-client", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant", "serve", "--port", "0", *limits, *lm_flags()],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving on http://127.0.0.1:"), line + proc.stderr.read()
        url = line.split()[2]
        health = json.loads(urllib.request.urlopen(url + "healthz", timeout=30).read())
        assert health["ok"] is True
        page = urllib.request.urlopen(url, timeout=30).read().decode()
        assert "<html" in page.lower()
        import asyncio

        # The limits given as flags hold: one session per address here, the second refused.
        first, second = asyncio.run(asyncio.wait_for(first_events(url, 2), 60))
        assert first["type"] == "session.created", first
        assert second["type"] == "error", second
        assert second["error"]["code"] == "too_many_sessions_for_client", second
        until_no_sessions(url)
        openai = pytest.importorskip("openai")

        async def ask():
            client = openai.AsyncOpenAI(api_key="x", base_url=url + "v1")
            async with client.realtime.connect(model="dlm") as conn:
                await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
                await conn.conversation.item.create(
                    item={
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": VOICE_PAIRS[0][0]}],
                    }
                )
                await conn.response.create()
                text = ""
                async for ev in conn:
                    if ev.type == "response.output_text.delta":
                        text += ev.delta
                    if ev.type == "response.done":
                        return text.strip()

        reply = asyncio.run(asyncio.wait_for(ask(), 120))
        assert reply
        if TEST_INSTRUCTIONS is not None:  # the tiny test model memorised this reply
            assert normalize_text(reply) == normalize_text(VOICE_PAIRS[0][1])
        else:  # another model: a reply in words
            assert normalize_text(reply), reply
            weaker_check("serve's reply")
        # SIGTERM (how a service manager stops it): sessions are closed with 1001 and it exits promptly.
        until_no_sessions(url)  # the one session this address may hold is free again
        close_code = asyncio.run(asyncio.wait_for(close_code_on_sigterm(proc, url), 60))
        assert close_code == 1001
        assert proc.wait(SIGTERM_EXIT_S) == 0, proc.stderr.read()
    finally:
        proc.terminate()
        proc.wait(30)
