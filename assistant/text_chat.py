"""Text chat (`python -m assistant chat`): the same Session as the voice loop, with text in and out.

    asyncio.run(chat(engines, cfg, texts=["What time is it?"]))     # each text answered on its own
    asyncio.run(chat(engines, cfg))                                 # a conversation read from stdin

Replies go to stdout, one line each; tool activity (`[tool] calculate {"expression": "9*8"} -> 72`) and
timers going off go to stderr and stdout as they happen, so a timer set in the conversation speaks up
while the user is typing.
"""

from __future__ import annotations

import asyncio
import sys
from typing import ClassVar

from assistant import frames as F
from assistant.bridge import blocking
from assistant.config import SessionConfig
from assistant.engines import Engines
from assistant.grounding import fields
from assistant.session import Session


class ChatView:
    """Prints what a text session says: one small handler per frame type."""

    def __init__(self, out=sys.stdout, err=sys.stderr):
        self.out, self.err = out, err
        self.finished: asyncio.Queue[str] = asyncio.Queue()  # ids of responses done

    def show(self, f: F.Frame) -> None:
        handler = self.HANDLERS.get(type(f))
        if handler is not None:
            handler(self, f)

    def _call(self, f: F.FunctionCall) -> None:
        print(f"[tool] {f.name} {f.arguments}", file=self.err, flush=True)

    def _output(self, f: F.FunctionOutput) -> None:
        print(f"[tool] -> {tool_result_text(f.output)}", file=self.err, flush=True)

    def _done(self, f: F.ResponseDone) -> None:
        words = " ".join(f.text.split())  # one line per reply
        if words or f.message_index is not None:
            print(words, file=self.out, flush=True)
        self.finished.put_nowait(f.response_id)

    def _error(self, f: F.ErrorFrame) -> None:
        print(f"error: {f.message}", file=self.err, flush=True)

    HANDLERS: ClassVar[dict] = {
        F.FunctionCall: _call,
        F.FunctionOutput: _output,
        F.ResponseDone: _done,
        F.ErrorFrame: _error,
    }


def tool_result_text(output: str) -> str:
    """A tool's JSON output as a person reads it: its "text" (or "error") field, else the JSON."""
    value = fields(output)
    for key in ("text", "error"):
        if isinstance(value.get(key), str):
            return value[key] if key == "text" else f"error: {value[key]}"
    return output


async def chat(engines: Engines, cfg: SessionConfig, texts: list[str] | None = None, stdin=None) -> int:
    cfg = cfg.replace(output_modalities=("text",), turn_detection=None)
    if texts:
        for text in texts:  # each on its own: a fresh conversation
            await _conversation(engines, cfg, iter([text]))
        return 0
    await _conversation(engines, cfg, None, stdin or sys.stdin)
    return 0


async def _conversation(engines: Engines, cfg: SessionConfig, texts, stdin=None) -> None:
    session, view = Session(engines, cfg), ChatView()

    async def show():
        while True:
            view.show(await session.next_frame())

    shower = asyncio.create_task(show())
    try:
        while (text := await _next_line(texts, stdin)) is not None:
            if text:
                await _ask(session, view, text)
    finally:
        shower.cancel()
        await session.close()


async def _next_line(texts, stdin) -> str | None:
    if texts is not None:
        return next(texts, None)
    if stdin.isatty():
        print("> ", end="", flush=True)
    line = await blocking(stdin.readline)
    return line.strip() if line else None


async def _ask(session: Session, view: ChatView, text: str) -> None:
    """One user line -> its reply, printed (a timer announcement meanwhile prints too)."""
    while session.reply is not None:  # a timer is speaking up: wait for it
        await asyncio.sleep(0.05)
    await session.add_text(text)
    reply = await session.create_response()
    if reply is None:
        return
    while await view.finished.get() != reply.response_id:
        pass
