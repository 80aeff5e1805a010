"""Voice-to-voice latency and cut-offs through the official `openai` SDK against a real `serve` process.

    python -m bench.voice_latency [--turns 10] [--pauses 0.3,0.6,0.9,1.2] [--model PATH] [--quick]
                                  [--fresh-speech] [--network-lm]

Starts `python -m assistant serve` on a free port with the given (default: bundled) models and, side by
side in one run, for each turn detection (`semantic_vad`, the server default, and `server_vad` with its
500 ms silence rule):
- latency: speaks each question (piper speech, streamed in real time in 20 ms chunks; its renditions
  are kept, so that runs compare on the same audio, unless --fresh-speech) and reads the server's
  `dlm.turn_metrics`: voice-to-voice is the server's figure, from the end of the user's speech (the
  VAD's speech end) to the first reply audio sent; `client` is what this client saw, from the
  question's last sound leaving it to the first audio delta arriving, and `client_audible` to the first
  reply sound (piper begins a piece with silence: audio played from its arrival). Median and p90 per
  stage.
- cut-offs: requests spoken with a pause in the middle ("I'd like to book a table for ... two people
  tomorrow evening."), one per pause length; a request heard as more than one turn was cut off.
Under semantic_vad each turn's judge verdict (`p_complete` of dlm.turn_metrics) is kept with what was
heard, and the turns are counted by the band it put them in (ended after 200 ms, 1 s or 2 s of silence).
Then the server's speculation counters (replies started in a pause, used, discarded, and the work the
discarded ones wasted). Prints tables, then one JSON line.

--network-lm: the latency turns instead, each question asked in turn of the in-process `serve` and of a
gateway whose LM is an `lm-server` process on loopback (`serve --lm-url`), with the same model: the cost
of the network hop, side by side, with the LM's round trip and first text as the gateway measured them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
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
from turn_taking.endpoint import EAGERNESS

QUESTIONS = [
    "Hello, how are you today?",
    "Can you recommend a good movie for tonight?",
    "What time is it?",
    "Tell me a joke.",
    "Thank you, that was nice.",
]
# (first half, second half): each half alone is not a whole request.
SPLIT_REQUESTS = [
    ("I would like to book a table for", "two people tomorrow evening."),
    ("Can you tell me a joke about", "cats and dogs?"),
    ("Please remind me to call my mother at", "six o'clock tonight."),
    ("What is a good movie to watch with", "my kids this weekend?"),
]
PAUSES_S = (0.3, 0.6, 0.9, 1.2)
MODES = {  # turn_detection sent in session.update
    "semantic_vad": {"type": "semantic_vad", "eagerness": "auto"},
    "server_vad": {"type": "server_vad", "silence_duration_ms": 500},
}
CHUNK_MS = 20  # a live microphone's packet size
LEAD_S, TRAIL_S = 0.5, 3.0  # silence before and after each clip (the trail outlasts the longest wait)
STAGES = ("endpointing", "asr", "turn_judge", "first_text", "first_audio", "voice_to_voice")
NETWORK_STAGES = ("lm_round_trip", "lm_first_text")  # a gateway with a remote LM (--network-lm)
SERVER_START_S = 120
REPLY_WAIT_S = 30  # after the clip, how long the last reply may take


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, args, lm_url: str | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "assistant", "serve", "--port", str(port), "--preset", args.preset]
    cmd += ["--lm-url", lm_url] if lm_url else []
    if args.model:
        cmd += ["--model", args.model]
    if getattr(args, "instructions", None) is not None:
        cmd += ["--instructions", args.instructions]
    if getattr(args, "no_builtin_tools", False):
        cmd += ["--no-builtin-tools"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"serve exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"serve did not answer /healthz within {SERVER_START_S} s")


def speech(tts: Synthesizer, text: str, take: int = 0, fresh: bool = False) -> np.ndarray:
    """piper's rendition number `take` of `text` at SAMPLE_RATE_API. piper varies every rendition, and
    the judge's verdict moves with it ("Thank you, that was nice." from p 0.19 to 0.36), so each is kept
    under testkit's cache dir (per voice): every run on this machine, before and after a change, hears
    the same audio. `fresh`: new renditions (they replace the kept ones)."""
    from testkit.speech import cache_dir, write_cached

    digest = hashlib.sha1(f"{tts.path}|{text}".encode()).hexdigest()[:16]
    path = cache_dir() / "voice_latency" / f"{digest}_{take}.wav"
    if fresh or not path.exists():
        x = np.concatenate([c.samples for c in tts.synthesize(text, rate=pcm.SAMPLE_RATE_API)])
        write_cached(path, x, pcm.SAMPLE_RATE_API)
    return pcm.read_wav(path)[0]


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * pcm.SAMPLE_RATE_API), np.float32)


def clip(*parts: np.ndarray) -> tuple[np.ndarray, float]:
    """Lead silence + parts + trailing silence, and where the speech ends: its last sound (seconds into
    the clip; piper ends a sentence with silence, which is not speech)."""
    body = np.concatenate(parts)
    span = pcm.sound_span(body)
    end_s = LEAD_S + (span[1] if span is not None else len(body)) / pcm.SAMPLE_RATE_API
    return np.concatenate([silence(LEAD_S), body, silence(TRAIL_S)]), end_s


async def run_clip(port: int, audio: np.ndarray, speech_end_s: float, mode: str) -> dict:
    """Stream one clip in real time; collect what the server heard and said, and the last turn's metrics."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key="unused", base_url=f"http://127.0.0.1:{port}/v1")
    out = {"heard": [], "said": "", "latency_ms": None, "client_ms": None, "metrics": 0, "p_complete": None}
    out.update(client_audible_ms=None, reply_samples=0)
    async with client.realtime.connect(model="dlm") as conn:
        td = MODES[mode]
        await conn.session.update(session={"type": "realtime", "audio": {"input": {"turn_detection": td}}})
        t0 = time.perf_counter()
        reader = asyncio.create_task(_read(conn, out, t0 + speech_end_s))
        try:
            await send_paced(conn, audio, t0)
            deadline = time.perf_counter() + REPLY_WAIT_S
            while (
                not (out["metrics"] and out["metrics"] >= len(out["heard"]))
                and time.perf_counter() < deadline
            ):
                await asyncio.sleep(0.05)  # the reply to the last turn is still going
        finally:
            reader.cancel()
    return out


