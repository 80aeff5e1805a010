"""The first reply sound: how long after the first text it comes, and what a shorter first piece costs.

    python -m bench.first_audio [--rounds 2] [--model PATH]

Two first-piece policies side by side in one run (audio.tts.ChunkerConfig): `clauses` cuts a long first
sentence only at clause punctuation or before a connective (the policy before first_phrase_words), `phrase`
also gives its first phrase alone (first_phrase_words, the default now).
- latency: typed questions to an in-process Session with the real LM and piper, the two policies
  alternating per question (load drift hits both alike); first_audio - first_text from the reply's
  metrics, median and p90, and the first piece's length in characters.
- naturalness: fixed replies of the kind the assistant says, each synthesized as the policy cuts it (pieces
  joined as the session sends them) and whole; the bundled Whisper transcribes both. Reported: how often
  Whisper hears a sentence end at the seam (a full stop, question or exclamation mark after the first
  piece's last word, which the whole rendition does not have), and the silence at the seam in ms.
Prints a table, then ONE JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
from dataclasses import replace

import numpy as np

from assistant import frames as F
from assistant.config import ModelsConfig, SessionConfig
from assistant.engines import Engines
from assistant.session import Session
from audio import pcm
from audio.tts import ChunkerConfig, split_for_speech

POLICIES = {"clauses": ChunkerConfig(first_phrase_words=None), "phrase": ChunkerConfig()}
QUESTIONS = [
    "Hello, how are you today?",
    "Can you recommend a good movie for tonight?",
    "Tell me a joke.",
    "What should I cook for dinner?",
    "Where is the Eiffel Tower?",
    "I can't sleep.",
    "Can you help me plan my morning?",
    "What is the capital of Australia?",
    "What can you do?",
    "What can I do in Rome?",
]
REPLIES = [
    "The capital of France is Paris, a city on the Seine.",
    "Why did the robot cross the road? To charge its battery.",
    "You could make an omelette with some cheese and herbs.",
    "I don't have live data, so I can't tell you the weather.",
    "In Rome you could see the Colosseum and the Trevi Fountain.",
    "Try a dark, cool room and slow breathing, and keep screens away.",
    "I can tell the time, do sums and conversions, and set timers.",
    "The Eiffel Tower is in Paris, the capital of France.",
    "That sounds hard, but a short walk and a few deep breaths can help.",
    "How about watching Up tonight? It's a lot of fun for everyone.",
]
SILENT_BELOW = 0.01  # |sample| under this counts as silence at the seam


async def _one(engines: Engines, question: str) -> dict:
    s = Session(engines, SessionConfig(turn_detection=None))
    try:
        await s.add_text(question)
        await s.create_response()
        while not isinstance(f := await s.next_frame(), F.ResponseDone):
            pass
        return {"gap": f.metrics["first_audio"] - f.metrics["first_text"], "text": f.text}
    finally:
        await s.close()


async def latency(engines: Engines, rounds: int) -> dict:
    """first_audio - first_text per policy, the policies alternating per question."""
    base = engines.tts.cfg
    got = {name: [] for name in POLICIES}
    for _ in range(rounds):
        for q in QUESTIONS:
            for name, chunker in POLICIES.items():
                engines.tts.cfg = replace(base, chunker=chunker)
                r = await _one(engines, q)
                r["first_piece"] = len(split_for_speech(r["text"], chunker)[0]) if r["text"] else 0
                got[name].append(r)
    engines.tts.cfg = base
    return {name: _summary(rows) for name, rows in got.items()}


def _summary(rows: list[dict]) -> dict:
    gaps = sorted(r["gap"] for r in rows)
    return {
        "median_ms": round(statistics.median(gaps), 1),
        "p90_ms": round(gaps[int(0.9 * (len(gaps) - 1))], 1),
        "median_first_piece_chars": statistics.median(r["first_piece"] for r in rows),
        "n": len(rows),
    }


def _seam_silence_ms(first: np.ndarray, rate: int) -> float:
    """Silence at the end of the first piece's audio (the rest of the seam is the next piece's lead)."""
    loud = np.flatnonzero(np.abs(first) >= SILENT_BELOW)
    return 1000.0 * (len(first) - (loud[-1] + 1 if len(loud) else 0)) / rate


def naturalness(engines: Engines) -> dict:
    """Per policy: share of replies with a sentence end heard at the seam, and the seam's silence."""
    tts, asr = engines.tts, engines.asr
    out = {}
    for name, chunker in POLICIES.items():
        breaks = seams = 0
        silences = []
        for reply in REPLIES:
            pieces = split_for_speech(reply, chunker)
            if len(pieces) < 2:
                continue
            seams += 1
            chunks = [c for p in pieces for c in tts.synthesize_piece(p, pcm.SAMPLE_RATE_ASR)]
            first = np.concatenate([c.samples for c in tts.synthesize_piece(pieces[0], pcm.SAMPLE_RATE_ASR)])
            silences.append(_seam_silence_ms(first, pcm.SAMPLE_RATE_ASR))
            heard = asr.transcribe(np.concatenate([c.samples for c in chunks])).text
            breaks += _sentence_end_after(heard, pieces[0])
        out[name] = {
            "replies_cut": seams,
            "sentence_end_heard_at_seam": breaks,
            "median_seam_silence_ms": round(statistics.median(silences), 1) if silences else None,
        }
    return out


def _sentence_end_after(heard: str, first_piece: str) -> bool:
    """Whisper wrote . ? or ! right after the first piece's last word."""
    last = re.sub(r"\W", "", first_piece.split()[-1].lower())
    for w in heard.split()[:-1]:
        if re.sub(r"\W", "", w.lower()) == last:
            return w.rstrip("\"')")[-1:] in ".?!"
    return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.first_audio", description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2, help="passes over the questions per policy")
    ap.add_argument("--model", default=None, help="diffusion LM folder (default: bundled)")
    args = ap.parse_args(argv)
    engines = Engines.load(ModelsConfig(model=args.model) if args.model else ModelsConfig())
    try:
        asyncio.run(latency(engines, 1))  # warm-up: every shape piper and the LM meet, once
        lat = asyncio.run(latency(engines, args.rounds))
        nat = naturalness(engines)
    finally:
        engines.close()
    head = ("gap med", "gap p90", "piece", "cut", "break", "seam ms")
    print(f"{'policy':8s} " + " ".join(f"{h:>8s}" for h in head))
    for name in POLICIES:
        a, b = lat[name], nat[name]
        row = (a["median_ms"], a["p90_ms"], a["median_first_piece_chars"], b["replies_cut"])
        row += (b["sentence_end_heard_at_seam"], b["median_seam_silence_ms"] or 0)
        print(f"{name:8s} " + " ".join(f"{v:8.1f}" for v in row))
    print(json.dumps({"latency": lat, "naturalness": nat}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
