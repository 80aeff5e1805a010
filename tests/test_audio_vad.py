"""Streaming Silero VAD on real speech with known silences: boundaries within 100 ms, state machine rules."""

import numpy as np
import pytest

from audio import pcm
from audio.vad import (
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
from testkit.speech import UTTERANCES, make_conversation_wav, require_espeak

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
    if voice == "espeak":
        require_espeak()
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
    if voice == "piper":  # the dips between words (32-128 ms) are not pauses
        assert [type(e) for e in events].count(SpeechPaused) == len(conv.segments)


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
    ],
)
def test_config_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        VadConfig(**kw)


def test_feed_rejects_bad_audio(silero):
    with pytest.raises(ValueError, match="NaN"):
        StreamingVad(VadConfig(), silero).feed(np.array([np.nan] * 600, np.float32))
