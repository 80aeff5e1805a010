"""The test suite's speech, committed: every utterance a test speaks is the same audio on every machine.

    lookup("piper", "Tell me a joke.")   # -> float32 [N] at CORPUS_RATE, or None when it is not committed
    strict()                             # True under pytest: a clip that is not committed is an error

piper renders a different take of a sentence every time (and a new piper or onnxruntime release may render
another), and a take with a dip between words, or one Whisper loops on, failed tests on fresh machines only.
So the clips were rendered once by `python -m testkit.make_speech_corpus` (which says how) and committed in
tests/speech/: trimmed to their audible part, 16 kHz 16-bit mono WAV, listed in index.json by voice and
text. testkit.speech.make_speech reads them first and resamples to the rate a test asks for.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np

from audio import pcm

CORPUS_DIR = Path(__file__).resolve().parents[1] / "tests" / "speech"
INDEX = CORPUS_DIR / "index.json"
CORPUS_RATE = pcm.SAMPLE_RATE_ASR  # what Whisper, Silero and Smart Turn hear in the end
STRICT_ENV = "DLM_TEST_SPEECH"  # "committed": only committed clips (tests/conftest.py sets it)
SLUG_WORDS = 6  # words of the text in a clip's file name, for a reader of the folder


def clip_name(voice: str, text: str) -> str:
    """The file of (voice, text): a few of its words, then a hash of the exact text."""
    words = re.sub(r"[^a-z0-9 ]+", "", text.lower()).split()[:SLUG_WORDS]
    digest = hashlib.sha1(f"{voice}|{text}".encode()).hexdigest()[:8]
    return f"{voice}-{'-'.join(words)}-{digest}.wav"


@functools.cache
def index() -> dict[tuple[str, str], str]:
    """(voice, text) -> file name, as committed."""
    if not INDEX.exists():
        return {}
    return {(c["voice"], c["text"]): c["file"] for c in json.loads(INDEX.read_text())["clips"]}


def has(voice: str, text: str) -> bool:
    return (voice, text) in index()


def lookup(voice: str, text: str) -> np.ndarray | None:
    """The committed clip of `text` in `voice` (float32 [N] at CORPUS_RATE), or None."""
    name = index().get((voice, text))
    if name is None:
        return None
    x, rate = pcm.read_wav(CORPUS_DIR / name)
    if rate != CORPUS_RATE:
        raise ValueError(f"{name} is at {rate} Hz, the corpus is at {CORPUS_RATE} Hz")
    return x


def strict() -> bool:
    """Only committed clips may be spoken (the test suite); elsewhere (benchmarks) new text is rendered."""
    return os.environ.get(STRICT_ENV) == "committed"


def write_index(clips: dict[tuple[str, str], str]) -> None:
    """index.json, sorted so that adding a clip changes one entry of the diff."""
    rows = [{"voice": v, "text": t, "file": f} for (v, t), f in sorted(clips.items())]
    body = {"rate": CORPUS_RATE, "made_by": "python -m testkit.make_speech_corpus", "clips": rows}
    INDEX.write_text(json.dumps(body, indent=1) + "\n")
    index.cache_clear()
