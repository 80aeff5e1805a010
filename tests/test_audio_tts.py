"""piper TTS with the bundled joe voice: streaming per piece, early first clause, stop, rate conversion;
and the sentence chunker the pipeline feeds with streaming LLM text."""

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audio import pcm
from audio.pcm import resample
from audio.tts import (
    CONNECTIVES,
    ChunkerConfig,
    SentenceChunker,
    Synthesizer,
    TtsConfig,
    resolve_voice,
    split_for_speech,
)
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
        "Sure, I can help",
        "you plan the trip, and we can start with the flights before we look at hotels.",
        "Paris is lovely in spring.",
        "Let me know your dates!",
    ]
    for c in chunks:
        assert c.sample_rate == synth.sample_rate == 22050 and c.samples.dtype == np.float32
        assert 300 < c.duration_ms < 6000 and np.max(np.abs(c.samples)) <= 1.0


def test_first_audio_comes_before_the_rest_is_synthesized(synth, monkeypatch):
    calls = []
    real = synth.voice.synthesize

    def counting(text, **kw):
        calls.append(text)
        return real(text, **kw)

    monkeypatch.setattr(synth.voice, "synthesize", counting)
    gen = synth.synthesize(LONG_FIRST)
    first = next(gen)
    assert first.text.startswith("Sure, I can help") and len(calls) == 1, calls  # only the first piece
    rest = list(gen)
    assert len(rest) == 3 and len(calls) == 4, calls


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
    with pytest.raises(ValueError, match="first_clause_min_words"):
        ChunkerConfig(first_clause_min_words=0)
    with pytest.raises(ValueError, match="lead_silence_ms"):
        TtsConfig(lead_silence_ms=-1)
    with pytest.raises(ValueError, match="clause_gap_ms"):
        TtsConfig(clause_gap_ms=5000)


def _silence_ms(x: np.ndarray, rate: int) -> tuple[float, float]:
    """(silence before the first sound, after the last) in ms, as the synthesizer trims it."""
    first, end = pcm.sound_span(x)
    return 1000 * first / rate, 1000 * (len(x) - end) / rate


def test_piper_silence_is_trimmed_before_a_piece_and_after_a_piece_cut_mid_sentence(synth):
    steady = synth.with_config(noise_scale=0.0, noise_w_scale=0.0)  # the same audio every run
    raw = steady.with_config(lead_silence_ms=None, clause_gap_ms=None)
    cfg = steady.cfg

    def silences(s, piece):
        (chunk,) = list(s.synthesize_piece(piece, rate=24000))
        return _silence_ms(chunk.samples, 24000)

    lead_raw, tail_raw = silences(raw, "What do you get")
    assert lead_raw > cfg.lead_silence_ms + 20 and tail_raw > cfg.clause_gap_ms + 40  # what piper makes
    lead, tail = silences(steady, "What do you get")  # cut before "when": the sentence goes on
    assert lead == pytest.approx(cfg.lead_silence_ms, abs=1) and tail == pytest.approx(
        cfg.clause_gap_ms, abs=1
    )
    lead, tail = silences(steady, "What do you get?")  # the end of a sentence keeps its pause
    assert lead == pytest.approx(cfg.lead_silence_ms, abs=1) and tail > cfg.clause_gap_ms + 40


# ---------------------------------------------------------------------------------------------- chunker


# The clause rules alone (no first phrase): what the tests of clause and connective cuts look at.
CLAUSES = ChunkerConfig(first_phrase_words=None)


def _stream(chunks: list[str], cfg: ChunkerConfig | None = None) -> list[str]:
    ch = SentenceChunker(cfg)
    return [p for c in chunks for p in ch.push(c)] + ch.flush()


def test_streaming_chunker_matches_whole_text_split():
    text = (
        "Well, Dr. Smith paid 3.5 dollars for the book, which was a bargain. "
        "It was on sale!\nAnything else? Bye"
    )
    streamed = _stream(list(text), CLAUSES)
    assert streamed == split_for_speech(text, CLAUSES)
    assert streamed == [
        "Well, Dr. Smith paid 3.5 dollars for the book,",
        "which was a bargain.",
        "It was on sale!",
        "Anything else?",
        "Bye",
    ]


