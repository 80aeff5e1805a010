"""Is the user done? The end-of-turn judge that semantic endpointing (turn_taking.endpoint) asks.

Five signals, each cheap, combined by a logistic fit on labelled speech (`python -m bench.turn_eval`):
- the sound: Smart Turn v3 on the last 8 s of audio (`turn_taking.smart_turn`, from the pipecat-ai package);
- the words, three times, read from the speculative transcript: the bundled autoregressive twin's
  probability that the user's message ends there (`turn_taking.twin`), how often a sentence ends after
  its last words in our training conversations (`turn_taking.sentence_ends`, a counted table), and
  whether the whole utterance so far is a finished sentence (`turn_taking.utterance_end`, a small model
  that reads every word and no punctuation: "when I get home" is not finished, whatever full stop
  Whisper wrote after it);
- Whisper's own probability of the last word it wrote (`audio.asr.Transcript.last_word_p`): a phrase
  broken off ends on a word Whisper is less sure of, or on one it made up to finish the sentence.

    judge = TurnJudge.load()                    # the text models, and Smart Turn when installed
    p = judge.p_complete(judge.p_audio(audio_16k), "Set a timer for ten minutes.", p_last_word=0.98)

Each signal enters as its logit; a missing one (no pipecat-ai installed, no words yet, or a transcript
from Whisper's long path, which gives no word probability) uses the calibration fitted without it.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass

import numpy as np

from turn_taking.sentence_ends import SentenceEnds
from turn_taking.smart_turn import SmartTurn
from turn_taking.twin import TwinTurnEnd
from turn_taking.utterance_end import UtteranceEnd

log = logging.getLogger(__name__)
P_EPS = 1e-6  # probabilities are clipped to [eps, 1 - eps] before their logit
# Below this the whole-utterance model says the words are plainly unfinished ("when I get home", "can you
# send it to", "set a timer for um"), and the verdict is capped at CAPPED_VERDICT, under the fitted
# decision (0.5): such a pause ends the turn no sooner than the maybe band (1.2 s in eagerness auto),
# whatever the sound and Whisper's confidence say. Smart Turn hears piper's comma pause as finished (p >
# 0.9 on half of bench.turn_eval's held-out thinking pauses), so the logistic sum alone let a pause after
# "When I get home" end the turn after 200 ms. On the held-out clips the cap took the thinking pauses that
# a pause of up to 1 s ends from 20 to 15 % (after a greeting 38 -> 12 %) and the mean wait of finished
# turns from 784 to 872 ms; a cap at 0.3 gave about 11 % and 1057 ms ("What time is it?" scores 0.23).
UNFINISHED_WORDS = 0.2
CAPPED_VERDICT = 0.49


@dataclass(frozen=True)
class Calibration:
    """A logistic fit, p = sigmoid(audio * logit(p_audio) + text * logit(p_twin) + counts * logit(p_counts)
    + asr * logit(p_last_word) + utterance * logit(p_utterance) + bias), and the decision threshold chosen for
    it (F0.5 on the training sentences: a wrong "complete" cuts the user off, so precision counts
    double). `__call__` returns the fit shifted so that its threshold lands on 0.5: the endpointer's one
    threshold then means "the fitted decision" whichever signals were there."""

    audio: float
    text: float
    counts: float
    bias: float
    threshold: float
    asr: float = 0.0  # 0 in the fits made without Whisper's word probability
    utterance: float = 0.0  # 0 in the fits made before the whole-utterance model

    def __call__(self, p_audio: float | None, words: Words | None) -> float:
        z = self.bias - _logit(self.threshold)
        if p_audio is not None:
            z += self.audio * _logit(p_audio)
        if words is not None:
            z += self.text * _logit(words.p_twin) + self.counts * _logit(words.p_counts)
            if words.p_last_word is not None:  # the fits made without it weigh it 0
                z += self.asr * _logit(words.p_last_word)
            if words.p_utterance is not None:
                z += self.utterance * _logit(words.p_utterance)
        return 1.0 / (1.0 + math.exp(-z))


@dataclass(frozen=True)
class Words:
    """The signals read from one transcript."""

    p_twin: float  # TwinTurnEnd.p_end_words
    p_counts: float  # SentenceEnds.p_end
    p_last_word: float | None = None  # audio.asr.Transcript.last_word_p (None: not known)
    p_utterance: float | None = None  # UtteranceEnd.p_end (None: the judge has no such model)


# Fitted by `python -m bench.turn_eval` on labelled clips of training.turn_sentences (README, "Turn-taking
# notes": the data, the held-out precision and recall, and the alternatives measured and rejected).
# Without Whisper's last-word probability (the 30 s path gives none): all signals, and the words alone.
ALL = Calibration(audio=0.2361, text=0.3217, counts=0.3928, bias=0.8613, threshold=0.687)
WORDS_ONLY = Calibration(audio=0.0, text=0.2905, counts=0.4376, bias=1.0993, threshold=0.568)
# With it (the short-window path), and the sound alone (no words yet).
ALL_ASR = Calibration(audio=0.2419, text=0.1643, counts=0.3419, bias=0.1416, threshold=0.684, asr=0.33)
WORDS_ASR = Calibration(audio=0.0, text=0.1342, counts=0.3857, bias=0.3919, threshold=0.523, asr=0.3365)
AUDIO_ONLY = Calibration(audio=0.2578, text=0.0, counts=0.0, bias=-0.8175, threshold=0.494)
# With the whole-utterance model (issue 29, 2026-12-07), fitted by bench.turn_eval on its train split: 820
# clips of 44 turn_sentences and 41 turn_pauses sentences (the thinking pauses by piper and espeak-ng at
# their usual rates), with turn_taking.utterance_end's evaluation weights (trained without the set's
# sentences; the shipped weights saw them, as the shipped sentence-end table counts them). Held out (478
# clips, 22 + 42 sentences): ROC AUC 0.897 against 0.889 for ALL_ASR refitted on the same clips (the
# utterance model alone 0.834, the counts 0.846, the twin 0.771, Whisper's word 0.818, the sound 0.586).
# In semantic_vad's bands (auto, its maybe band now 1.2 s) a thinking pause of up to 1.0 s after a clause,
# inside a list, after a word that needs a complement or after a filler ended the turn in 20 % of the
# held-out clips instead of 44 % (ALL_ASR and the 1 s maybe band), and finished turns waited 784 ms on
# average instead of 681 (short ones 889 instead of 829); README.md has the table by kind of pause. Without
# the sound (WORDS_ASR_UTT in its place) 11 % and 894 ms: Smart Turn calls piper's comma pause finished
# (p > 0.9 on half of them), but it is the only signal of the prosody of a real voice, so it stays.
ALL_ASR_UTT = Calibration(
    audio=0.2101, text=0.0908, counts=0.0369, asr=0.3255, utterance=0.5124, bias=0.3052, threshold=0.679
)
ALL_UTT = Calibration(audio=0.2217, text=0.1437, counts=0.0753, utterance=0.443, bias=1.0179, threshold=0.549)
WORDS_ASR_UTT = Calibration(
    audio=0.0, text=0.0711, counts=0.0456, asr=0.3414, utterance=0.5382, bias=0.4992, threshold=0.752
)
WORDS_UTT = Calibration(audio=0.0, text=0.1262, counts=0.0899, utterance=0.4613, bias=1.2617, threshold=0.526)


def _logit(p: float) -> float:
    p = min(max(p, P_EPS), 1.0 - P_EPS)
    return math.log(p / (1.0 - p))


class TurnJudge:
    """Shared by every session: each model runs one call at a time."""

    def __init__(
        self,
        twin: TwinTurnEnd,
        ends: SentenceEnds,
        audio: SmartTurn | None,
        utterance: UtteranceEnd | None = None,
    ):
        self.twin, self.ends, self.audio, self.utterance = twin, ends, audio, utterance
        self._twin_lock, self._audio_lock = threading.Lock(), threading.Lock()

    @classmethod
    def load(cls) -> TurnJudge:
        """The text models always (both ship with this package); Smart Turn when pipecat-ai is
        installed, else the judge goes on with the words alone and says so once."""
        audio = None
        try:
            audio = SmartTurn.load()
        except FileNotFoundError as e:
            log.warning("end of turn judged from the words alone: %s", e)
        return cls(TwinTurnEnd.load(), SentenceEnds.load(), audio, UtteranceEnd.load())

    def p_audio(self, audio_16k: np.ndarray) -> float | None:
        if self.audio is None:
            return None
        with self._audio_lock:
            return self.audio.predict(audio_16k)

    def words(self, text: str, p_last_word: float | None = None) -> Words | None:
        """The transcript's signals, or None before any words."""
        if not text.strip():
            return None
        with self._twin_lock:  # both models are torch modules: one call at a time
            p_twin = self.twin.p_end_words(text)
            p_utterance = None if self.utterance is None else self.utterance.p_end(text)
        return Words(p_twin, self.ends.p_end(text), p_last_word, p_utterance)

    def p_complete(self, p_audio: float | None, text: str, p_last_word: float | None = None) -> float:
        """p_last_word: Whisper's probability of the transcript's last word, where it gave one."""
        return combine(p_audio, self.words(text, p_last_word))


def combine(p_audio: float | None, words: Words | None) -> float:
    """The calibrated verdict from whichever signals there are (each None when missing)."""
    asr = words is not None and words.p_last_word is not None
    if words is not None and words.p_utterance is not None:
        if p_audio is not None:
            p = (ALL_ASR_UTT if asr else ALL_UTT)(p_audio, words)
        else:
            p = (WORDS_ASR_UTT if asr else WORDS_UTT)(None, words)
        return min(p, CAPPED_VERDICT) if words.p_utterance < UNFINISHED_WORDS else p
    if p_audio is not None and words is not None:
        return (ALL_ASR if asr else ALL)(p_audio, words)
    if words is not None:
        return (WORDS_ASR if asr else WORDS_ONLY)(None, words)
    if p_audio is not None:
        return AUDIO_ONLY(p_audio, None)
    return 0.0  # nothing was said: not a turn
