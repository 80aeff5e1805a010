"""The clients of `bench.load`: voice sessions that talk like a live microphone, text sessions that type.

    tally = Tally()
    budget = Budget(seconds=60)                       # or Budget(seconds=..., turns=500) for a soak
    await voice_client(port, index, clips, budget, tally)
    await text_client(port, index, budget, tally)

A voice client streams 24 kHz pcm16 in CHUNK_MS pieces paced by the wall clock (silence between its
questions, as a microphone does), waits for each reply to finish, and records the server's voice-to-voice
(`dlm.turn_metrics`) and its own: from the last sample of the question to the first reply audio. A text
client sends `conversation.item.create` + `response.create`, alternating text and audio replies.
Every loop ends with the budget; every wait has a timeout; clients only talk to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass, field

import numpy as np

from audio import pcm

RATE = pcm.SAMPLE_RATE_API
CHUNK_MS = 40  # one append, like a browser's capture
TURN_TIMEOUT_S = 60.0  # one turn on an overloaded 2-core machine; longer counts as an error
CONNECT_TIMEOUT_S = 30.0
GAP_S = 1.0  # silence between the end of a reply and the next question (the user listens, then talks)
STAGGER_S = 1.3  # client i starts i * STAGGER_S late, so the voices do not speak in lockstep
TURNS_PER_SESSION = 20  # then the client reconnects: session churn is part of the load
RECONNECT_PAUSE_S = 1.0
TEXT_PROMPTS = [
    "Hello, how are you today?",
    "Can you recommend a good movie for tonight?",
    "Tell me a joke.",
    "What should I cook for dinner?",
    "Thank you, that was nice.",
]
TEXT_MODALITIES = ("text", "audio")  # a text client alternates between these per turn
FIRST_HOST, LOOPBACK_HOSTS = 2, 250  # client n binds 127.0.x.y; 127.0.0.1 stays the server's
VOICE_CLIENTS, TEXT_CLIENTS = 0, 1000  # client numbers: voice i is n = i, text i is n = 1000 + i


@dataclass
class Budget:
    """When the clients stop starting new turns: after `seconds`, or once `turns` turns completed."""

    seconds: float
    turns: int | None = None  # a soak's target; None: time only
    started: float = field(default_factory=time.monotonic)

    def open(self, tally: Tally) -> bool:
        in_time = time.monotonic() - self.started < self.seconds
        return in_time and (self.turns is None or tally.completed() < self.turns)


@dataclass
class TurnRecord:
    """One finished turn (completed or not)."""

    kind: str  # "voice" | "text"
    client: int
    ok: bool  # response.done completed, no error event, no timeout
    at: float  # time.monotonic() when it ended
    v2v_ms: float | None = None  # the server's dlm.turn_metrics latency_ms.voice_to_voice
    client_ms: float | None = None  # voice: question end -> first audio; text: response.create -> first delta
    status: str | None = None  # response.done status


@dataclass
class Tally:
    """Everything the clients of one phase saw."""

    turns: list[TurnRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # error events, bad statuses, timeouts, disconnects

    def completed(self, kind: str | None = None) -> int:
        return sum(1 for t in self.turns if t.ok and (kind is None or t.kind == kind))

    def error(self, client: str, what: str) -> None:
        self.errors.append(f"{client}: {what}")


class TurnFailed(Exception):
    """The turn went wrong; the client reconnects so the next turn starts clean."""


def b64(x: np.ndarray) -> str:
    return base64.b64encode(pcm.float_to_int16_bytes(x, allow_empty=True)).decode("ascii")


def loopback(n: int) -> str:
    """The n-th client's own loopback address (127.0.0.0/8 is all this machine): the server limits
    sessions per client address, and each bench client stands for one user."""
    return f"127.0.{n // LOOPBACK_HOSTS}.{FIRST_HOST + n % LOOPBACK_HOSTS}"


def connect(port: int, n: int):
    """A Realtime connection of client n (the SDK's; websockets passes local_addr to the socket)."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key="unused", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
    options = {"local_addr": (loopback(n), 0)}
    return client.realtime.connect(model="dlm", websocket_connection_options=options)


async def recv(conn, deadline: float):
    left = deadline - time.monotonic()
    if left <= 0:
        raise TurnFailed("turn timed out")
    try:
        return await asyncio.wait_for(conn.recv(), left)
    except asyncio.TimeoutError:
        raise TurnFailed(f"no event within {TURN_TIMEOUT_S:.0f} s") from None


async def expect(conn, kind: str, timeout: float = CONNECT_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while (ev := await recv(conn, deadline)).type != kind:
        if ev.type == "error":
            raise TurnFailed(f"error {ev.error.code}: {ev.error.message}")
    return ev


class Mic:
    """A live microphone on one connection: CHUNK_MS of audio every CHUNK_MS, silence when nobody talks."""

    def __init__(self, conn):
        self.conn = conn
        self._pending = np.zeros(0, np.float32)
        self._spoken: asyncio.Future | None = None

    def say(self, x: np.ndarray) -> asyncio.Future:
        """Speak x next; the future gets the perf_counter time its last sample went out."""
        self._pending = x.astype(np.float32)
        self._spoken = asyncio.get_running_loop().create_future()
        return self._spoken

    async def run(self) -> None:
        step = pcm.ms_to_samples(CHUNK_MS, RATE)
        silence = b64(np.zeros(step, np.float32))
        t0, i = time.perf_counter(), 0
        while True:
            chunk, self._pending = self._pending[:step], self._pending[step:]
            audio = silence if chunk.size == 0 else b64(np.pad(chunk, (0, step - chunk.size)))
            await self.conn.input_audio_buffer.append(audio=audio)
            if self._spoken is not None and self._pending.size == 0:
                self._spoken.set_result(time.perf_counter())
                self._spoken = None
            i += 1
            # Behind schedule (a busy machine) means a burst, as a real capture delivers it.
            await asyncio.sleep(max(0.0, t0 + i * CHUNK_MS / 1000 - time.perf_counter()))


def _metrics(ev) -> dict:
    lat = getattr(ev, "latency_ms", None)
    if lat is None and getattr(ev, "model_extra", None):
        lat = ev.model_extra.get("latency_ms")
    return dict(lat or {})


async def read_turn(conn, first_types: tuple[str, ...]) -> tuple[float | None, str | None, dict]:
    """Events of one reply, up to its dlm.turn_metrics: (first delta time, response status, latency_ms)."""
    deadline = time.monotonic() + TURN_TIMEOUT_S
    first, status = None, None
    while True:
        ev = await recv(conn, deadline)
        if ev.type in first_types and first is None:
            first = time.perf_counter()
        elif ev.type == "error":
            raise TurnFailed(f"error {ev.error.code}: {ev.error.message}")
        elif ev.type == "conversation.item.input_audio_transcription.completed" and not ev.transcript:
            raise TurnFailed("the question was transcribed as nothing")
        elif ev.type == "response.done":
            status = ev.response.status
        elif ev.type == "dlm.turn_metrics":
            return first, status, _metrics(ev)


# ------------------------------------------------------------------------------------------ voice


async def voice_turn(conn, mic: Mic, clip: np.ndarray, index: int) -> TurnRecord:
    spoken = mic.say(clip)
    first, status, lat = await read_turn(conn, ("response.output_audio.delta",))
    if status != "completed":
        raise TurnFailed(f"response {status}")
    end_of_question = spoken.result() if spoken.done() else None
    client_ms = None
    if first is not None and end_of_question is not None:
        client_ms = 1000 * (first - end_of_question)
    rec = TurnRecord("voice", index, True, time.monotonic(), lat.get("voice_to_voice"), client_ms, status)
    return rec


# The voice clients' turn detection (None: the server's default); bench.load --turn-detection sets it.
TURN_DETECTION: dict = {"value": None}


async def voice_session(port: int, index: int, clips: list, budget: Budget, tally: Tally, n: int) -> int:
    """One connection: up to TURNS_PER_SESSION spoken questions. Returns the next question's number."""
    async with connect(port, VOICE_CLIENTS + index) as conn:
        await expect(conn, "session.created")
        if TURN_DETECTION["value"] is not None:
            td = TURN_DETECTION["value"]
            await conn.session.update(
                session={"type": "realtime", "audio": {"input": {"turn_detection": td}}}
            )
            await expect(conn, "session.updated")
        mic = Mic(conn)
        sender = asyncio.create_task(mic.run())
        try:
            for _ in range(TURNS_PER_SESSION):
                if not budget.open(tally):
                    break
                await asyncio.sleep(GAP_S)  # the microphone keeps sending silence meanwhile
                tally.turns.append(await voice_turn(conn, mic, clips[n % len(clips)], index))
                n += 1
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
    return n


async def voice_client(port: int, index: int, clips: list, budget: Budget, tally: Tally) -> None:
    await asyncio.sleep(index * STAGGER_S)
    n = index  # clients start at different questions
    while budget.open(tally):
        n = await _guarded(voice_session(port, index, clips, budget, tally, n), "voice", index, tally, n)


async def _guarded(coro, kind: str, index: int, tally: Tally, n: int) -> int:
    """Run one session; a failure is counted, then the client reconnects after a pause."""
    try:
        return await coro
    except Exception as e:  # noqa: BLE001 -- every failure is a counted error, the load goes on
        tally.error(f"{kind}{index}", f"{type(e).__name__}: {e}")
        tally.turns.append(TurnRecord(kind, index, False, time.monotonic()))
        await asyncio.sleep(RECONNECT_PAUSE_S)
        return n + 1


# ------------------------------------------------------------------------------------------ text


async def text_turn(conn, prompt: str, modality: str, index: int) -> TurnRecord:
    content = [{"type": "input_text", "text": prompt}]
    await conn.conversation.item.create(item={"type": "message", "role": "user", "content": content})
    sent = time.perf_counter()
    await conn.response.create(response={"output_modalities": [modality]})
    deltas = ("response.output_text.delta", "response.output_audio.delta")
    first, status, _ = await read_turn(conn, deltas)
    if status != "completed":
        raise TurnFailed(f"response {status}")
    client_ms = None if first is None else 1000 * (first - sent)
    return TurnRecord("text", index, True, time.monotonic(), None, client_ms, status)


async def text_session(port: int, index: int, budget: Budget, tally: Tally, n: int, gap_s: float) -> int:
    async with connect(port, TEXT_CLIENTS + index) as conn:
        await expect(conn, "session.created")
        for _ in range(TURNS_PER_SESSION):
            if not budget.open(tally):
                break
            modality = TEXT_MODALITIES[n % len(TEXT_MODALITIES)]
            tally.turns.append(await text_turn(conn, TEXT_PROMPTS[n % len(TEXT_PROMPTS)], modality, index))
            n += 1
            await asyncio.sleep(gap_s)
    return n


async def text_client(port: int, index: int, budget: Budget, tally: Tally, gap_s: float = GAP_S) -> None:
    await asyncio.sleep(index * STAGGER_S / 2)
    n = index
    while budget.open(tally):
        n = await _guarded(text_session(port, index, budget, tally, n, gap_s), "text", index, tally, n)
