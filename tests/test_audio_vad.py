"""Streaming Silero VAD on real speech with known silences: boundaries within 100 ms, state machine rules,
and the cap on a turn that never pauses (a model that hears speech in every frame, fed as fast as it goes).
"""

import numpy as np
import pytest

from audio import pcm
from audio.asr import Transcript
from testkit.speech import UTTERANCES, make_conversation_wav
from turn_taking.endpoint import EndpointConfig, Endpointer, TurnTranscript
from turn_taking.vad import (
    DEFAULT_MAX_TURN_MS,
    FRAME_MS,
    FRAME_SAMPLES,
    SileroModel,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    SpeechStopped,
    StreamingVad,
    VadConfig,
    silero_path,
)

BOUNDARY_TOLERANCE_MS = 100


@pytest.fixture(scope="module")
def silero():
    return SileroModel()


def run(vad, x, chunk=None):
    if chunk is None:
        return vad.feed(x) + vad.flush()
    events = []
    for i in range(0, len(x), chunk):
        events += vad.feed(x[i : i + chunk])
    return events + vad.flush()


def starts_stops(events):
    return (
        [e for e in events if isinstance(e, SpeechStarted)],
        [e for e in events if isinstance(e, SpeechStopped)],
    )


def test_frame_by_frame_matches_faster_whisper_batched_call(silero):
    from faster_whisper.vad import SileroVADModel

    x = make_conversation_wav([0.3, UTTERANCES[0], 0.6]).samples
    x = x[: len(x) // FRAME_SAMPLES * FRAME_SAMPLES]
    ref = SileroVADModel(str(silero_path()))(x).reshape(-1)
    silero.reset()
    ours = np.array([silero(f) for f in pcm.frames(x, FRAME_SAMPLES)])
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    assert ours.max() > 0.9 and ours[:5].max() < 0.1  # speech found, leading silence quiet


@pytest.mark.parametrize("voice, noise_db", [("piper", None), ("piper", -45), ("espeak", None)])
def test_events_land_within_100_ms_of_true_boundaries(silero, voice, noise_db):
    parts = [0.7]
    for u in UTTERANCES[:5]:
        parts += [u, 0.9]
    conv = make_conversation_wav(parts, voice=voice, noise_db=noise_db)
    events = run(StreamingVad(VadConfig(), silero), conv.samples, chunk=480)
    started, stopped = starts_stops(events)
    assert len(started) == len(stopped) == len(conv.segments), (started, stopped)
    for seg, s, e in zip(conv.segments, started, stopped):
        assert abs(s.audio_start_ms - seg.start_ms) < BOUNDARY_TOLERANCE_MS, (seg, s)
        assert abs(e.audio_end_ms - seg.end_ms) < BOUNDARY_TOLERANCE_MS, (seg, e)
        assert s.padded_start_ms == pytest.approx(max(0.0, s.audio_start_ms - 300))
        # The stop is decided after silence_duration_ms of silence, not before.
        assert e.confirmed_ms - e.audio_end_ms >= 500
    # A dip between words (32-128 ms on piper) may fire a pause, which speech resumes at once; each
    # utterance ends in one pause that is not resumed, where its speech ended.
    after_pause = [(e, nxt) for e, nxt in zip(events, events[1:]) if isinstance(e, SpeechPaused)]
    assert all(isinstance(nxt, (SpeechResumed, SpeechStopped)) for _, nxt in after_pause)
    final = [(e, nxt) for e, nxt in after_pause if isinstance(nxt, SpeechStopped)]
    assert len(final) == len(conv.segments)
    assert all(e.audio_end_ms == nxt.audio_end_ms for e, nxt in final)
    pause_ms = VadConfig().pause_ms  # how much of a pause's audio is silence (whole frames)
    assert all(pause_ms <= e.silence_ms < pause_ms + FRAME_MS for e, _ in after_pause)


def test_chunk_size_does_not_change_events(silero):
    x = make_conversation_wav([0.5, UTTERANCES[1], 0.8, UTTERANCES[2], 0.7]).samples
    whole = run(StreamingVad(VadConfig(), silero), x)
    pieces = run(StreamingVad(VadConfig(), silero), x, chunk=333)
    assert [
        (type(e), getattr(e, "audio_start_ms", None), getattr(e, "audio_end_ms", None)) for e in whole
    ] == [(type(e), getattr(e, "audio_start_ms", None), getattr(e, "audio_end_ms", None)) for e in pieces]


def test_short_gap_is_one_turn_and_long_silence_setting_is_respected(silero):
    conv = make_conversation_wav([0.5, "Turn off the lights", 0.3, "in the living room.", 0.8])
    events = run(StreamingVad(VadConfig(), silero), conv.samples)
    started, stopped = starts_stops(events)
    assert len(started) == len(stopped) == 1
    assert any(isinstance(e, SpeechResumed) for e in events) and any(
        isinstance(e, SpeechPaused) for e in events
    )
    # With a shorter silence setting the same gap ends the turn.
    started, stopped = starts_stops(
        run(StreamingVad(VadConfig(silence_duration_ms=200), silero), conv.samples)
    )
    assert len(started) == len(stopped) == 2


def test_silence_and_quiet_noise_give_no_events(silero):
    rng = np.random.default_rng(0)
    vad = StreamingVad(VadConfig(), silero)
    assert run(vad, np.zeros(16000 * 2, np.float32)) == []
    vad.reset()
    assert run(vad, rng.normal(0, 0.003, 16000 * 2).astype(np.float32)) == []


def test_min_speech_drops_short_bursts(silero):
    conv = make_conversation_wav([0.5, "Hello.", 0.8])
    assert len(starts_stops(run(StreamingVad(VadConfig(), silero), conv.samples))[0]) == 1
    long_min = VadConfig(min_speech_ms=2000)
    assert run(StreamingVad(long_min, silero), conv.samples) == []


def test_stopped_event_carries_the_padded_utterance(silero):
    conv = make_conversation_wav([1.0, UTTERANCES[3], 0.8])
    vad = StreamingVad(VadConfig(), silero)
    events = run(vad, conv.samples, chunk=1600)
    (s,), (e,) = starts_stops(events)
    expected_ms = e.confirmed_ms - s.padded_start_ms
    assert abs(pcm.samples_to_ms(len(e.audio), 16000) - expected_ms) < 1
    i0 = pcm.ms_to_samples(s.padded_start_ms, 16000)
    np.testing.assert_array_equal(e.audio[:1000], conv.samples[i0 : i0 + 1000])
    paused = [ev for ev in events if isinstance(ev, SpeechPaused)][-1]
    assert len(paused.audio) < len(e.audio)


def test_flush_closes_a_turn_cut_off_mid_speech(silero):
    conv = make_conversation_wav([0.5, UTTERANCES[0]])
    cut = conv.samples[: len(conv.samples) - 8000]  # stream ends inside the sentence
    started, stopped = starts_stops(run(StreamingVad(VadConfig(), silero), cut))
    assert len(started) == len(stopped) == 1
    assert stopped[0].audio_end_ms == pytest.approx(
        pcm.samples_to_ms(len(cut), 16000), abs=pcm.samples_to_ms(FRAME_SAMPLES, 16000)
    )


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"threshold": 1.5}, "threshold"),
        ({"silence_duration_ms": -1}, "silence_duration_ms"),
        ({"neg_threshold": 0.9}, "neg_threshold"),
        ({"max_turn_ms": 500}, "max_turn_ms"),
        ({"max_turn_ms": 120_000}, "max_turn_ms"),
    ],
)
def test_config_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        VadConfig(**kw)


