"""Latency of turns: one turn's clock marks, and the recent turns a server reports at /metrics."""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass

SPECULATION_COUNTS = ("started", "used", "discarded", "wasted_forward_passes", "wasted_audio_ms")
# Summarised at /metrics; the lm_ ones only where the LM is remote (serve --lm-url).
STAGES = (
    "voice_to_voice",
    "first_audio",
    "first_text",
    "asr",
    "endpointing",
    "lm_first_text",
    "lm_round_trip",
)


# What the user's side of a turn marks on its clock (the rest is the reply's).
HEARD = ("speech_end", "stop_decided", "transcript", "turn_judge_ms", "p_complete")


@dataclass
class LatencyClock:
    """perf_counter marks of one turn. Durations in ms; voice_to_voice is end of user speech (the VAD's
    speech end, mapped to the wall time that audio arrived) to the first reply audio sent."""

    speech_end: float | None = None  # user stopped talking (VAD end position), or a manual commit
    stop_decided: float | None = None  # endpointing decided the turn is over
    transcript: float | None = None  # the transcript was ready
    response_start: float | None = None
    first_text: float | None = None
    first_audio: float | None = None
    turn_judge_ms: float | None = None  # what the end-of-turn judge added beyond Whisper (semantic_vad)
    p_complete: float | None = None  # the judge's verdict on the user's words (semantic_vad), else None
    lm_sent: float | None = None  # a remote LM: the reply's request was sent
    lm_answered: float | None = None  # a remote LM: its answer's headers came back (the network round trip)

    def latency_ms(self) -> dict:
        def span(a, b):
            return None if a is None or b is None else round((b - a) * 1000.0, 1)

        return {
            "endpointing": span(self.speech_end, self.stop_decided),
            "asr": span(self.stop_decided, self.transcript),
            "first_text": span(self.response_start, self.first_text),
            "first_audio": span(self.response_start, self.first_audio),
            "voice_to_voice": span(self.speech_end, self.first_audio),
            "turn_judge": None if self.turn_judge_ms is None else round(self.turn_judge_ms, 1),
            "lm_round_trip": span(self.lm_sent, self.lm_answered),
            "lm_first_text": span(self.lm_sent, self.first_text),
        }

    def take_heard(self, heard: LatencyClock) -> None:
        """A held reply's clock takes the marks of the user's turn it turned out to answer."""
        for name in HEARD:
            setattr(self, name, getattr(heard, name))

    def network_lm(self, stream) -> None:
        """A remote LM's stream (its `sent` and `headers_at` marks); a local one has none."""
        self.lm_sent = getattr(stream, "sent", None)
        self.lm_answered = getattr(stream, "headers_at", None)


class Metrics:
    """Recent turns' latency figures, for /metrics."""

    def __init__(self, keep: int):
        self.turns: deque[dict] = deque(maxlen=keep)
        self.speculation = dict.fromkeys(SPECULATION_COUNTS, 0)  # all sessions' held replies (Session)

    def add(self, turn: dict) -> None:
        self.turns.append(turn)

    def summary(self) -> dict:
        out = {"turns": len(self.turns), "speculation": dict(self.speculation)}
        for key in STAGES:
            vals = [t["latency_ms"][key] for t in self.turns if t["latency_ms"].get(key) is not None]
            if vals:
                out[key] = {"median": round(statistics.median(vals), 1), "min": min(vals), "max": max(vals)}
        return out
