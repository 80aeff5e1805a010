"""Endpointing: a 16 kHz stream in, transcribed user turns out (VAD + speculative Whisper + turn judge).

    ep = Endpointer(EndpointConfig(vad=VadConfig()), asr)          # one per audio stream
    for chunk in stream_16k:                  # float32 [n] at 16 kHz, any n (live frames or a whole file)
        for ev in ep.feed(chunk):
            SpeechStarted(audio_start_ms, padded_start_ms)  # user began talking (barge-in point)
            TurnLikely(text, audio_end_ms, p_complete, silence_ms)  # the pause may end it: prepare a reply
            SpeechResumed(at_ms)                            # ... it was not: the user goes on
            SpeechStopped(audio_end_ms, confirmed_ms)       # the turn ended
            TurnTranscript(text, start_ms, end_ms, asr_ms, wait_ms, speculative)  # then its transcript
            EndpointError(code, message)                    # a stage failed (VAD, Whisper, the judge)
    ep.flush()                                # end of stream: closes an open turn
    ep.close()                                # stops the worker threads

One Whisper call costs about the same whatever the utterance length (~0.1-0.2 s for tiny.en on one
thread), so the endpointer transcribes *speculatively* at the first moment of silence (VAD SpeechPaused,
pause_ms = 96 ms into it), in a worker thread, while the silence wait runs. If the speaker stays quiet the
turn ends and that result is reused (`speculative=True`); if speech resumes it is dropped and the next
pause starts a new one. One transcription runs at a time and none is started while the user speaks (a
dropped call already running finishes: Whisper cannot be interrupted). `speculative=False` transcribes
only after the endpoint (the slow baseline, kept for comparison). Once the transcript is in, TurnLikely
invites the session to prepare a reply and hold it, prepare_reply_ms before the silence that would end
the turn (at once when that silence is shorter): a turn that ends is answered without the LM's and
piper's time; one that goes on drops the held reply.

Ending the turn, two ways:
- silence only (`semantic=None`, server_vad): the turn ends after silence_duration_ms, whatever was said.
- semantic (`semantic=SemanticConfig`, semantic_vad): the VAD waits up to max_wait_ms, but as soon as the
  speculative transcript is in and the judge (`turn_taking.judge.TurnJudge`, or anything with its
  `p_audio` and `p_complete`: the words, and Smart Turn on the audio, run beside Whisper) finds the turn
  complete, it ends after complete_silence_ms of silence; one it is unsure of ends after
  unsure_silence_ms (1.2 s, longer than a thinking pause of up to 1 s). "I want to go to the ..." waits;
  "Set a timer for ten minutes." does not. Without a judge, silence only.

Failures are values: a stage that raises becomes an EndpointError among the other events, reported once,
and the stream goes on. A failed judge leaves that pause to the silence rule; a failed speculative Whisper
call is retried when the turn ends; a turn whose transcription fails again is lost, not the stream.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from audio import pcm
from audio.asr import Transcriber, Transcript
from turn_taking.vad import SpeechPaused, SpeechResumed, SpeechStarted, SpeechStopped, StreamingVad, VadConfig

if TYPE_CHECKING:  # the judge loads torch; the endpointer needs only its two calls
    from turn_taking.judge import TurnJudge

# The judge hears a pause's audio with at least this much silence after the speech, whatever
# VadConfig.pause_ms is (digital silence makes up the rest): its verdicts move with the silence, and it
# was fitted on clips that end in silence (README, "Turn-taking notes").
JUDGED_SILENCE_MS = 160


@dataclass
class SemanticConfig:
    """End of turn judged from what was said (Realtime `semantic_vad`). The judge's p_complete sorts a
    pause three ways: finished (p >= threshold) ends after complete_silence_ms; maybe finished
    (unsure_threshold <= p < threshold) after unsure_silence_ms, with the reply prepared meanwhile;
    unfinished waits max_wait_ms. The middle band is there because the judge is often unsure of finished
    turns ("Tell me a joke."), while a mid-sentence pause over ~1 s is rare; why steps and not a smooth
    wait, and these thresholds: README, "Turn-taking notes"."""

    complete_silence_ms: int = 200  # silence after which a turn judged complete ends
    max_wait_ms: int = 2000  # silence after which any turn ends (an unfinished one waits this long)
    threshold: float = 0.5  # p_complete at or above which the turn is judged complete
    unsure_silence_ms: int = 1200  # silence after which a turn that may be finished ends
    unsure_threshold: float = 0.3  # p_complete at or above which it may be (below: unfinished)

    def __post_init__(self):
        if not 0 < self.complete_silence_ms <= self.unsure_silence_ms <= self.max_wait_ms:
            raise ValueError(
                "need 0 < complete_silence_ms <= unsure_silence_ms <= max_wait_ms, got "
                f"{self.complete_silence_ms}, {self.unsure_silence_ms} and {self.max_wait_ms}"
            )
        if not 0.0 < self.unsure_threshold <= self.threshold < 1.0:
            raise ValueError(
                "need 0 < unsure_threshold <= threshold < 1, got "
                f"{self.unsure_threshold} and {self.threshold}"
            )

    def silence_needed_ms(self, p_complete: float) -> int:
        """How long a pause judged `p_complete` must last to end the turn."""
        if p_complete >= self.threshold:
            return self.complete_silence_ms
        if p_complete >= self.unsure_threshold:
            return self.unsure_silence_ms
        return self.max_wait_ms


# OpenAI's eagerness levels: how soon a finished-sounding turn ends, one that may be finished, and how
# long an unfinished one waits.
EAGERNESS = {
    "low": SemanticConfig(complete_silence_ms=400, unsure_silence_ms=2000, max_wait_ms=4000),
    "medium": SemanticConfig(complete_silence_ms=200, unsure_silence_ms=1200, max_wait_ms=2000),
    "high": SemanticConfig(complete_silence_ms=150, unsure_silence_ms=600, max_wait_ms=1000),
}
EAGERNESS["auto"] = EAGERNESS["medium"]


@dataclass
class EndpointConfig:
    """Turn detection: VAD settings, how transcription is scheduled, and how a turn ends."""

    vad: VadConfig = field(default_factory=VadConfig)
    speculative: bool = True  # transcribe at the first silence and reuse the result if the turn ends there
    min_turn_ms: float = 0.0  # turns with less speech than this are dropped without transcription
    semantic: SemanticConfig | None = None  # None: silence only (vad.silence_duration_ms)
    # TurnLikely (a held reply may start) comes this long before the silence that would end the turn, or
    # as soon as the speculative transcript is in where that silence is shorter. ~600 ms covers the LM's
    # first text and piper's first audio on 2 cores, so a turn that ends on the long wait is answered
    # at once instead of a first-audio time later.
    prepare_reply_ms: int = 600

    def __post_init__(self):
        if self.min_turn_ms < 0:
            raise ValueError(f"min_turn_ms must be >= 0, got {self.min_turn_ms}")
        if self.prepare_reply_ms < 0:
            raise ValueError(f"prepare_reply_ms must be >= 0, got {self.prepare_reply_ms}")

    def replace(self, **kw) -> EndpointConfig:
        return replace(self, **kw)


@dataclass
class TurnLikely:
    """The pause may be the end of the turn (not confirmed yet): a reply may be prepared and held. Sent
    once per pause, EndpointConfig.prepare_reply_ms before the silence that would end the turn.
    `p_complete` says how sure the judge is (SemanticConfig's bands; None without a judge)."""

    text: str  # the speculative transcript
    audio_end_ms: float
    p_complete: float | None
    silence_ms: float = 0.0  # how long the pause had lasted when this was sent


@dataclass
class TurnTranscript:
    """The transcript of one user turn."""

    text: str
    start_ms: float  # detected speech start (stream position)
    end_ms: float  # detected speech end
    asr_ms: float  # wall time of the Whisper call that produced `text`
    wait_ms: float  # wall time from the endpoint decision (SpeechStopped) to this transcript
    speculative: bool  # True when the transcription started at the first silence was reused
    audio_ms: float = 0.0  # audio given to Whisper (prefix padding included)
    p_complete: float | None = None  # the judge's verdict on the pause that ended it (semantic only)
    judge_ms: float | None = None  # wall time the judge added beyond Whisper (semantic only)


@dataclass
class EndpointError:
    """A stage failed; the code says which (VAD_FAILED, TRANSCRIPTION_FAILED, TURN_DETECTION_FAILED)."""

    code: str
    message: str


VAD_FAILED, TRANSCRIPTION_FAILED, TURN_DETECTION_FAILED = (
    "vad_failed",
    "transcription_failed",
    "turn_detection_failed",
)
EndpointEvent = SpeechStarted | TurnLikely | SpeechResumed | SpeechStopped | TurnTranscript | EndpointError


def _failure(code: str, exc: BaseException) -> EndpointError:
    return EndpointError(code, f"{type(exc).__name__}: {exc}")


@dataclass
class _Judged:
    transcript: Transcript
    p_complete: float | None  # None without a judge
    p_audio: float | None = None
    judge_ms: float = 0.0  # wall time of the judge beyond Whisper


class Endpointer:
    """VAD + speculative transcription (+ a turn judge) for one stream. Sync API; worker threads run the
    models."""

    def __init__(
        self,
        cfg: EndpointConfig | VadConfig | None,
        transcriber: Transcriber,
        vad_model=None,
        judge: TurnJudge | None = None,
    ):
        if isinstance(cfg, VadConfig):
            cfg = EndpointConfig(vad=cfg)
        self.cfg = cfg or EndpointConfig()
        self.asr = transcriber
        self.judge = judge if self.cfg.semantic is not None else None
        vad_cfg = self.cfg.vad
        if self.judge is not None:  # the VAD's own stop is the longest wait; the judge ends turns sooner
            vad_cfg = vad_cfg.replace(silence_duration_ms=self.cfg.semantic.max_wait_ms)
        self.vad = StreamingVad(vad_cfg, vad_model)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr")
        self._audio_pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="turn") if self.judge else None
        )
        self._pending: Future | None = None  # speculative transcription (and judgement) of the current pause
        self._likely_sent = False  # TurnLikely sent for the current pause
        self._start_ms = 0.0
        self._failures: deque[EndpointError] = deque()  # worker failures, reported once by the next feed
        counts = ("turns", "reused", "discarded", "judged", "ended_early", "ended_unsure")
        self.stats: dict[str, float] = {**dict.fromkeys(counts, 0), "judge_ms": 0.0}

    def feed(self, x: np.ndarray) -> list[EndpointEvent]:
        """x: float32 [n] at 16 kHz. Returns the events, in stream order."""
        try:
            vad_events = self.vad.feed(x)
        except Exception as exc:  # noqa: BLE001 -- this chunk is lost, the stream goes on
            return [_failure(VAD_FAILED, exc)]
        out = self._handle(vad_events)
        return out + self._judged_end() + self._reported_failures()

    def flush(self) -> list[EndpointEvent]:
        """End of stream: an open turn ends where its speech ended and is transcribed."""
        return self._handle(self.vad.flush()) + self._reported_failures()

    def reset(self) -> None:
        self._drop_pending()
        self.vad.reset()

    def settle(self, timeout: float | None = None) -> None:
        """Wait until the speculative transcription (and judgement) in flight is done. A live stream
        never needs this; a file or a test fed faster than real time uses it to see what a fast
        machine would decide at this point of the stream."""
        if self._pending is not None:
            self._pending.exception(timeout)

    def close(self) -> None:
        self._drop_pending()
        self._pool.shutdown(wait=True)
        if self._audio_pool is not None:
            self._audio_pool.shutdown(wait=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _handle(self, vad_events) -> list[EndpointEvent]:
        out: list[EndpointEvent] = []
        for ev in vad_events:
            if isinstance(ev, SpeechStarted):
                self._drop_pending()
                self._start_ms = ev.audio_start_ms
                out.append(ev)
            elif isinstance(ev, SpeechPaused):
                if self.cfg.speculative and len(ev.audio):
                    self._drop_pending()
                    audio = with_judged_silence(ev.audio, ev.silence_ms)
                    self._pending = self._pool.submit(self._transcribe_and_judge, audio)
            elif isinstance(ev, SpeechResumed):
                if self._likely_sent:
                    out.append(ev)  # whoever speculated on TurnLikely drops that work now
                self._drop_pending()
            elif isinstance(ev, SpeechStopped):
                out.append(ev)
                turn = self._finish(ev)
                if turn is not None:
                    out.append(turn)
        return out

    def _transcribe_and_judge(self, audio: np.ndarray) -> _Judged:
        """Worker thread: Whisper on the audio so far, with the audio judge beside it, then the verdict.
        A failure is reported even when the pause is over by then; a failed Whisper call fails the job
        (the turn's end transcribes again), a failed judge only the verdict (the silence rule decides)."""
        p_audio_job = self._audio_pool.submit(self.judge.p_audio, audio) if self.judge else None
        try:
            tr = self.asr.transcribe(audio)
        except Exception as exc:
            self._failures.append(_failure(TRANSCRIPTION_FAILED, exc))
            raise
        if p_audio_job is None:
            return _Judged(tr, None)
        t0 = time.perf_counter()
        try:
            p_audio = p_audio_job.result()
            p = self.judge.p_complete(p_audio, tr.text, tr.last_word_p)
        except Exception as exc:  # noqa: BLE001 -- the transcript stands; the silence rule decides
            self._failures.append(_failure(TURN_DETECTION_FAILED, exc))
            return _Judged(tr, None)
        return _Judged(tr, p, p_audio, (time.perf_counter() - t0) * 1000.0)

    def _reported_failures(self) -> list[EndpointError]:
        out = []
        while self._failures:
            out.append(self._failures.popleft())
        return out

    def _judged_end(self) -> list[EndpointEvent]:
        """Checked after every feed, once the pause's speculative transcript (and verdict) is in: from
        prepare_reply_ms before the silence this pause needs to end the turn, a reply may be prepared
        (TurnLikely, once). With a judge, a pause judged complete (or maybe complete) then ends after
        complete_silence_ms (or unsure_silence_ms); any other ends on the VAD's own stop."""
        if self._pending is None or not self._pending.done():
            return []
        if self._pending.exception() is not None:  # reported; the turn ends on silence, transcribed again
            self._pending = None
            return []
        judged = self._pending.result()
        needed = self._silence_needed_ms(judged.p_complete)
        silence = self.vad.silence_ms
        out: list[EndpointEvent] = []
        if not self._likely_sent and silence >= needed - self.cfg.prepare_reply_ms:
            self._likely_sent = True
            text, end_ms = judged.transcript.text, self.vad.speech_end_ms
            out.append(TurnLikely(text, end_ms, judged.p_complete, silence))
        if needed < self.vad.cfg.silence_duration_ms and silence >= needed:
            stopped = self.vad.end_turn()
            if stopped is not None:
                self.stats["ended_early"] += 1
                self.stats["ended_unsure"] += int(judged.p_complete < self.cfg.semantic.threshold)
                out.append(stopped)
                turn = self._finish(stopped)
                if turn is not None:
                    out.append(turn)
        return out

    def _silence_needed_ms(self, p_complete: float | None) -> float:
        """The silence after which this pause ends the turn: the judge's band for its verdict, else
        (no judge, or it failed) the VAD's own stop."""
        semantic = self.cfg.semantic
        if self.judge is None or p_complete is None or p_complete < semantic.unsure_threshold:
            return self.vad.cfg.silence_duration_ms
        return semantic.silence_needed_ms(p_complete)

    def _finish(self, ev: SpeechStopped) -> TurnTranscript | EndpointError | None:
        t0 = time.perf_counter()
        self._likely_sent = False
        if ev.audio_end_ms - self._start_ms < self.cfg.min_turn_ms:
            self._drop_pending()
            return None
        pending, self._pending = self._pending, None
        reused = pending is not None and pending.exception() is None
        if reused:
            judged = pending.result()
        else:
            # No pause was seen (stream ended mid-speech), speculation is off, or the speculative call
            # failed: transcribe the turn now.
            try:
                judged = _Judged(self._pool.submit(self.asr.transcribe, ev.audio).result(), None)
            except Exception as exc:  # noqa: BLE001 -- this turn is lost, the stream goes on
                return _failure(TRANSCRIPTION_FAILED, exc)
        self.stats["turns"] += 1
        self.stats["reused"] += int(reused)
        if judged.p_complete is not None:
            self.stats["judged"] += 1
            self.stats["judge_ms"] += judged.judge_ms
        tr = judged.transcript
        return TurnTranscript(
            text=tr.text,
            start_ms=self._start_ms,
            end_ms=ev.audio_end_ms,
            asr_ms=tr.ms,
            wait_ms=(time.perf_counter() - t0) * 1000.0,
            speculative=reused,
            audio_ms=tr.audio_ms,
            p_complete=judged.p_complete,
            judge_ms=judged.judge_ms if judged.p_complete is not None else None,
        )

    def _drop_pending(self) -> None:
        self._likely_sent = False
        if self._pending is not None:
            # A running Whisper call cannot be interrupted; a queued one is cancelled. Either way it is
            # unused.
            self._pending.cancel()
            self._pending = None
            self.stats["discarded"] += 1


def with_judged_silence(audio: np.ndarray, silence_ms: float) -> np.ndarray:
    """A pause's audio (16 kHz, ending in `silence_ms` of silence) with digital silence added up to
    JUDGED_SILENCE_MS, whatever VadConfig.pause_ms is."""
    missing = pcm.ms_to_samples(JUDGED_SILENCE_MS - silence_ms, pcm.SAMPLE_RATE_ASR)
    if missing <= 0:
        return audio
    return np.concatenate([audio, np.zeros(missing, np.float32)])


def transcribe_file(
    path: str | Path, endpointer: Endpointer, chunk_ms: float = 100.0
) -> list[TurnTranscript]:
    """A WAV file through the live path (resampled to 16 kHz, fed in chunks as fast as possible).
    RuntimeError if a stage failed on the way."""
    x, rate = pcm.read_wav(path)
    x = pcm.resample(x, rate, pcm.SAMPLE_RATE_ASR)
    endpointer.reset()
    step = pcm.ms_to_samples(chunk_ms, pcm.SAMPLE_RATE_ASR)
    events: list[EndpointEvent] = []
    for i in range(0, len(x), step):
        events += endpointer.feed(x[i : i + step])
    events += endpointer.flush()
    failed = [e for e in events if isinstance(e, EndpointError)]
    if failed:  # a file has no next turn to wait for: say what failed
        raise RuntimeError(f"{failed[0].code}: {failed[0].message}")
    return [e for e in events if isinstance(e, TurnTranscript)]
