"""Real speech made offline, for every test that needs audio, and transcript comparison.

    from testkit.speech import make_speech, make_conversation_wav, normalize_text, word_error_rate
    from testkit.speech import load_transcriber, load_synthesizer  # bundled models, loaded once per process
    wav = make_speech("turn on the kitchen lights", voice="piper", rate=16000)   # -> Path (cached)
    conv = make_conversation_wav(["hello there", 1.0, "what time is it"], rate=16000)
    conv.path, conv.segments[0].start_ms, conv.segments[0].end_ms              # true speech boundaries
    normalize_text("It's 5 o'clock!") == normalize_text("it is five o clock")   # True

Voices: "piper" (the bundled joe voice through audio.tts, transcribes well; piper varies each rendition
at random), "piper-fixed" (the same voice without that variation) and "espeak" (the espeak-ng CLI, a
robotic and harder voice). A test hears only the committed take of its text (testkit/speech_corpus.py,
tests/speech/), the same audio on every machine and run; a benchmark may speak any text, rendered anew.
Files are cached by (voice, text, rate) under $DLM_TEST_CACHE or <tmp>/dlm_voice_speech; a cache hit
costs a file stat. Audio is trimmed to its audible part, so a conversation's segment boundaries are the
true speech boundaries (within a few ms).
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audio import pcm
from testkit import speech_corpus

CACHE_VERSION = "2"  # bump to invalidate cached audio when the recipe changes
VOICES = ("piper", "piper-fixed", "espeak")
ESPEAK_VOICE = "en-us"
TRIM_KEEP_MS = 10  # keep this much around the audible part so word onsets are not clipped

_loaded: dict[str, object] = {}
_load_lock = threading.Lock()


def _once(name: str, load):
    """load() the first time `name` is asked for in this process, the same object afterwards."""
    with _load_lock:
        if name not in _loaded:
            _loaded[name] = load()
        return _loaded[name]


def load_synthesizer():
    """The bundled piper voice, loaded once per process (shared by all tests)."""
    return _piper_synth()


def load_transcriber():
    """The bundled tiny.en Transcriber, loaded once per process (shared by all tests)."""
    from audio.asr import Transcriber

    return _once("asr", Transcriber.load)


def require_espeak() -> None:
    """Skip the calling test when espeak-ng is missing (fail instead where CI demands system parts)."""
    from testkit.system import require_program

    require_program("espeak-ng", apt="espeak-ng")


def cache_dir() -> Path:
    d = Path(os.environ.get("DLM_TEST_CACHE") or Path(tempfile.gettempdir()) / "dlm_voice_speech")
    d.mkdir(parents=True, exist_ok=True)
    return d


def _piper_synth():
    from audio.tts import Synthesizer

    return _once("piper", Synthesizer.load)


def _render_native(text: str, voice: str) -> tuple[np.ndarray, int]:
    if voice in ("piper", "piper-fixed"):
        synth = _piper_synth()
        if voice == "piper-fixed":
            synth = synth.with_config(noise_scale=0.0, noise_w_scale=0.0)
        chunks = list(synth.synthesize(text))
        x = np.concatenate([c.samples for c in chunks]) if chunks else np.zeros(0, np.float32)
        return x, synth.sample_rate
    if shutil.which("espeak-ng") is None:
        raise FileNotFoundError("espeak-ng is not installed (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "espeak.wav"
        subprocess.run(
            ["espeak-ng", "-v", ESPEAK_VOICE, "-w", str(out), text], check=True, capture_output=True
        )
        return pcm.read_wav(out)


def render(text: str, voice: str, rate: int) -> np.ndarray:
    """A fresh rendition of `text` in `voice`, trimmed, at `rate` (float32 [N])."""
    x, src_rate = _render_native(text, voice)
    return trim(pcm.resample(x, src_rate, rate), rate)


def trim(x: np.ndarray, rate: int, level: float = pcm.AUDIBLE_LEVEL) -> np.ndarray:
    """Cut leading/trailing near-silence, keeping TRIM_KEEP_MS around the audible part."""
    span = pcm.sound_span(x, level)
    if span is None:
        return x[:0]
    keep = pcm.ms_to_samples(TRIM_KEEP_MS, rate)
    return x[max(0, span[0] - keep) : min(len(x), span[1] + keep)]


def speech_samples(text: str, voice: str = "piper", rate: int = pcm.SAMPLE_RATE_ASR) -> np.ndarray:
    """Trimmed speech as float32 [N] at `rate` (cached like make_speech)."""
    x, _ = pcm.read_wav(make_speech(text, voice=voice, rate=rate))
    return x


def write_atomically(path: Path, write) -> None:
    """write(tmp_path), then move it into place: parallel test workers never read a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def write_cached(path: Path, x: np.ndarray, rate: int) -> None:
    """Write a cached WAV atomically."""
    write_atomically(path, lambda tmp: pcm.write_wav(tmp, x, rate))