# Words for random replies: mostly plain ones (connectives inside longer words, abbreviations, numbers), so
# that a connective is often the first cut; every connective, also capitalised.
_PLAIN = ["we", "the", "lovely", "sooner", "android", "butter", "whenever", "Dr.", "3.5", "e.g.", "So", "And"]
_WORDS = _PLAIN * 4 + sorted(CONNECTIVES)
_SEPARATORS = [" ", " ", " ", "  ", ", ", ". ", "? ", "! ", "; ", " — ", "\n", "... "]
# Keeps a reply under max_chars: whole text keeps a longer sentence whole, streaming cuts it at max_chars.
_MAX_WORDS = 16
_PROPERTY = settings(max_examples=300, deadline=None)


@_PROPERTY
@given(st.data())
def test_any_streaming_of_a_reply_gives_the_whole_text_pieces(data):
    """Connective and clause cuts never depend on where the token boundaries fall."""
    words = data.draw(st.lists(st.sampled_from(_WORDS), min_size=1, max_size=_MAX_WORDS))
    seps = data.draw(st.lists(st.sampled_from(_SEPARATORS), min_size=len(words), max_size=len(words)))
    text = "".join(w + s for w, s in zip(words, seps, strict=True))
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(text) - 1)))))
    tokens = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    # Char by char sees every prefix the chunker could decide on; the random tokens also push several at once.
    assert _stream(tokens) == _stream(list(text)) == split_for_speech(text)
    assert _stream(tokens, CLAUSES) == _stream(list(text), CLAUSES) == split_for_speech(text, CLAUSES)


def test_first_piece_ends_before_a_connective_as_soon_as_the_sentence_is_long():
    words = "What do you get when you cross a cat and a dog? Nobody knows.".split(" ")
    ch = SentenceChunker()
    got = [(w, ch.push(w if i == 0 else " " + w)) for i, w in enumerate(words)]
    got = [(w, pieces) for w, pieces in got if pieces] + [("", ch.flush())]
    # Out once the sentence outgrows first_sentence_split_chars (24), long before it ends.
    assert got == [
        ("cross", ["What do you get"]),
        ("Nobody", ["when you cross a cat and a dog?"]),
        ("", ["Nobody knows."]),
    ]


def test_a_long_first_sentence_gives_its_first_phrase_alone():
    # No clause break near the start: the first three words, extended past words that lean on the next.
    assert split_for_speech("The capital of France is Paris.") == ["The capital of France", "is Paris."]
    assert split_for_speech("You could make an omelette with some cheese.") == [
        "You could make",
        "an omelette with some cheese.",
    ]
    # A clause break within two words of the phrase is worth waiting for, streamed or whole.
    text = "I don't have live data, so I can't tell you the weather."
    assert (
        _stream(list(text))
        == split_for_speech(text)
        == ["I don't have live data,", "so I can't tell you the weather."]
    )
    assert split_for_speech("The capital of France is Paris.", CLAUSES) == ["The capital of France is Paris."]
    with pytest.raises(ValueError, match="first_phrase_words"):
        ChunkerConfig(first_phrase_words=0)


def test_a_short_first_sentence_stays_whole():
    assert split_for_speech("Sure, I can do that. And then some.") == [
        "Sure, I can do that.",
        "And then some.",
    ]


@pytest.mark.parametrize(
    "text, pieces",
    [
        (
            "So sooner or later we will all get there, I think.",
            ["So sooner or later we will all get there,", "I think."],
        ),
        (
            "I think we should leave sooner rather than later.",
            ["I think we should leave sooner rather than later."],
        ),
    ],
)
def test_a_connective_inside_a_streaming_word_is_no_cut(text, pieces):
    """Char by char, "...leave so" is already long enough to cut, but "so" is not yet a whole word."""
    assert _stream(list(text), CLAUSES) == split_for_speech(text, CLAUSES) == pieces


def test_a_connective_needs_two_words_before_it():
    assert split_for_speech("And then we left the house early today.", CLAUSES) == [
        "And then we left the house early today."
    ]
    short = ChunkerConfig(first_clause_min_chars=1, first_phrase_words=None)
    assert split_for_speech("Okay so we left the house early.", short) == ["Okay so we left the house early."]
    one_word = replace(short, first_clause_min_words=1)
    assert split_for_speech("Okay so we left the house early.", one_word) == [
        "Okay",
        "so we left the house early.",
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
