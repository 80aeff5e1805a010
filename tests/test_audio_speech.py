"""The offline speech helpers every test relies on: cached speech, conversations with known silences, and
transcript normalisation."""

import numpy as np
import pytest

from audio import pcm
from testkit import speech_corpus
from testkit.make_speech_corpus import check
from testkit.speech import (
    VOICES,
    make_conversation_wav,
    make_speech,
    normalize_text,
    number_to_words,
    render,
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
def test_committed_speech_is_read_at_the_requested_rate_and_cached(voice, tmp_path):
    p1 = make_speech("Testing the cache.", voice=voice, rate=24000)
    p2 = make_speech("Testing the cache.", voice=voice, rate=24000)
    assert p1 == p2
    x, rate = pcm.read_wav(p1)
    assert rate == 24000 and 0.5 < len(x) / rate < 3 and np.max(np.abs(x)) > 0.1
    committed = speech_corpus.lookup(voice, "Testing the cache.")
    assert abs(len(x) / rate - len(committed) / speech_corpus.CORPUS_RATE) < 0.01  # the same clip
    copy = make_speech("Testing the cache.", tmp_path / "copy.wav", voice=voice, rate=24000)
    assert copy.read_bytes() == p1.read_bytes()


def test_the_tests_hear_only_committed_speech():
    assert speech_corpus.strict()  # tests/conftest.py
    with pytest.raises(LookupError, match="make_speech_corpus --add piper"):
        make_speech("A sentence nobody committed.")
    assert check() == []  # every listed clip is there and audible, and no file is unlisted


@pytest.mark.parametrize("voice", VOICES)
def test_each_voice_renders_speech(voice):
    if voice == "espeak":
        require_espeak()
    x = render("Hello there.", voice, 16000)
    assert 0.3 < len(x) / 16000 < 3 and np.max(np.abs(x)) > 0.1
    if voice == "piper-fixed":  # without piper's random variation: the same audio twice
        assert np.array_equal(x, render("Hello there.", voice, 16000))


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
