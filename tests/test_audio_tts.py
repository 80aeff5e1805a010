"""piper TTS with the bundled joe voice: streaming per piece, early first clause, stop, rate conversion;
and the sentence chunker the pipeline feeds with streaming LLM text."""

import time

import numpy as np
import pytest

from audio.pcm import resample
from audio.tts import ChunkerConfig, SentenceChunker, Synthesizer, TtsConfig, resolve_voice, split_for_speech
from testkit.speech import load_synthesizer, load_transcriber, word_error_rate

LONG_FIRST = (
    "Sure, I can help you plan the trip, and we can start with the flights before we look at hotels. "
    "Paris is lovely in spring. Let me know your dates!"
)


@pytest.fixture(scope="module")
def synth():
    s = load_synthesizer()
    next(s.synthesize("Warm up."))  # first onnx run allocates; keep it out of the timings
    return s


def test_pieces_stream_in_order_with_the_first_clause_first(synth):
    chunks = list(synth.synthesize(LONG_FIRST))
    assert [c.text for c in chunks] == [
        "Sure, I can help you plan the trip,",
        "and we can start with the flights before we look at hotels.",
        "Paris is lovely in spring.",
        "Let me know your dates!",
    ]
    for c in chunks:
        assert c.sample_rate == synth.sample_rate == 22050 and c.samples.dtype == np.float32
        assert 300 < c.duration_ms < 6000 and np.max(np.abs(c.samples)) <= 1.0


def test_first_audio_comes_before_the_whole_reply(synth):
    t0 = time.perf_counter()
    gen = synth.synthesize(LONG_FIRST)
    first = next(gen)
    t_first = time.perf_counter() - t0
    rest = list(gen)
    t_all = time.perf_counter() - t0
    assert first.text.startswith("Sure, I can help") and len(rest) == 3
    assert t_first < t_all / 2, (t_first, t_all)


def test_closing_the_iterator_stops_synthesis(synth):
    calls = []
    real = synth.voice.synthesize

    def counting(text, **kw):
        calls.append(text)
        return real(text, **kw)

    synth.voice.synthesize = counting
    try:
        gen = synth.synthesize(LONG_FIRST)
        next(gen)
        gen.close()
        with pytest.raises(StopIteration):
            next(gen)
    finally:
        del synth.voice.synthesize
    assert len(calls) == 1, calls


@pytest.mark.parametrize("rate", [16000, 24000, 48000])
def test_rate_conversion_keeps_duration_and_sound(synth, rate):
    fixed = synth.with_config(noise_scale=0.0, noise_w_scale=0.0)  # deterministic piper output
    (native,) = fixed.synthesize("Hello there.")
    (out,) = fixed.synthesize("Hello there.", rate=rate)
    assert out.sample_rate == rate and out.text == "Hello there."
    assert abs(out.duration_ms - native.duration_ms) < 1
    ref = resample(native.samples, native.sample_rate, rate)
    assert np.corrcoef(ref, out.samples[: len(ref)])[0, 1] > 0.99


def test_speech_is_intelligible_to_the_asr(synth):
    text = "Please turn off the lights in the kitchen."
    x = np.concatenate([c.samples for c in synth.synthesize(text, rate=16000)])
    assert word_error_rate(text, load_transcriber().transcribe(x).text) <= 0.125


def test_missing_voice_gives_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="piper voice not found"):
        resolve_voice(str(tmp_path / "nope.onnx"))
    with pytest.raises(FileNotFoundError, match="exactly one"):
        resolve_voice(str(tmp_path))
    (tmp_path / "v.onnx").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match="config missing"):
        resolve_voice(str(tmp_path))
    monkeypatch.setenv("DLM_TTS_VOICE", str(tmp_path / "other.onnx"))
    with pytest.raises(FileNotFoundError, match="not found"):
        Synthesizer.load()
    monkeypatch.delenv("DLM_TTS_VOICE")
    assert resolve_voice().name == "en_US-joe-medium.onnx"


def test_config_validation():
    with pytest.raises(ValueError, match="volume"):
        TtsConfig(volume=0)
    with pytest.raises(ValueError, match="length_scale"):
        TtsConfig(length_scale=10)
    with pytest.raises(ValueError, match="max_chars"):
        ChunkerConfig(max_chars=3)


# ---------------------------------------------------------------------------------------------- chunker


def test_streaming_chunker_matches_whole_text_split():
    text = (
        "Well, Dr. Smith paid 3.5 dollars for the book, which was a bargain. "
        "It was on sale!\nAnything else? Bye"
    )
    ch = SentenceChunker()
    streamed = [p for c in text for p in ch.push(c)] + ch.flush()
    assert streamed == split_for_speech(text)
    assert streamed == [
        "Well, Dr. Smith paid 3.5 dollars for the book,",
        "which was a bargain.",
        "It was on sale!",
        "Anything else?",
        "Bye",
    ]


def test_chunker_waits_for_whitespace_after_punctuation():
    ch = SentenceChunker()
    assert ch.push("It costs 3.") == []
    assert ch.push("5 euros. Next") == ["It costs 3.5 euros."]
    assert ch.flush() == ["Next"]
    assert ch.flush() == []


def test_only_the_first_sentence_is_split_at_a_clause():
    pieces = split_for_speech(
        "Yes. Later, when the long second sentence arrives, it stays whole, commas and all."
    )
    assert pieces == ["Yes.", "Later, when the long second sentence arrives, it stays whole, commas and all."]


def test_text_without_punctuation_is_cut_at_max_chars():
    words = " ".join(["word"] * 100)
    pieces = split_for_speech(words, ChunkerConfig(max_chars=50))
    assert all(len(p) <= 50 for p in pieces) and " ".join(pieces) == words
