"""Microphone mode: the same pipeline Session on the local microphone and speakers (sounddevice).

Half-duplex by default: with open speakers the microphone hears the reply, the VAD takes it for the user
and the assistant interrupts itself (the top complaint about voice loops without echo cancellation). So
while reply audio plays (and ECHO_TAIL_S after), the microphone is replaced by silence. `--headphones`
keeps listening during replies and enables barge-in: speaking over a reply stops it at once.

The live text view prints what was heard (`you: ...`) and streams what is said (`assistant: ...`).
"""

from __future__ import annotations

import asyncio
import queue
import sys
import threading
import time
from typing import ClassVar

import numpy as np

from assistant import frames as F
from assistant.bridge import blocking
from assistant.config import ModelsConfig, SessionConfig
from assistant.engines import Engines
from assistant.session import Session
from assistant.text_chat import tool_result_text
from audio import pcm

READ_TIMEOUT_S = 0.1  # a device read waits at most this long, so the loop notices shutdown
ECHO_TAIL_S = 0.3  # half-duplex: keep the microphone muted this long after playback ends (room echo)
PLAYER_QUEUE = 256  # reply chunks waiting for the speakers


class Player:
    """Writes reply audio to the output device from its own thread; `flush()` drops it all (barge-in)."""

    def __init__(self, out):
        self.out = out
        self.q: queue.Queue = queue.Queue(PLAYER_QUEUE)
        self.played_until = 0.0  # perf_counter when the audio written so far ends
        self._gen = 0  # flush generation: chunks queued before a flush are skipped
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="player", daemon=True)
        self._thread.start()

    def put(self, x: np.ndarray) -> None:
        self.q.put((self._gen, x))

    def busy(self, tail_s: float = 0.0) -> bool:
        return not self.q.empty() or time.perf_counter() < self.played_until + tail_s

    def flush(self) -> None:
        self._gen += 1
        while not self.q.empty():
            try:
                self.q.get_nowait()
            except queue.Empty:
                break
        self.out.stop()  # discards what the device still buffers
        self.played_until = time.perf_counter()

    def _run(self) -> None:
        while not self._stop:
            try:
                gen, x = self.q.get(timeout=READ_TIMEOUT_S)
            except queue.Empty:
                continue
            if gen != self._gen:
                continue
            now = time.perf_counter()
            self.played_until = max(self.played_until, now) + len(x) / self.out.rate
            try:
                self.out.write(x)
            except Exception as e:  # noqa: BLE001 -- the device went away: report once per chunk, keep the loop alive
                print(f"playback error: {e}", file=sys.stderr)

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)


class MicView:
    """What the person at the microphone sees and hears: one small handler per frame type."""

    def __init__(self, player: Player, out_rate: int, max_turns: int | None, echo=print):
        self.player, self.out_rate, self.max_turns, self.echo = player, out_rate, max_turns, echo
        self.done = 0  # replies finished

    async def show(self, f: F.Frame) -> bool:
        """Handle one frame; True once max_turns replies were played."""
        handler = self.HANDLERS.get(type(f))
        return bool(handler is not None and await handler(self, f))

    async def _heard(self, f: F.UserTranscript) -> None:
        if f.text:
            self.echo(f"you: {f.text}")

    async def _started(self, f: F.MessageStarted) -> None:
        self.echo("assistant: ", end="")

    async def _call(self, f: F.FunctionCall) -> None:
        self.echo(f"tool: {f.name} {f.arguments}")

    async def _output(self, f: F.FunctionOutput) -> None:
        self.echo(f"tool: -> {tool_result_text(f.output)}")

    async def _text(self, f: F.TextDelta) -> None:
        self.echo(f.text, end="")

    async def _audio(self, f: F.AudioOut) -> None:
        x = f.samples if f.rate == self.out_rate else pcm.resample(f.samples, f.rate, self.out_rate)
        await blocking(self.player.put, x)

    async def _interrupted(self, f: F.Interrupted) -> None:
        self.player.flush()
        self.echo(" [interrupted]", end="")

    async def _done(self, f: F.ResponseDone) -> bool:
        v2v = f.metrics.get("voice_to_voice")
        self.echo(f"   ({v2v:.0f} ms)" if v2v is not None else "")
        self.done += 1
        if self.max_turns is None or self.done < self.max_turns:
            return False
        while self.player.busy():  # let the last reply finish playing
            await asyncio.sleep(READ_TIMEOUT_S)
        return True

    async def _error(self, f: F.ErrorFrame) -> None:
        print(f"error: {f.message}", file=sys.stderr)

    HANDLERS: ClassVar[dict] = {
        F.UserTranscript: _heard,
        F.MessageStarted: _started,
        F.FunctionCall: _call,
        F.FunctionOutput: _output,
        F.TextDelta: _text,
        F.AudioOut: _audio,
        F.Interrupted: _interrupted,
        F.ResponseDone: _done,
        F.ErrorFrame: _error,
    }


async def converse(
    engines: Engines, cfg: SessionConfig, inp, out, full_duplex: bool, max_turns: int | None, echo=print
) -> int:
    """Run the conversation until max_turns replies were played (or forever). Returns replies done."""
    session = Session(engines, cfg)
    player = Player(out)
    view = MicView(player, out.rate, max_turns, echo)
    finished = asyncio.Event()

    async def listen():
        while not finished.is_set():
            x = await blocking(inp.read, READ_TIMEOUT_S)
            if x is None:
                continue
            if not full_duplex and player.busy(ECHO_TAIL_S):
                x = np.zeros_like(x)  # half-duplex: the VAD hears silence while we speak
            await session.push_audio(x, inp.rate)

    async def show():
        while not await view.show(await session.next_frame()):
            pass
        finished.set()

    tasks = [asyncio.create_task(listen()), asyncio.create_task(show())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            if t.done() and t.exception() is not None:
                raise t.exception()
    finally:
        finished.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await session.close()
        player.close()
    return view.done


def run_mic(args, models: ModelsConfig, cfg: SessionConfig) -> int:
    from audio import devices

    if args.list_devices:
        found = devices.list_devices()
        for d in found:
            print(d)
        if not found:
            print("no audio devices found (PortAudio sees none; is PulseAudio running?)", file=sys.stderr)
        return 0
    engines = Engines.load(models)
    inp = devices.open_input(args.input_device, rate=pcm.SAMPLE_RATE_ASR)
    out = devices.open_output(args.output_device, rate=pcm.SAMPLE_RATE_API)
    mode = "full duplex, barge-in on" if args.headphones else "half duplex (use --headphones for barge-in)"
    print(f"listening ({mode}); Ctrl-C to stop", file=sys.stderr, flush=True)

    def echo(text="", end="\n"):
        print(text, end=end, flush=True)

    try:
        with inp:
            out.start()
            asyncio.run(converse(engines, cfg, inp, out, args.headphones, args.max_turns, echo))
    except KeyboardInterrupt:
        pass
    finally:
        out.close()
        engines.close()
    return 0