def test_feed_rejects_bad_audio(silero):
    with pytest.raises(ValueError, match="NaN"):
        StreamingVad(VadConfig(), silero).feed(np.array([np.nan] * 600, np.float32))


class AlwaysSpeech:
    """A VAD model that hears speech in every frame: someone reading aloud who never pauses."""

    def reset(self) -> None:
        pass

    def __call__(self, frame: np.ndarray) -> float:
        return 0.9


def ms_of(x: np.ndarray) -> float:
    return pcm.samples_to_ms(len(x), pcm.SAMPLE_RATE_ASR)


@pytest.mark.parametrize("max_turn_ms, minutes", [(5_000, 1), (DEFAULT_MAX_TURN_MS, 2)])
def test_a_turn_that_never_pauses_ends_at_max_turn_ms_and_memory_stays_bounded(max_turn_ms, minutes):
    cfg = VadConfig(max_turn_ms=max_turn_ms)
    vad = StreamingVad(cfg, AlwaysSpeech())
    second = np.full(pcm.SAMPLE_RATE_ASR, 0.1, np.float32)
    events, peak = [], 0
    for _ in range(60 * minutes):
        events += vad.feed(second)
        peak = max(peak, len(vad._buf))  # what the VAD holds, spare room included
    started, stopped = starts_stops(events)
    turn_s = (max_turn_ms + cfg.min_speech_ms) / 1000  # a new turn needs min_speech_ms to start
    assert len(stopped) == int(60 * minutes / turn_s), [e.audio_end_ms for e in stopped]
    assert len(started) in (len(stopped), len(stopped) + 1)  # the speech goes on after the last cap
    for s, e in zip(started, stopped):
        assert e.capped and e.audio_end_ms == e.confirmed_ms  # ended at once, as if silence had come
        assert e.audio_end_ms - s.audio_start_ms == pytest.approx(max_turn_ms, abs=FRAME_MS)
        assert ms_of(e.audio) <= max_turn_ms + cfg.prefix_padding_ms + FRAME_MS
    # Without the cap the buffer would hold the whole stream; with it, at most about one turn (it grows
    # by doubling, so up to twice that).
    assert peak <= 2 * pcm.ms_to_samples(max_turn_ms + cfg.prefix_padding_ms, pcm.SAMPLE_RATE_ASR), peak
    assert peak < len(second) * 60 * minutes