async def send_paced(conn, audio: np.ndarray, t0: float) -> None:
    step = pcm.ms_to_samples(CHUNK_MS, pcm.SAMPLE_RATE_API)
    for i, start in enumerate(range(0, len(audio), step)):
        chunk = pcm.float_to_int16_bytes(audio[start : start + step])
        await conn.input_audio_buffer.append(audio=base64.b64encode(chunk).decode())
        await asyncio.sleep(max(0.0, t0 + (i + 1) * CHUNK_MS / 1000 - time.perf_counter()))


async def _read(conn, out: dict, speech_end_at: float) -> None:
    async for ev in conn:
        if ev.type == "conversation.item.input_audio_transcription.completed":
            out["heard"].append(ev.transcript)
        elif ev.type == "response.output_audio.delta" and out["client_audible_ms"] is None:
            _first_reply_audio(out, ev.delta, 1000 * (time.perf_counter() - speech_end_at))
        elif ev.type == "response.output_audio_transcript.delta":
            out["said"] += ev.delta
        elif ev.type == "error":
            raise SystemExit(f"server error: {ev.error.message}")
        elif ev.type == "dlm.turn_metrics":
            lat = ev.latency_ms
            out["latency_ms"] = lat if isinstance(lat, dict) else dict(lat)
            out["p_complete"] = getattr(ev, "p_complete", None)
            out["metrics"] += 1


