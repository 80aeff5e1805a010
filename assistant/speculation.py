"""The speculation gate: a reply started in the user's pause is held until the end of the turn is confirmed.

    gate = Gate(session.emit, assumed="Tell me a joke.")  # held: it answers this speculative transcript
    gate = Gate(session.emit)                             # any other reply: open from the start
    await gate.send(frame)       # a frame of the reply: out now, or held in order
    await gate.opened()          # the reply's audio and its tools wait here
    await gate.release(started, clock, heard)   # the turn ended as assumed: it becomes the reply

A held reply's text frames wait in the gate and its audio and tool calls wait for the release, so nothing
reaches the client, and no tool runs, unless the turn really ended. A reply whose turn went on is
cancelled by the session and its held frames are dropped with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from assistant.frames import Frame
from assistant.metrics import LatencyClock


class Gate:
    def __init__(self, emit: Callable[[Frame], Awaitable[None]], assumed: str = ""):
        self._emit = emit
        self.assumed = assumed  # the speculative transcript a held reply answers; "" for any other reply
        self._open = asyncio.Event()
        self._held: list[Frame] = []
        if not assumed:
            self._open.set()

    @property
    def speculative(self) -> bool:
        """Whether the reply was started on a speculative transcript (it stays so once released)."""
        return bool(self.assumed)

    async def send(self, frame: Frame) -> None:
        if self._open.is_set():
            await self._emit(frame)
        else:
            self._held.append(frame)

    async def opened(self) -> None:
        await self._open.wait()

    async def release(self, started: Frame, clock: LatencyClock, heard: LatencyClock) -> None:
        """The turn ended as the held reply assumed: the heard turn's marks join the reply's clock,
        `started` (its ResponseStarted) goes out, then what it held, in order, and from then on all."""
        clock.take_heard(heard)
        await self._emit(started)
        while self._held:  # in order; sends keep holding until the list is empty
            await self._emit(self._held.pop(0))
        self._open.set()