class Scripted(AlwaysSpeech):
    """A VAD model that gives these probabilities, one per frame."""

    def __init__(self, probs: list[float]):
        self.probs = iter(probs)

    def __call__(self, frame: np.ndarray) -> float:
        return next(self.probs)


def test_a_pausing_turn_is_capped_too_and_silence_still_ends_ordinary_turns(silero):
    speech, pause = 20, 200  # frames: 0.64 s of speech, then 6.4 s of a pause longer than the cap
    vad = StreamingVad(
        VadConfig(max_turn_ms=1_000, silence_duration_ms=60_000), Scripted([0.9] * speech + [0.1] * pause)
    )
    events = vad.feed(np.zeros((speech + pause) * FRAME_SAMPLES, np.float32))
    (s,), (e,) = starts_stops(events)
    assert e.capped and e.confirmed_ms - s.audio_start_ms == pytest.approx(1_000, abs=FRAME_MS)
    assert e.audio_end_ms == pytest.approx(speech * FRAME_MS)  # the turn ends where its speech paused
    # Ordinary turns never reach the cap: the silence ends them, uncapped.
    x = make_conversation_wav([0.5, UTTERANCES[0], 0.8]).samples
    (e,) = starts_stops(run(StreamingVad(VadConfig(max_turn_ms=10_000), silero), x))[1]
    assert not e.capped


class CountingAsr:
    """Stands in for Whisper: says how much audio it was given."""

    name = "counting"

    def transcribe(self, x: np.ndarray) -> Transcript:
        return Transcript(f"{len(x)} samples", 0.0, ms_of(x))


def test_the_endpointer_turns_each_capped_stretch_into_a_transcribed_turn():
    cfg = EndpointConfig(vad=VadConfig(max_turn_ms=2_000))
    chunk = np.full(pcm.ms_to_samples(100, pcm.SAMPLE_RATE_ASR), 0.1, np.float32)
    with Endpointer(cfg, CountingAsr(), vad_model=AlwaysSpeech()) as ep:
        turns = [ev for _ in range(100) for ev in ep.feed(chunk) if isinstance(ev, TurnTranscript)]  # 10 s
    assert len(turns) == 4, turns
    for t in turns:
        assert t.end_ms - t.start_ms == pytest.approx(2_000, abs=FRAME_MS)
        assert t.audio_ms <= 2_000 + cfg.vad.prefix_padding_ms + FRAME_MS and t.text.endswith("samples")