def make_speech(
    text: str, path: str | Path | None = None, voice: str = "piper", rate: int = pcm.SAMPLE_RATE_ASR
) -> Path:
    """Speak `text` with `voice` into a 16-bit mono WAV at `rate`; returns its path (the cache file, or a
    copy at `path` when given)."""
    if voice not in VOICES:
        raise ValueError(f"voice must be one of {VOICES}, got {voice!r}")
    if not text.strip():
        raise ValueError("text is empty")
    rate = pcm.check_rate(rate)
    source = "committed" if speech_corpus.has(voice, text) else "rendered"
    key = hashlib.sha1(f"{CACHE_VERSION}|{source}|{voice}|{rate}|{text}".encode()).hexdigest()[:16]
    cached = cache_dir() / f"{voice}_{rate}_{key}.wav"
    if not cached.exists():
        write_cached(cached, _speech(text, voice, rate), rate)
    if path is None:
        return cached
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached, path)
    return path


def _speech(text: str, voice: str, rate: int) -> np.ndarray:
    """The committed clip at `rate`; outside the test suite, a fresh rendition of a text not committed."""
    x = speech_corpus.lookup(voice, text)
    if x is not None:
        return pcm.resample(x, speech_corpus.CORPUS_RATE, rate)
    if speech_corpus.strict():
        raise LookupError(
            f"the tests speak only committed clips, and {voice} {text!r} is not one: "
            f"python -m testkit.make_speech_corpus --add {voice} {shlex.quote(text)}"
        )
    return render(text, voice, rate)


@dataclass
class Segment:
    text: str
    start_ms: float  # first audible sample, ms from the start of the file
    end_ms: float  # last audible sample


@dataclass
class Conversation:
    path: Path
    rate: int
    samples: np.ndarray  # float32 [N]
    segments: list[Segment]

    @property
    def duration_ms(self) -> float:
        return pcm.samples_to_ms(len(self.samples), self.rate)


def make_conversation_wav(
    parts: list[str | float],
    path: str | Path | None = None,
    voice: str = "piper",
    rate: int = pcm.SAMPLE_RATE_ASR,
    noise_db: float | None = None,
    seed: int = 0,
) -> Conversation:
    """Concatenate speech (str) and silences (float seconds) into one WAV with known speech boundaries.

    `noise_db` adds white noise at that level (dBFS, e.g. -50) across the whole file, silences included.
    """
    rate = pcm.check_rate(rate)
    pieces, segments, pos = [], [], 0
    for p in parts:
        if isinstance(p, str):
            x = speech_samples(p, voice=voice, rate=rate)
            first, end = pcm.sound_span(x)
            segments.append(
                Segment(
                    p,
                    float(pcm.samples_to_ms(pos + first, rate)),
                    float(pcm.samples_to_ms(pos + end, rate)),
                )
            )
        else:
            if p < 0:
                raise ValueError(f"silence must be >= 0 s, got {p}")
            x = np.zeros(pcm.ms_to_samples(1000.0 * p, rate), dtype=np.float32)
        pieces.append(x)
        pos += len(x)
    audio = np.concatenate(pieces).astype(np.float32) if pieces else np.zeros(0, np.float32)
    if noise_db is not None:
        rng = np.random.default_rng(seed)
        audio = np.clip(audio + rng.normal(0, 10 ** (noise_db / 20), audio.shape), -1, 1).astype(np.float32)
    if path is None:
        key = hashlib.sha1(repr((CACHE_VERSION, parts, voice, rate, noise_db, seed)).encode()).hexdigest()[
            :16
        ]
        path = cache_dir() / f"conv_{key}.wav"
    pcm.write_wav(path, audio, rate)
    return Conversation(Path(path), rate, audio, segments)


