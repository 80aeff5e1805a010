"""Voice-to-voice latency of a tool turn next to a plain one, through the official `openai` SDK.

    python -m bench.tool_latency --model PATH [--turns 6] [--tool-question "..."] [--plain-question "..."]

Starts `python -m assistant serve` (built-in tools on, server_vad so that both kinds of turn end the
same way) and speaks, alternating, a request the model answers by calling a built-in tool and one it
answers in words. Voice-to-voice is the server's figure (end of speech to first reply audio sent); a
tool turn spends two LM passes (the call, then the words that use its result) and the tool itself in
between, and its prompt is longer by the tool list (the plain turns use tool_choice "none" unless
--plain-tool-choice auto). Prints a table, then one JSON line. The bundled model does not call tools
yet: pass a model that does (the test suite's tiny model calls get_time for "What time is it?"; what
it says after the result is not meaningful, only when it says it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

import numpy as np

from audio.tts import Synthesizer
from bench.voice_latency import MODES, clip, free_port, send_paced, speech, stage_stats, start_server

TOOL_QUESTION = "What time is it?"
PLAIN_QUESTION = "What is the capital of France?"
REPLY_WAIT_S = 30


async def one_turn(port: int, audio: np.ndarray, tool_choice: str) -> dict:
    """Stream one clip in real time; the turn's metrics and the tool calls its response made."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key="unused", base_url=f"http://127.0.0.1:{port}/v1")
    out = {"calls": [], "said": "", "latency_ms": None}
    async with client.realtime.connect(model="dlm") as conn:
        td = {"audio": {"input": {"turn_detection": MODES["server_vad"]}}}
        session = {"type": "realtime", "instructions": "", "tool_choice": tool_choice, **td}
        await conn.session.update(session=session)
        reader = asyncio.create_task(_read(conn, out))
        await send_paced(conn, audio, time.perf_counter())
        try:
            await asyncio.wait_for(reader, REPLY_WAIT_S)
        except asyncio.TimeoutError:
            reader.cancel()
    return out


async def _read(conn, out: dict) -> None:
    async for ev in conn:
        if ev.type == "response.function_call_arguments.done":
            out["calls"].append(ev.name)
        elif ev.type == "response.output_audio_transcript.delta":
            out["said"] += ev.delta
        elif ev.type == "dlm.turn_metrics":
            out["latency_ms"] = dict(ev.latency_ms)
            return


def summary(rows: list[dict]) -> dict:
    stages = stage_stats(rows)  # no client figures: this bench reads the server's only
    v2v, text = stages.get("voice_to_voice", {}), stages.get("first_text", {})
    return {
        "turns": len(rows),
        "with_call": sum(bool(r["calls"]) for r in rows),
        "voice_to_voice_median": v2v.get("median"),
        "voice_to_voice_p90": v2v.get("p90"),
        "first_text_median": text.get("median"),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="diffusion LM folder (default: bundled)")
    ap.add_argument("--preset", default="balanced")
    ap.add_argument("--turns", type=int, default=6, help="turns of each kind")
    ap.add_argument("--tool-question", default=TOOL_QUESTION)
    ap.add_argument("--plain-question", default=PLAIN_QUESTION)
    ap.add_argument(
        "--plain-tool-choice",
        default="none",
        choices=("none", "auto"),
        help="tool_choice of the plain turns: none (no tool list in their prompt, as the test model was "
        "trained) or auto (the same prompt as the tool turns)",
    )
    args = ap.parse_args(argv)
    tts = Synthesizer.load()
    clips = {
        "tool": clip(speech(tts, args.tool_question))[0],
        "plain": clip(speech(tts, args.plain_question))[0],
    }
    port = free_port()
    proc = start_server(port, args)
    rows: dict[str, list] = {"tool": [], "plain": []}
    try:
        for _ in range(args.turns):  # alternating, so both kinds see the same machine load
            for kind, audio in clips.items():
                choice = "auto" if kind == "tool" else args.plain_tool_choice
                rows[kind].append(asyncio.run(one_turn(port, audio, choice)))
    finally:
        proc.terminate()
        proc.wait(10)
    result = {
        "model": args.model or "bundled",
        "cpus": os.cpu_count(),
        **{k: summary(v) for k, v in rows.items()},
    }
    result["said"] = {k: [r["said"] for r in v[:2]] for k, v in rows.items()}
    print(f"{'turn':<6} {'turns':>5} {'calls':>5} {'v2v median':>10} {'v2v p90':>8} {'first text':>10}")
    for kind in ("tool", "plain"):
        s = result[kind]
        print(
            f"{kind:<6} {s['turns']:>5} {s['with_call']:>5} {s['voice_to_voice_median']!s:>10} "
            f"{s['voice_to_voice_p90']!s:>8} {s['first_text_median']!s:>10}"
        )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
