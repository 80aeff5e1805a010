"""Voice-to-voice latency through the official `openai` SDK against a real `serve` process.

    python -m bench.voice_latency [--json] [--model PATH] [--preset balanced] [--turns 3]

Starts `python -m assistant serve` on a free port with the given (default: bundled) models, speaks
each question (piper speech, streamed in real time in 20 ms chunks, server VAD), and reads the
server's `dlm.turn_metrics` per turn. Voice-to-voice is the server's figure: from the end of the
user's speech (the VAD's speech end, before the 500 ms silence that confirms it) to the first reply
audio sent. `client_ms` is what this client saw: from `speech_stopped` arriving to the first audio
delta arriving. Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

import numpy as np

from audio import pcm
from audio.tts import Synthesizer
from dlm_core.presets import PRESET_NAMES

QUESTIONS = [
    "Hello, how are you today?",
    "Can you recommend a good movie for tonight?",
    "What time is it?",
    "Tell me a joke.",
    "Thank you, that was nice.",
]
CHUNK_MS = 20  # a live microphone's packet size
LEAD_S, TRAIL_S = 0.5, 2.0
STAGES = ("endpointing", "asr", "first_text", "first_audio", "voice_to_voice")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, args) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "assistant", "serve", "--port", str(port), "--preset", args.preset]
    if args.model:
        cmd += ["--model", args.model]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"serve exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("serve did not answer /healthz within 120 s")


def spoken(tts: Synthesizer, text: str) -> np.ndarray:
    rate = pcm.SAMPLE_RATE_API
    voice = np.concatenate([c.samples for c in tts.synthesize(text, rate=rate)])
    silence = np.zeros
    return np.concatenate(
        [silence(int(LEAD_S * rate), np.float32), voice, silence(int(TRAIL_S * rate), np.float32)]
    )


async def one_turn(port: int, audio: np.ndarray) -> dict:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key="unused", base_url=f"http://127.0.0.1:{port}/v1")
    seen: dict[str, float] = {}
    out = {"heard": "", "said": ""}
    step = pcm.ms_to_samples(CHUNK_MS, pcm.SAMPLE_RATE_API)

    async with client.realtime.connect(model="dlm") as conn:

        async def send():
            t0 = time.perf_counter()
            for i, start in enumerate(range(0, len(audio), step)):
                chunk = pcm.float_to_int16_bytes(audio[start : start + step])
                await conn.input_audio_buffer.append(audio=base64.b64encode(chunk).decode())
                await asyncio.sleep(max(0.0, t0 + (i + 1) * CHUNK_MS / 1000 - time.perf_counter()))

        sender = asyncio.create_task(send())
        async for ev in conn:
            seen.setdefault(ev.type, time.perf_counter())
            if ev.type == "conversation.item.input_audio_transcription.completed":
                out["heard"] = ev.transcript
            elif ev.type == "response.output_audio_transcript.delta":
                out["said"] += ev.delta
            elif ev.type == "error":
                raise SystemExit(f"server error: {ev.error.message}")
            elif ev.type == "dlm.turn_metrics":
                out["latency_ms"] = ev.latency_ms if isinstance(ev.latency_ms, dict) else dict(ev.latency_ms)
                break
        sender.cancel()
    out["client_ms"] = 1000 * (
        seen["response.output_audio.delta"] - seen["input_audio_buffer.speech_stopped"]
    )
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--json", action="store_true", help="(kept for symmetry: the JSON line is always printed)"
    )
    ap.add_argument("--model", help="diffusion LM folder (default: bundled)")
    ap.add_argument("--preset", default="balanced", choices=PRESET_NAMES)
    ap.add_argument("--turns", type=int, default=len(QUESTIONS))
    args = ap.parse_args(argv)

    tts = Synthesizer.load()
    clips = [(q, spoken(tts, q)) for q in (QUESTIONS * 2)[: args.turns]]
    port = free_port()
    proc = start_server(port, args)
    try:
        rows = [dict(asyncio.run(one_turn(port, audio)), question=q) for q, audio in clips]
    finally:
        proc.terminate()
        proc.wait(10)

    print(f"{'question':44} {'endpt':>6} {'asr':>6} {'text':>6} {'audio':>6} {'v2v':>6} {'client':>7}")
    for r in rows:
        lat = r["latency_ms"]
        cells = " ".join(f"{lat.get(s) or 0:6.0f}" for s in STAGES)
        print(
            f"{r['question'][:44]:44} {cells} {r['client_ms']:7.0f}"
            f"   heard {r['heard']!r} said {r['said'].strip()!r}"
        )
    median = {s: statistics.median(r["latency_ms"].get(s) or 0 for r in rows) for s in STAGES}
    median["client_ms"] = statistics.median(r["client_ms"] for r in rows)
    print("median:", ", ".join(f"{k} {v:.0f} ms" for k, v in median.items()))
    print(
        json.dumps(
            {
                "model": args.model or "bundled",
                "preset": args.preset,
                "turns": len(rows),
                "cpu_threads": os.cpu_count(),
                "median_ms": median,
                "turns_ms": [dict(r["latency_ms"], client_ms=round(r["client_ms"])) for r in rows],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
