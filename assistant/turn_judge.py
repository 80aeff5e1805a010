"""Is the user done? The end-of-turn judge of semantic endpointing (audio.endpoint.TurnJudge).

Two signals, each cheap, combined by a logistic fit on labelled speech (`python -m bench.turn_eval`):
- the sound: Smart Turn v3 on the last 8 s of audio (`audio.smart_turn`, from the pipecat-ai package);
- the words: the bundled autoregressive twin's probability that the user's message ends there
  (`dlm_core.turn_end`), read from the speculative transcript.

    judge = TurnJudge.load()                    # both models when installed, the text model at least
    p = judge.p_complete(judge.p_audio(audio_16k), "Set a timer for ten minutes.")

Each signal enters as its logit; a missing one (no pipecat-ai installed, or no words yet) uses the
calibration fitted for the other alone.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass

import numpy as np

from audio.smart_turn import SmartTurn
from dlm_core.turn_end import TextTurnEnd

log = logging.getLogger(__name__)
P_EPS = 1e-6  # probabilities are clipped to [eps, 1 - eps] before their logit


@dataclass(frozen=True)
class Calibration:
    """A logistic fit, p = sigmoid(audio * logit(p_audio) + text * logit(p_text) + bias), and the decision
    threshold chosen for it (F0.5 on the training sentences: a wrong "complete" cuts the user off, so
    precision counts double). `__call__` returns the fit shifted so that its threshold lands on 0.5: the
    endpointer's one threshold then means "the fitted decision" whichever signals were there."""

    audio: float
    text: float
    bias: float
    threshold: float

    def __call__(self, p_audio: float | None, p_text: float | None) -> float:
        z = self.bias - _logit(self.threshold)
        if p_audio is not None:
            z += self.audio * _logit(p_audio)
        if p_text is not None:
            z += self.text * _logit(p_text)
        return 1.0 / (1.0 + math.exp(-z))


# Fitted by `python -m bench.turn_eval` on 536 clips of 32 sentences (piper at two speeds, four espeak-ng
# voices; complete, broken off, and paused mid-sentence; 200 ms of trailing silence; Whisper transcripts).
# Held out (260 clips, 16 other sentences), precision / recall of "complete": both 0.70 / 0.49, words
# alone 0.67 / 0.66, sound alone 0.44 / 0.37 (Smart Turn is weak on synthetic voices).
BOTH = Calibration(audio=0.2759, text=0.4376, bias=0.1687, threshold=0.623)
TEXT_ONLY = Calibration(audio=0.0, text=0.4410, bias=0.4114, threshold=0.441)
AUDIO_ONLY = Calibration(audio=0.2578, text=0.0, bias=-0.8175, threshold=0.494)


def _logit(p: float) -> float:
    p = min(max(p, P_EPS), 1.0 - P_EPS)
    return math.log(p / (1.0 - p))


class TurnJudge:
    """Shared by every session: each model runs one call at a time."""

    def __init__(self, text: TextTurnEnd, audio: SmartTurn | None):
        self.text, self.audio = text, audio
        self._text_lock, self._audio_lock = threading.Lock(), threading.Lock()

    @classmethod
    def load(cls) -> TurnJudge:
        """The text model always (the twin ships with this package); Smart Turn when pipecat-ai is
        installed, else the judge goes on with the words alone and says so once."""
        audio = None
        try:
            audio = SmartTurn.load()
        except FileNotFoundError as e:
            log.warning("end of turn judged from the words alone: %s", e)
        return cls(TextTurnEnd.load(), audio)

    def p_audio(self, audio_16k: np.ndarray) -> float | None:
        if self.audio is None:
            return None
        with self._audio_lock:
            return self.audio.predict(audio_16k)

    def p_text(self, text: str) -> float | None:
        if not text.strip():
            return None
        with self._text_lock:
            return self.text.p_end_words(text)

    def p_complete(self, p_audio: float | None, text: str) -> float:
        return combine(p_audio, self.p_text(text))


def combine(p_audio: float | None, p_text: float | None) -> float:
    """The calibrated verdict from whichever signals there are (each None when missing)."""
    if p_audio is not None and p_text is not None:
        return BOTH(p_audio, p_text)
    if p_text is not None:
        return TEXT_ONLY(None, p_text)
    if p_audio is not None:
        return AUDIO_ONLY(p_audio, None)
    return 0.0  # nothing was said: not a turn
