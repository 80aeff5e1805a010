"""Turn ids, interruption, and what of an interrupted reply the listener actually heard.

A session has one current turn id. Starting a reply stamps its frames with the current id; an interruption
(barge-in or cancel) advances the id, which makes every frame of the old reply stale at once, wherever it
is queued. `SpokenReply` keeps the reply audio's timeline (which text each stretch of audio speaks) so the
history can keep only what was played, as `conversation.item.truncate` does.
"""

from __future__ import annotations

import itertools
import time
import uuid
from dataclasses import dataclass, field

from assistant.frames import DataFrame, Frame


def new_id(prefix: str) -> str:
    """OpenAI-style ids: "item_...", "resp_...", "sess_...", "event_..."."""
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


class TurnIds:
    """The current turn of one session."""

    def __init__(self):
        self._ids = itertools.count(1)
        self.current = next(self._ids)

    def advance(self) -> int:
        """A new turn: every data frame stamped with an older id is now stale."""
        self.current = next(self._ids)
        return self.current

    def is_stale(self, frame: Frame) -> bool:
        return isinstance(frame, DataFrame) and frame.turn_id != self.current


@dataclass
class _Piece:
    start_ms: float
    end_ms: float
    text: str


@dataclass
class SpokenReply:
    """The audio timeline of one reply: pieces of text with the audio span that speaks them."""

    pieces: list[_Piece] = field(default_factory=list)
    first_audio_at: float | None = None  # perf_counter when the first audio left the server

    @property
    def audio_ms(self) -> float:
        return self.pieces[-1].end_ms if self.pieces else 0.0

    def add(self, text: str, duration_ms: float) -> None:
        if self.first_audio_at is None:
            self.first_audio_at = time.perf_counter()
        start = self.audio_ms
        if self.pieces and self.pieces[-1].text == text:  # one piece synthesized in several chunks
            self.pieces[-1].end_ms = start + duration_ms
        else:
            self.pieces.append(_Piece(start, start + duration_ms, text))

    def played_ms(self, now: float | None = None) -> float:
        """Audio the listener has heard if playback started with the first chunk and runs in real time."""
        if self.first_audio_at is None:
            return 0.0
        now = time.perf_counter() if now is None else now
        return min(self.audio_ms, (now - self.first_audio_at) * 1000.0)

    def text_until(self, ms: float) -> str:
        """The reply text spoken in the first `ms` of audio; a piece cut midway keeps its share of words."""
        out = []
        for p in self.pieces:
            if ms >= p.end_ms:
                out.append(p.text)
            elif ms > p.start_ms:
                words = p.text.split()
                share = (ms - p.start_ms) / max(p.end_ms - p.start_ms, 1e-6)
                n = int(len(words) * share)
                if n:
                    out.append(" ".join(words[:n]))
                break
            else:
                break
        return " ".join(out)
