"""What one `lm-server` carries: concurrent streaming clients through the official `openai` SDK.

    python -m bench.lm_throughput [--model PATH] [--preset NAME] [--clients 1,2,4,8] [--seconds 20]

Starts `python -m assistant lm-server --port 0` (bench/deployment.py) and, for each client count, runs that
many clients that each ask the next question as soon as the last reply ended (the busiest a voice session
can be; a real one leaves seconds between its turns). Per step: replies per second, completion tokens per
second, the median and p90 time to the first text and to the whole reply, and the engine's forward passes
per second with the rows each carried (from the server's /healthz), which is the figure to scale by: a
faster device runs the same passes in less time. Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import urllib.request

from bench.deployment import LmServerProcess
from bench.voice_latency import percentile

QUESTIONS = [
    "Hello, how are you today?",
    "Can you recommend a good movie for tonight?",
    "Tell me a joke.",
    "What should I cook for dinner?",
    "Thank you, that was nice.",
]
INSTRUCTIONS = "You are a helpful voice assistant. Answer briefly."  # serve's default system prompt
CLIENT_COUNTS = (1, 2, 4, 8)


def health(url: str) -> dict:
    with urllib.request.urlopen(url.removesuffix("/v1") + "/healthz", timeout=10) as r:
        return json.loads(r.read())


async def client_loop(url: str, n: int, until: float, rows: list[dict]) -> None:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key="unused", base_url=url, max_retries=0)
    i = n
    while time.perf_counter() < until:
        messages = [
            {"role": "system", "content": INSTRUCTIONS},
            {"role": "user", "content": QUESTIONS[i % 5]},
        ]
        t0, first = time.perf_counter(), None
        stream = await client.chat.completions.create(
            model="dlm", messages=messages, stream=True, stream_options={"include_usage": True}
        )
        tokens = 0
        async for chunk in stream:
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.perf_counter() - t0
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
        rows.append(
            {
                "first_ms": None if first is None else 1000 * first,
                "whole_ms": 1000 * (time.perf_counter() - t0),
                "tokens": tokens,
            }
        )
        i += 1
    await client.close()


async def step(url: str, clients: int, seconds: float) -> dict:
    rows: list[dict] = []
    before, t0 = health(url), time.perf_counter()
    until = t0 + seconds
    await asyncio.gather(*(client_loop(url, n, until, rows) for n in range(clients)))
    elapsed, after = time.perf_counter() - t0, health(url)
    passes = after["forward_passes"] - before["forward_passes"]
    firsts = [r["first_ms"] for r in rows if r["first_ms"] is not None]
    wholes = [r["whole_ms"] for r in rows]
    return {
        "clients": clients,
        "replies_per_s": round(len(rows) / elapsed, 2),
        "tokens_per_s": round(sum(r["tokens"] for r in rows) / elapsed, 1),
        "first_text_ms": {"median": round(statistics.median(firsts)), "p90": round(percentile(firsts, 0.9))},
        "reply_ms": {"median": round(statistics.median(wholes)), "p90": round(percentile(wholes, 0.9))},
        "forward_passes_per_s": round(passes / elapsed, 1),
        "rows_per_pass": after["rows_per_pass"],  # over the engine's recent passes: this step's
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="diffusion LM (default: bundled)")
    ap.add_argument("--preset", default="balanced", help="decoding preset (default: balanced)")
    ap.add_argument("--clients", default=",".join(map(str, CLIENT_COUNTS)), help="client counts to run")
    ap.add_argument("--seconds", type=float, default=20.0, help="per client count")
    args = ap.parse_args(argv)
    lm = LmServerProcess(args.model, args.preset).start()
    try:
        asyncio.run(
            step(lm.url, 1, min(args.seconds, 5.0))
        )  # warm-up: a fresh process's first replies are slow
        steps = [asyncio.run(step(lm.url, int(c), args.seconds)) for c in args.clients.split(",")]
    finally:
        lm.stop()
    heads = ("clients", "replies/s", "tok/s", "first text", "whole reply", "passes/s", "rows/pass")
    print(" ".join(f"{h:>{w}}" for h, w in zip(heads, (7, 9, 7, 12, 12, 9, 9))))
    for s in steps:
        first, whole = s["first_text_ms"], s["reply_ms"]
        print(
            f"{s['clients']:>7} {s['replies_per_s']:>9} {s['tokens_per_s']:>7} "
            f"{first['median']:>5}/{first['p90']:<6} {whole['median']:>5}/{whole['p90']:<6} "
            f"{s['forward_passes_per_s']:>9} {s['rows_per_pass']:>9}"
        )
    print(json.dumps({"model": args.model or "bundled", "preset": args.preset, "steps": steps}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
