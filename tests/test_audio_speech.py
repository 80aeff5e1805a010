"""The offline speech helpers every test relies on: cached speech, conversations with known silences, and
transcript normalisation."""

import time

import numpy as np
import pytest

from audio import pcm
from testkit.speech import (
    make_conversation_wav,
    make_speech,
    normalize_text,
    number_to_words,
    require_espeak,
    word_error_rate,
)


@pytest.mark.parametrize(
    "a, b",
    [
        ("It's 5 o'clock!", "it is five o clock"),
        ("Set a timer for 10 minutes.", "set a timer for ten minutes"),
        ("I can't, won't, and shouldn't.", "I can not will not and should not"),
        ("It costs $3.50", "it costs three point five zero dollars"),
        ("Mr. Smith arrived 1st", "mister smith arrived first"),
        ("well-known", "well known"),
    ],
)
def test_normalize_text_makes_equivalent_transcripts_equal(a, b):
    assert normalize_text(a) == normalize_text(b)


def test_number_words_and_wer():
    assert number_to_words(1234) == "one thousand two hundred thirty four"
    assert word_error_rate("turn on the lights", "Turn on the lights.") == 0.0
    assert word_error_rate("turn on the lights", "turn of the light") == 0.5
    assert word_error_rate("a b", "") == 1.0


@pytest.mark.parametrize("voice", ["piper", "espeak"])
def test_make_speech_is_cached_and_at_the_requested_rate(voice, tmp_path):
    if voice == "espeak":
        require_espeak()
    p1 = make_speech("Testing the cache.", voice=voice, rate=24000)
    t0 = time.perf_counter()
    p2 = make_speech("Testing the cache.", voice=voice, rate=24000)
    assert p1 == p2 and time.perf_counter() - t0 < 0.05
    x, rate = pcm.read_wav(p1)
    assert rate == 24000 and 0.5 < len(x) / rate < 3 and np.max(np.abs(x)) > 0.1
    copy = make_speech("Testing the cache.", tmp_path / "copy.wav", voice=voice, rate=24000)
    assert copy.read_bytes() == p1.read_bytes()


def test_conversation_segments_match_the_audio():
    conv = make_conversation_wav([0.5, "Hello there.", 1.0, "Goodbye."])
    assert len(conv.segments) == 2
    s0, s1 = conv.segments
    assert 500 <= s0.start_ms < 520 and s1.start_ms - s0.end_ms >= 1000
    i, j = pcm.ms_to_samples(s0.end_ms, 16000) + 200, pcm.ms_to_samples(s1.start_ms, 16000) - 200
    assert np.max(np.abs(conv.samples[i:j])) == 0  # the silence really is silent
    assert conv.path.exists() and pcm.read_wav(conv.path)[0].shape == conv.samples.shape


def test_bad_requests_raise_value_error():
    with pytest.raises(ValueError, match="voice"):
        make_speech("hi", voice="robot")
    with pytest.raises(ValueError, match="empty"):
        make_speech("   ")
    with pytest.raises(ValueError, match="silence"):
        make_conversation_wav(["hi", -1.0])
