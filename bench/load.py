"""Load, soak and capacity of a real `serve` process on loopback, through the official `openai` SDK.

    python -m bench.load --voice 2 --text 1 --seconds 60     # N voice + M text sessions for S seconds
    python -m bench.load --soak 500                          # turns until 500 completed; memory growth
    python -m bench.load --capacity                          # voice sessions 1, 2, 3, ... while v2v < 1 s
    python -m bench.load --smoke                             # CI: 1 voice + 1 text for 10 s, 20-turn soak
    (each also takes --model PATH, --preset NAME, --max-sessions N and --max-sessions-per-client N,
    passed to `serve`; --capacity ramps up to --max-sessions; --gateways N runs the split deployment,
    an lm-server and N `serve --lm-url` gateways behind HAProxy, bench/deployment.py)

Starts `python -m assistant serve --port 0` (bundled models unless --model), makes the questions with
piper (testkit.speech, cached), and runs the clients of bench/load_clients.py. Per phase it reports
completed turns by kind, errors (error events, responses not completed, timeouts, disconnects),
voice-to-voice percentiles (the server's `dlm.turn_metrics` figure, and the client's own: last sample
of the question to the first reply audio), the text clients' time to the first delta, and the server's
RSS every second. Every run also checks refusal: max_sessions connections are served and answer, one
more gets an `error` event with code `too_many_sessions` and is closed (and likewise one address past
max_sessions_per_client). Each client binds its own loopback address (127.0.x.y), as separate users
would connect from separate addresses. Every loop is bounded in turns and time. Prints a table, then,
last, one JSON line (`ok` is false, and --smoke exits 1, when a smoke check fails).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass

import numpy as np
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from assistant.config import ServerConfig
from bench import load_clients
from bench.deployment import START_TIMEOUT_S, STOP_TIMEOUT_S, Deployment, ServerProcess
from bench.load_clients import (
    TURN_TIMEOUT_S,
    Budget,
    Tally,
    connect,
    expect,
    loopback,
    read_turn,
    text_client,
    voice_client,
)

QUESTIONS = [  # what the voice clients ask, in turn (small talk the bundled model handles)
    "Hello, how are you today?",
    "Can you recommend a good movie for tonight?",
    "Tell me a joke.",
    "What should I cook for dinner?",
    "Thank you, that was nice.",
]
V2V_GOAL_MS = 1000.0  # the capacity criterion: median voice-to-voice under one second
RSS_EVERY_S = 1.0
PROGRESS_EVERY_S = 30.0
SESSIONS_IDLE_TIMEOUT_S = 20.0  # closed sessions leave the server's count within this
WARMUP_TURNS = 10  # a soak's RSS baseline is taken once this many turns completed
WARMUP_PHASE_TURNS, WARMUP_PHASE_S = 4, 90.0  # before measuring: a few turns of each kind, not counted
SOAK_MAX_S = 3600.0  # a soak stops here even short of its turn target
SOAK_TEXT_GAP_S = 0.2  # text clients in a soak think briefly, so turns pile up
CAPACITY_STEP_S = 60.0
SMOKE_SECONDS, SMOKE_SOAK_TURNS = 10.0, 20  # the soak must last 8 s: growth needs 8 samples
SMOKE_SOAK_MAX_S = 120.0  # the smoke's soak takes ~12 s on an idle 2-core machine
# Everything after the server started (load, soak, refusal) stops here, reported as a failure: the smoke
# always prints its result within SMOKE_MAX_S (what a caller's timeout must allow, see smoke_max_s).
SMOKE_PHASES_MAX_S = 420.0
SMOKE_SETUP_S = 60.0  # imports, the question clips (made once, then cached) and stopping the server
REFUSED_CODE = "too_many_sessions"
REFUSED_PER_CLIENT_CODE = "too_many_sessions_for_client"
REFUSAL_CLIENTS = 2000  # client numbers (load_clients.loopback) of the refusal check
PING = [{"type": "input_text", "text": "Hello, how are you today?"}]


# ------------------------------------------------------------------------------------------ the server


async def wait_idle(server: ServerProcess) -> None:
    """Until the server counts no sessions (the last phase's connections have gone)."""
    deadline = time.monotonic() + SESSIONS_IDLE_TIMEOUT_S
    while await asyncio.to_thread(server.sessions) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)


