"""The one bridge from blocking engines (sampler, piper, Whisper, devices) to asyncio.

Engines are synchronous iterators; `ThreadIter` pulls them one item per `asyncio.to_thread` call, so
an interruption takes effect between two steps (one diffusion step, one piper piece), and `blocking`
runs one blocking call in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

END = object()  # what ThreadIter.next returns once the iterator is exhausted


class ThreadIter:
    """A blocking iterator pulled from asyncio, one item per worker-thread call.

    `lock` serialises items of iterators that share one engine (piper is not re-entrant). Cancelling
    the awaiting task leaves the current item running in its thread; `aclose` waits for it, then closes
    the iterator, so a generator is never closed while it executes. An iterator with a thread-safe
    `cancel()` (a remote LM's stream, whose item may be a network read) is cut short first.
    """

    def __init__(self, it: Iterator, lock: threading.Lock | None = None):
        self.it, self.lock = it, lock
        self._step: asyncio.Future | None = None

    def _next(self):
        if self.lock is None:
            return next(self.it, END)
        with self.lock:
            return next(self.it, END)

    async def next(self):
        """The next item, or END."""
        self._step = asyncio.ensure_future(asyncio.to_thread(self._next))
        return await asyncio.shield(self._step)

    async def aclose(self) -> None:
        if self._step is not None and not self._step.done():
            cancel = getattr(self.it, "cancel", None)
            if cancel is not None:
                cancel()
            with contextlib.suppress(BaseException):
                await self._step
        close = getattr(self.it, "close", None)
        if close is not None:
            await asyncio.to_thread(close)


async def blocking(fn: Callable, *args) -> Any:
    """Run one blocking call (a Whisper pass, a device read) in a worker thread."""
    return await asyncio.to_thread(fn, *args)
