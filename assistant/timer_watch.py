"""A conversation's timers speaking up: wait for the next one due, then have it announced.

    watch = TimerWatch(toolbox.timers, busy, speak)        # busy() -> bool; await speak(reply_fields)
    ToolTurn(cfg, toolbox, conversation, watch.tool_ran)   # a tool may have set or cancelled a timer
    watch.close()                                          # with the session: no timer speaks up after

`Timers` (assistant/tools/timers.py) only keeps state; this is the part that sleeps on the event loop.
It knows nothing of replies: `busy()` says whether one is running (an announcement waits for it to
end) and `speak(extra)` starts the announcement's reply with the given `Reply` fields. The session owns
the watch and passes both in; the watch never reaches back into the session.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from assistant.tools.timers import Timer, Timers, announcement

ANNOUNCE_WAIT_S = 0.1  # a timer that fires during a reply speaks up once the reply is over


class TimerWatch:
    """Sleeps until the next timer of `timers` is due (or the timers change) and announces each due one.
    Started by the first tool call that leaves a timer running."""

    def __init__(
        self,
        timers: Timers,
        busy: Callable[[], bool],
        speak: Callable[[dict], Awaitable[None]],
    ):
        self.timers = timers
        self.busy = busy  # True while a reply (or a held, speculative one) is running
        self.speak = speak  # starts a reply of its own with these Reply fields (announcement, metadata)
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None  # started by the first timer set
        self._closed = False

    def tool_ran(self) -> None:
        """A built-in tool ran: the timers may have changed (ToolTurn's `ran` callback)."""
        if self._closed:
            return
        if self._task is None and self.timers.next_deadline() is not None:
            self._task = asyncio.create_task(self._watch())
        self._changed.set()

    def close(self) -> None:
        """No timer speaks up from now on."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()

    async def _watch(self) -> None:
        while True:
            wait = self.timers.seconds_to_next()  # on the timers' own clock
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), wait)
            for timer in self.timers.pop_due():
                await self._announce(timer)

    async def _announce(self, timer: Timer) -> None:
        """A timer went off: once no reply is running, a reply of its own says so (chime first)."""
        while self.busy():
            await asyncio.sleep(ANNOUNCE_WAIT_S)
        about = {"id": timer.id, "label": timer.label, "seconds": timer.seconds}
        await self.speak(
            {"announcement": announcement(timer), "metadata": {"source": "timer", "timer": about}}
        )