@dataclass
class RssLog:
    """The server's resident memory, sampled every RSS_EVERY_S while a phase runs."""

    server: ServerProcess
    started: float = 0.0

    def __post_init__(self):
        self.samples: list[tuple[float, float]] = []  # (monotonic time, MB)
        self.started = time.monotonic()

    async def run(self) -> None:
        while True:
            mb = self.server.rss_mb()
            if mb is not None:
                self.samples.append((time.monotonic(), mb))
            await asyncio.sleep(RSS_EVERY_S)

    def at(self, when: float) -> float | None:
        """The first sample taken at or after `when` (monotonic), else the last one."""
        later = [mb for t, mb in self.samples if t >= when]
        return later[0] if later else (self.samples[-1][1] if self.samples else None)

    def series(self, points: int = 60) -> list[list[float]]:
        """At most `points` [seconds since start, MB] pairs, evenly spread."""
        step = max(1, len(self.samples) // points)
        return [[round(t - self.started, 1), round(mb, 1)] for t, mb in self.samples[::step]]


# ------------------------------------------------------------------------------------------ phases


async def run_sessions(server, voice: int, text: int, budget: Budget, clips, text_gap_s=None):
    """`voice` + `text` clients until the budget closes; returns (Tally, RssLog)."""
    tally, rss = Tally(), RssLog(server)
    watchers = [asyncio.create_task(rss.run()), asyncio.create_task(progress(tally, rss))]
    gap = {} if text_gap_s is None else {"gap_s": text_gap_s}
    clients = [voice_client(server.port, i, clips, budget, tally) for i in range(voice)]
    clients += [text_client(server.port, i, budget, tally, **gap) for i in range(text)]
    try:
        # The budget stops new turns; a turn in flight ends within TURN_TIMEOUT_S; this is the backstop.
        await asyncio.wait_for(asyncio.gather(*clients), budget.seconds + 3 * TURN_TIMEOUT_S)
    except asyncio.TimeoutError:
        tally.error("bench", "clients did not stop in time")
    finally:
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
    await wait_idle(server)
    return tally, rss


async def progress(tally: Tally, rss: RssLog) -> None:
    """A line every PROGRESS_EVERY_S, so that a long run shows it is alive."""
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        mb = rss.samples[-1][1] if rss.samples else 0.0
        done, errors = tally.completed(), len(tally.errors)
        print(
            f"  {time.monotonic() - rss.started:5.0f} s: {done} turns, {errors} errors, RSS {mb:.0f} MB",
            flush=True,
        )


def percentiles(values: list) -> dict:
    xs = [v for v in values if v is not None]
    if not xs:
        return {"n": 0, "p50": None, "p90": None, "max": None}
    p50, p90 = np.percentile(xs, [50, 90])
    return {"n": len(xs), "p50": round(float(p50)), "p90": round(float(p90)), "max": round(max(xs))}


def summarise(tally: Tally, rss: RssLog, seconds: float, voice: int, text: int) -> dict:
    voice_turns = [t for t in tally.turns if t.kind == "voice" and t.ok]
    text_turns = [t for t in tally.turns if t.kind == "text" and t.ok]
    mbs = [mb for _, mb in rss.samples]
    return {
        "voice_sessions": voice,
        "text_sessions": text,
        "seconds": round(seconds, 1),
        "turns": {"voice": len(voice_turns), "text": len(text_turns)},
        "errors": len(tally.errors),
        "error_samples": tally.errors[:10],
        "v2v_ms": percentiles([t.v2v_ms for t in voice_turns]),
        "client_v2v_ms": percentiles([t.client_ms for t in voice_turns]),
        "text_first_delta_ms": percentiles([t.client_ms for t in text_turns]),
        "rss_mb": {
            "start": round(mbs[0], 1) if mbs else None,
            "end": round(mbs[-1], 1) if mbs else None,
            "peak": round(max(mbs), 1) if mbs else None,
            "series": rss.series(),
        },
    }


async def phase_load(server, clips, voice: int, text: int, seconds: float) -> dict:
    started = time.monotonic()
    tally, rss = await run_sessions(server, voice, text, Budget(seconds), clips)
    return summarise(tally, rss, time.monotonic() - started, voice, text)


def rss_growth_pct(samples: list[tuple[float, float]]) -> float | None:
    """Memory growth over a soak: the median RSS of its last quarter against that of its second quarter.
    The first quarter is warm-up (allocator pools, caches sized by the longest texts and replies so far),
    and single samples swing by ~5% with the replies in flight, so neither end alone says much.
    samples: (seconds, MB), in time order."""
    if len(samples) < 8:
        return None
    t0, span = samples[0][0], samples[-1][0] - samples[0][0]

    def median_between(a: float, b: float) -> float:
        return statistics.median(mb for t, mb in samples if a * span <= t - t0 <= b * span)

    base = median_between(0.25, 0.5)
    return round(100 * (median_between(0.75, 1.0) - base) / base, 1)


async def phase_soak(server, clips, turns: int, voice: int, text: int, max_s: float) -> dict:
    """Turns until `turns` completed; memory over the soak (rss_growth_pct), and RSS after WARMUP_TURNS
    against RSS at the end (warm-up included)."""
    started = time.monotonic()
    budget = Budget(max_s, turns)
    tally, rss = await run_sessions(server, voice, text, budget, clips, SOAK_TEXT_GAP_S)
    out = summarise(tally, rss, time.monotonic() - started, voice, text)
    ends = sorted(t.at for t in tally.turns if t.ok)
    warm = rss.at(ends[min(WARMUP_TURNS, len(ends)) - 1]) if ends else None
    end = rss.samples[-1][1] if rss.samples else None
    from_warmup = round(100 * (end - warm) / warm, 1) if warm and end else None
    out.update(target_turns=turns, completed=tally.completed(), warmup_turns=WARMUP_TURNS)
    out.update(rss_after_warmup_mb=warm and round(warm, 1), rss_end_mb=end and round(end, 1))
    out.update(rss_growth_from_warmup_pct=from_warmup, rss_growth_pct=rss_growth_pct(rss.samples))
    return out


async def phase_capacity(server, clips, max_voice: int, step_s: float) -> dict:
    """Voice sessions 1, 2, ... for step_s each, until the median v2v reaches V2V_GOAL_MS or errors appear."""
    steps, capacity = [], 0
    for n in range(1, max_voice + 1):
        step = await phase_load(server, clips, n, 0, step_s)
        steps.append(step)
        p50 = step["v2v_ms"]["p50"]
        print(f"  capacity: {n} voice sessions, median v2v {p50} ms, errors {step['errors']}", flush=True)
        if step["errors"] or p50 is None or p50 >= V2V_GOAL_MS:
            break
        capacity = n
    return {"goal_ms": V2V_GOAL_MS, "step_seconds": step_s, "max_voice_sessions": capacity, "steps": steps}


# ------------------------------------------------------------------------------------------ refusal


async def _answers(conn) -> bool:
    """One short text reply on an open connection."""
    try:
        await conn.conversation.item.create(item={"type": "message", "role": "user", "content": PING})
        await conn.response.create(response={"output_modalities": ["text"]})
        _, status, _ = await read_turn(conn, ("response.output_text.delta",))
    except Exception:  # noqa: BLE001 -- a session that cannot answer is what this counts
        return False
    return status == "completed"


async def _extra_session(port: int, n: int) -> dict:
    """A connection one past a limit, from client n: what it was told, and whether it was closed."""
    url = f"ws://127.0.0.1:{port}/v1/realtime?model=dlm"
    try:
        async with ws_connect(url, open_timeout=TURN_TIMEOUT_S, local_addr=(loopback(n), 0)) as ws:
            first = json.loads(await asyncio.wait_for(ws.recv(), TURN_TIMEOUT_S))
            try:
                await asyncio.wait_for(ws.recv(), TURN_TIMEOUT_S)
                closed = False
            except ConnectionClosed:
                closed = True
    except InvalidStatus as e:  # refused at the handshake instead
        return {"code": None, "closed": True, "http_status": e.response.status_code}
    error = first.get("error") or {}
    return {
        "type": first.get("type"),
        "code": error.get("code"),
        "message": error.get("message"),
        "closed": closed,
    }


async def _over_limit(server: ServerProcess, clients: list[int], extra: int) -> dict:
    """Sessions for `clients` (numbers; repeats share an address), then one more from client `extra`;
    the open sessions must still answer."""
    await wait_idle(server)
    async with AsyncExitStack() as stack:
        conns = []
        for n in clients:
            conn = await stack.enter_async_context(connect(server.port, n))
            await expect(conn, "session.created")
            conns.append(conn)
        refused = await _extra_session(server.port, extra)
        answers = asyncio.gather(*(_answers(c) for c in conns))
        answered = await asyncio.wait_for(answers, 3 * TURN_TIMEOUT_S)
    await wait_idle(server)
    return {"sessions": len(clients), "extra": refused, "others_answered": sum(answered)}


async def check_refusal(server: ServerProcess, max_sessions: int, per_client: int | None) -> dict:
    """max_sessions users are served; one more is refused with too_many_sessions and closed; the rest
    still answer. With a per-client limit below max_sessions (at max_sessions the server-wide refusal
    comes first), the same holds for one address's sessions."""
    users = await _over_limit(
        server, [REFUSAL_CLIENTS + i for i in range(max_sessions)], REFUSAL_CLIENTS + max_sessions
    )
    out = {"max_sessions": max_sessions, **users}
    out["ok"] = _refused_well(users, REFUSED_CODE, max_sessions)
    if per_client is not None and per_client < max_sessions:
        one = await _over_limit(server, [REFUSAL_CLIENTS] * per_client, REFUSAL_CLIENTS)
        out["per_client"] = {"max_sessions_per_client": per_client, **one}
        out["ok"] = out["ok"] and _refused_well(one, REFUSED_PER_CLIENT_CODE, per_client)
    return out


def _refused_well(result: dict, code: str, sessions: int) -> bool:
    return (
        result["extra"]["code"] == code
        and result["extra"]["closed"]
        and result["others_answered"] == sessions
    )


# ------------------------------------------------------------------------------------------ report


def _row(name: str, p: dict) -> str:
    v, c, t = p["v2v_ms"], p["client_v2v_ms"], p["text_first_delta_ms"]
    rss = p["rss_mb"]
    return (
        f"{name:10} {p['voice_sessions']:>5} {p['text_sessions']:>4} {p['seconds']:>6.0f}"
        f" {p['turns']['voice']:>6} {p['turns']['text']:>5} {p['errors']:>6}"
        f" {v['p50'] or '-':>6} {v['p90'] or '-':>6} {c['p50'] or '-':>7} {t['p50'] or '-':>6}"
        f" {rss['start'] or 0:>7.0f} {rss['end'] or 0:>6.0f} {rss['peak'] or 0:>6.0f}"
    )


def print_report(result: dict) -> None:
    print(
        f"{'phase':10} {'voice':>5} {'text':>4} {'secs':>6} {'vturns':>6} {'tturns':>5} {'errors':>6}"
        f" {'v2v50':>6} {'v2v90':>6} {'client50':>7} {'text50':>6} {'rss0':>7} {'rss1':>6} {'peak':>6}"
    )
    for name in ("load", "soak"):
        if result.get(name):
            print(_row(name, result[name]))
    for step in (result.get("capacity") or {}).get("steps", []):
        print(_row("capacity", step))
    for name in ("load", "soak", "capacity"):
        for err in (result.get(name) or {}).get("error_samples", [])[:5]:
            print(f"  {name} error: {err}")
    if result.get("soak"):
        s = result["soak"]
        print(
            f"soak: {s['completed']} turns, RSS {s['rss_after_warmup_mb']} MB after {s['warmup_turns']} "
            f"turns -> {s['rss_end_mb']} MB at the end ({s['rss_growth_from_warmup_pct']}%); last quarter's "
            f"median against the second quarter's: {s['rss_growth_pct']}%"
        )
    if result.get("capacity"):
        cap = result["capacity"]
        print(
            f"capacity: {cap['max_voice_sessions']} voice sessions with median v2v < {cap['goal_ms']:.0f} ms"
        )
    r = result["refusal"]
    for label, part in (("users", r), ("one address", r.get("per_client"))):
        if part and "extra" in part:
            print(
                f"refusal ({label}): {part['sessions']} sessions served, {part['others_answered']} answered; "
                f"one more got {part['extra'].get('code')!r}, closed={part['extra'].get('closed')}"
            )
    print(f"refusal: {'ok' if r['ok'] else 'FAILED ' + r.get('error', '')}")
    if "error" in result:
        print(f"FAILED: {result['error']}")


def smoke_ok(result: dict) -> bool:
    load, soak = result["load"], result["soak"]
    return (
        load is not None
        and soak is not None
        and "error" not in result
        and load["turns"]["voice"] > 0
        and load["turns"]["text"] > 0
        and load["errors"] == 0
        and soak["errors"] == 0
        and soak["rss_growth_pct"] is not None
        and result["refusal"]["ok"]
    )


# ------------------------------------------------------------------------------------------ main


TURN_DETECTIONS = {
    "semantic_vad": {"type": "semantic_vad", "eagerness": "auto"},
    "server_vad": {"type": "server_vad", "silence_duration_ms": 500},
}


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voice", type=int, help="voice sessions (load: 2, soak: 1)")
    ap.add_argument("--text", type=int, help="text sessions (load: 1, soak: 2)")
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the load phase")
    ap.add_argument("--soak", type=int, metavar="TURNS", help="run turns until TURNS completed")
    ap.add_argument("--soak-max-s", type=float, default=SOAK_MAX_S, help="a soak stops here regardless")
    ap.add_argument("--capacity", action="store_true", help="ramp voice sessions while median v2v < 1 s")
    ap.add_argument("--step-seconds", type=float, default=CAPACITY_STEP_S, help="per capacity step")
    ap.add_argument("--smoke", action="store_true", help="tiny run for CI; exits 1 when a check fails")
    ap.add_argument("--max-sessions", type=int, help="the server's max_sessions (default: serve's, 8)")
    ap.add_argument(
        "--max-sessions-per-client",
        type=int,
        help="the server's max_sessions_per_client (default: serve's, 4 or --max-sessions if smaller)",
    )
    ap.add_argument("--model", help="diffusion LM for serve (default: bundled)")
    ap.add_argument(
        "--gateways",
        type=int,
        default=0,
        metavar="N",
        help="the split deployment instead of one serve: an lm-server, N gateways, HAProxy for N > 1",
    )
    ap.add_argument("--preset", help="speed/quality preset for serve (default: serve's)")
    ap.add_argument(
        "--turn-detection",
        choices=sorted(TURN_DETECTIONS),
        help="the voice clients' turn detection (default: the server's, semantic_vad)",
    )
    args = ap.parse_args(argv)
    if args.turn_detection:
        load_clients.TURN_DETECTION["value"] = TURN_DETECTIONS[args.turn_detection]
    for name in ("voice", "text", "soak"):
        value = getattr(args, name)
        if value is not None and value < (1 if name == "soak" else 0):
            ap.error(f"--{name.replace('_', '-')} is out of range: {value}")
    given = {"max_sessions": args.max_sessions, "max_sessions_per_client": args.max_sessions_per_client}
    try:  # the limits `serve` will be started with, checked as serve checks them
        args.limits = ServerConfig(port=0, **{k: v for k, v in given.items() if v is not None})
    except ValueError as e:
        ap.error(str(e))
    args.max_sessions = args.limits.max_sessions
    args.max_sessions_per_client = args.limits.max_sessions_per_client
    return args


def question_clips() -> list[np.ndarray]:
    from audio import pcm
    from testkit.speech import speech_samples

    return [speech_samples(q, rate=pcm.SAMPLE_RATE_API) for q in QUESTIONS]


async def warm_up(server: ServerProcess, clips) -> dict:
    """A few turns of each kind before measuring: the first replies of a fresh process are slow."""
    tally, _ = await run_sessions(server, 1, 1, Budget(WARMUP_PHASE_S, WARMUP_PHASE_TURNS), clips)
    return {"turns": tally.completed(), "errors": len(tally.errors)}


def smoke_max_s() -> float:
    """The longest `--smoke` runs before it prints its result: starting the server, then its phases."""
    return SMOKE_SETUP_S + START_TIMEOUT_S + SMOKE_PHASES_MAX_S + 2 * STOP_TIMEOUT_S


async def run_phases(server: ServerProcess, args, clips, result: dict) -> None:
    """The phases the flags ask for, each filling in its part of `result` as it ends."""
    if not args.smoke:
        result["warmup"] = await warm_up(server, clips)
    if args.smoke:
        result["load"] = await phase_load(server, clips, 1, 1, SMOKE_SECONDS)
        result["soak"] = await phase_soak(server, clips, SMOKE_SOAK_TURNS, 0, 2, SMOKE_SOAK_MAX_S)
    elif args.capacity:
        result["capacity"] = await phase_capacity(server, clips, args.max_sessions, args.step_seconds)
    elif args.soak:
        voice, text = 1 if args.voice is None else args.voice, 2 if args.text is None else args.text
        result["soak"] = await phase_soak(server, clips, args.soak, voice, text, args.soak_max_s)
    else:
        voice, text = 2 if args.voice is None else args.voice, 1 if args.text is None else args.text
        result["load"] = await phase_load(server, clips, voice, text, args.seconds)
    if getattr(server, "behind_proxy", False):  # sessions are spread: no one gateway refuses at the limit
        result["refusal"] = {"ok": True, "skipped": "the sessions are spread over several gateways"}
        return
    try:
        result["refusal"] = await check_refusal(server, args.max_sessions, args.max_sessions_per_client)
    except Exception as e:  # noqa: BLE001 -- reported, so the run still prints its figures
        result["refusal"] = {
            "ok": False,
            "error": f"{type(e).__name__}: {e}",
            "max_sessions": args.max_sessions,
        }


async def run_bounded(server: ServerProcess, args, clips) -> dict:
    """run_phases; a smoke's phases stop after SMOKE_PHASES_MAX_S, with what they had so far."""
    result: dict = {"load": None, "soak": None, "capacity": None}
    result["refusal"] = {"ok": False, "error": "not reached", "max_sessions": args.max_sessions}
    try:
        await asyncio.wait_for(
            run_phases(server, args, clips, result), SMOKE_PHASES_MAX_S if args.smoke else None
        )
    except asyncio.TimeoutError:
        result["error"] = f"the smoke's phases ran past {SMOKE_PHASES_MAX_S:.0f} s"
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    clips = question_clips()
    if args.gateways:
        server = Deployment(args.model, args.preset, args.limits, args.gateways).start()
    else:
        server = ServerProcess(args.model, args.preset, args.limits).start()
    try:
        result = asyncio.run(run_bounded(server, args, clips))
    finally:
        server.stop()
    result.update(model=args.model or "bundled", preset=args.preset, cpu_threads=os.cpu_count())
    result["gateways"] = args.gateways  # 0: one in-process serve
    print_report(result)
    ok = smoke_ok(result) if args.smoke else True
    result["ok"] = ok
    print(json.dumps(result))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