def _first_reply_audio(out: dict, delta: str, at_ms: float) -> None:
    """Reply audio before its first sound: when it arrived, and when that sound plays (audio plays from
    its first delta's arrival at SAMPLE_RATE_API)."""
    if out["client_ms"] is None:
        out["client_ms"] = at_ms
    x = pcm.int16_bytes_to_float(base64.b64decode(delta))
    span = pcm.sound_span(x)
    if span is not None:
        played_from = out["client_ms"] + 1000 * (out["reply_samples"] + span[0]) / pcm.SAMPLE_RATE_API
        out["client_audible_ms"] = max(at_ms, played_from)
    out["reply_samples"] += len(x)


def percentile(values: list[float], q: float) -> float | None:
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def latency_rows(port: int, clips: list, mode: str) -> list[dict]:
    rows = []
    for question, (audio, end_s) in clips:
        r = asyncio.run(run_clip(port, audio, end_s, mode))
        rows.append({"question": question, **r})
    return rows


def cutoff_rows(port: int, split_clips: list, mode: str) -> list[dict]:
    rows = []
    for pause, request, (audio, end_s) in split_clips:
        r = asyncio.run(run_clip(port, audio, end_s, mode))
        rows.append({"pause_s": pause, "request": request, "turns": len(r["heard"]), "heard": r["heard"]})
    return rows


def stage_stats(rows: list[dict]) -> dict:
    out = {}
    for s in (*STAGES, *NETWORK_STAGES, "client", "client_audible"):
        vals = [r.get(f"{s}_ms") if s.startswith("client") else (r["latency_ms"] or {}).get(s) for r in rows]
        vals = [v for v in vals if v is not None]
        if vals:
            out[s] = {"median": round(statistics.median(vals)), "p90": round(percentile(vals, 0.9))}
    return out


def judged_bands(rows: list[dict]) -> dict | None:
    """How many turns semantic_vad's judge (eagerness auto) put in each band; None without a judge."""
    verdicts = [r["p_complete"] for r in rows if r["p_complete"] is not None]
    if not verdicts:
        return None
    cfg = EAGERNESS["auto"]
    bands = {
        cfg.complete_silence_ms: "complete",
        cfg.unsure_silence_ms: "unsure",
        cfg.max_wait_ms: "unfinished",
    }
    waits = [cfg.silence_needed_ms(p) for p in verdicts]
    return {name: waits.count(ms) for ms, name in bands.items()}


def cutoff_rates(rows: list[dict]) -> dict:
    rates = {}
    for pause in sorted({r["pause_s"] for r in rows}):
        at = [r for r in rows if r["pause_s"] == pause]
        rates[str(pause)] = round(sum(r["turns"] > 1 for r in at) / len(at), 3)
    return rates


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--json", action="store_true", help="(kept for symmetry: the JSON line is always printed)"
    )
    ap.add_argument("--model", help="diffusion LM folder (default: bundled)")
    ap.add_argument("--preset", default="balanced", choices=PRESET_NAMES)
    ap.add_argument("--instructions", default=None, help="the server's system prompt (default: its own)")
    ap.add_argument("--no-builtin-tools", action="store_true", help="serve without the built-in tools")
    ap.add_argument("--turns", type=int, default=2 * len(QUESTIONS), help="latency turns per mode")
    ap.add_argument("--pauses", default=",".join(map(str, PAUSES_S)), help="mid-request pauses (s)")
    ap.add_argument("--modes", default=",".join(MODES), help="turn detections to compare")
    ap.add_argument("--quick", action="store_true", help="2 turns and one split request per mode (CI smoke)")
    ap.add_argument(
        "--network-lm", action="store_true", help="in-process LM against an lm-server, side by side"
    )
    ap.add_argument(
        "--fresh-speech",
        action="store_true",
        help="new piper renditions instead of the ones kept from before",
    )
    args = ap.parse_args(argv)
    args.pauses = [float(p) for p in args.pauses.split(",") if p]
    args.modes = [m for m in args.modes.split(",") if m]
    for m in args.modes:
        if m not in MODES:
            ap.error(f"unknown mode {m!r}; choose from {list(MODES)}")
    if args.quick:
        args.turns, args.pauses = 2, [0.6]
    return args