# ---------------------------------------------------------------- transcript comparison

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = [(10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred")]
_ORDINALS = {
    "1st": "first",
    "2nd": "second",
    "3rd": "third",
    "4th": "fourth",
    "5th": "fifth",
    "6th": "sixth",
    "7th": "seventh",
    "8th": "eighth",
    "9th": "ninth",
    "10th": "tenth",
    "11th": "eleventh",
    "12th": "twelfth",
}
_CONTRACTIONS = [
    (r"\bcan't\b", "can not"),
    (r"\bcannot\b", "can not"),
    (r"\bwon't\b", "will not"),
    (r"\bshan't\b", "shall not"),
    (r"\blet's\b", "let us"),
    (r"\bain't\b", "is not"),
    (r"n't\b", " not"),
    (r"'re\b", " are"),
    (r"'m\b", " am"),
    (r"'ll\b", " will"),
    (r"'ve\b", " have"),
    (r"'d\b", " would"),
    (r"\b(it|that|there|here|what|where|who|how|he|she)'s\b", r"\1 is"),
]
_WORD_MAP = {
    "ok": "okay",
    "mr": "mister",
    "mrs": "missus",
    "dr": "doctor",
    "percent": "percent",
    "%": "percent",
    "&": "and",
    "alright": "all right",
}


def number_to_words(n: int) -> str:
    if n < 0:
        return "minus " + number_to_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    for value, name in _SCALES:
        if n >= value:
            head, rest = divmod(n, value)
            return number_to_words(head) + " " + name + ("" if rest == 0 else " " + number_to_words(rest))
    raise AssertionError(n)


def _digits_to_words(m: re.Match) -> str:
    s = m.group().replace(",", "")
    if "." in s:
        whole, frac = s.split(".", 1)
        return number_to_words(int(whole or 0)) + " point " + " ".join(_ONES[int(d)] for d in frac)
    return number_to_words(int(s))


def normalize_text(s: str) -> str:
    """Lower-case words only: contractions expanded, digits spelled out, punctuation and hyphens removed."""
    s = s.lower().replace("’", "'").replace("‘", "'")
    for pat, rep in _CONTRACTIONS:
        s = re.sub(pat, rep, s)
    s = re.sub(r"\b(\d+)(st|nd|rd|th)\b", lambda m: _ORDINALS.get(m.group(), m.group(1)), s)
    s = re.sub(r"\$(\d[\d,]*(?:\.\d+)?)", r"\1 dollars", s)
    s = s.replace("%", " percent ").replace("&", " and ")
    s = re.sub(r"\d[\d,]*(?:\.\d+)?", lambda m: " " + _digits_to_words(m) + " ", s)
    s = re.sub(r"[^a-z0-9' ]+", " ", s).replace("'", " ")
    words = [_WORD_MAP.get(w, w) for w in s.split()]
    return " ".join(" ".join(words).split())


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level Levenshtein distance / number of reference words, after normalize_text on both."""
    ref, hyp = normalize_text(reference).split(), normalize_text(hypothesis).split()
    if not ref:
        return 0.0 if not hyp else 1.0
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1] / len(ref)


def corpus_wer(pairs: list[tuple[str, str]]) -> float:
    """Total word edits / total reference words over (reference, hypothesis) pairs."""
    edits = sum(word_error_rate(r, h) * max(1, len(normalize_text(r).split())) for r, h in pairs)
    words = sum(max(1, len(normalize_text(r).split())) for r, _ in pairs)
    return edits / words if words else 0.0


# Sentences the tests and the benchmark speak (short requests like a voice assistant hears).
UTTERANCES = [
    "What is the weather like in Paris today?",
    "Set a timer for ten minutes.",
    "Can you tell me a short story about a dragon?",
    "Turn off the lights in the living room.",
    "How many days are there in a leap year?",
    "Remind me to call my mother at six o'clock.",
    "What is the capital of Australia?",
    "Play some relaxing music please.",
]
# More of the same for the benchmark (tests keep to UTTERANCES so they stay fast).
MORE_UTTERANCES = [
    "Send a message to Anna saying I will be late.",
    "What does the word serendipity mean?",
    "Add milk, eggs and bread to my shopping list.",
    "How far is the moon from the earth?",
    "Wake me up at seven thirty tomorrow morning.",
    "Translate good morning into Spanish.",
    "Who wrote the novel Pride and Prejudice?",
    "Is it going to rain this weekend?",
]