def make_clips(tts: Synthesizer, args) -> tuple[list, list]:
    fresh = args.fresh_speech
    questions = (QUESTIONS * 4)[: args.turns]
    clips = [(q, clip(speech(tts, q, questions[:i].count(q), fresh))) for i, q in enumerate(questions)]
    requests = SPLIT_REQUESTS[:1] if args.quick else SPLIT_REQUESTS
    halves = [(a + " ... " + b, speech(tts, a, 0, fresh), speech(tts, b, 0, fresh)) for a, b in requests]
    split = [(p, text, clip(x, silence(p), y)) for p in args.pauses for text, x, y in halves]
    return clips, split


def print_tables(result: dict) -> None:
    for mode, m in result["modes"].items():
        print(f"\n{mode}: latency over {m['turns']} turns (ms)")
        print(f"{'stage':<16} {'median':>7} {'p90':>7}")
        for stage, st in m["stages"].items():
            print(f"{stage:<16} {st['median']:>7} {st['p90']:>7}")
        cut = "  ".join(f"{p}s: {r:.0%}" for p, r in m["cutoff_rate"].items())
        print(f"cut-off rate by mid-request pause: {cut}")
        if m["judged_bands"]:
            bands = ", ".join(f"{name} {n}" for name, n in m["judged_bands"].items())
            print(f"turns by the judge's band (eagerness auto): {bands}")
    print(f"\nspeculation (server totals): {result['speculation']}")


def compare_network(args, clips) -> int:
    """Each question asked of the in-process server, then of the gateway with a remote LM."""
    from bench.deployment import LmServerProcess

    lm = LmServerProcess(args.model, args.preset).start()
    ports = {"in_process": free_port(), "network_lm": free_port()}
    procs = [start_server(ports["in_process"], args), start_server(ports["network_lm"], args, lm.url)]
    result = {"model": args.model or "bundled", "preset": args.preset, "cpus": os.cpu_count(), "modes": {}}
    try:
        for mode in args.modes:
            rows: dict[str, list] = {name: [] for name in ports}
            for one in clips:
                for name, port in ports.items():
                    rows[name] += latency_rows(port, [one], mode)
            result["modes"][mode] = {name: stage_stats(r) for name, r in rows.items()}
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        lm.stop()
    for mode, by in result["modes"].items():
        print(f"\n{mode}: {len(clips)} turns each (ms)   in-process median/p90   network LM median/p90")
        for stage in (*STAGES, *NETWORK_STAGES, "client", "client_audible"):
            cells = [by[name].get(stage) for name in ports]
            text = [f"{c['median']:>7} {c['p90']:>7}" if c else f"{'-':>7} {'-':>7}" for c in cells]
            print(f"{stage:<16} {text[0]:>24} {text[1]:>24}")
    print(json.dumps(result))
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    clips, split = make_clips(Synthesizer.load(), args)
    if args.network_lm:
        return compare_network(args, clips)
    port = free_port()
    proc = start_server(port, args)
    modes = {}
    try:
        for mode in args.modes:
            rows = latency_rows(port, clips, mode)
            cuts = cutoff_rows(port, split, mode)
            modes[mode] = {
                "turns": len(rows),
                "stages": stage_stats(rows),
                "cutoff_rate": cutoff_rates(cuts),
                "judged_bands": judged_bands(rows),
                "cutoffs": [c for c in cuts if c["turns"] > 1],
                "turns_ms": [
                    dict(r["latency_ms"] or {}, client=r["client_ms"], client_audible=r["client_audible_ms"])
                    for r in rows
                ],
                "turns_heard": [
                    {"question": r["question"], "heard": r["heard"], "p_complete": r["p_complete"]}
                    for r in rows
                ],
            }
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as f:
            speculation = json.loads(f.read())["summary"]["speculation"]
    finally:
        proc.terminate()
        proc.wait(10)
    result = {"model": args.model or "bundled", "preset": args.preset, "cpus": os.cpu_count()}
    result.update(modes=modes, speculation=speculation)
    print_tables(result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
