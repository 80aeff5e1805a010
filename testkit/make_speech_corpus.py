"""Render the test suite's committed speech (tests/speech/), or check it.

    python -m testkit.make_speech_corpus                                   # check every listed clip
    python -m testkit.make_speech_corpus --add piper "Tell me a joke."     # render a clip and list it
    python -m testkit.make_speech_corpus --add espeak "Sounds good." --add piper-fixed "Hello there."

How a clip is made (testkit.speech.render): "piper" is the bundled en_US-joe-medium voice as piper speaks
it, with its random variation (each --add is a new take: listen to it, or run the tests that use it, and
--add again for another take if Whisper mishears it); "piper-fixed" is the same voice without the
variation; "espeak" is espeak-ng's en-us voice (apt-get install espeak-ng). Each is trimmed to its audible
part, resampled to 16 kHz and written as 16-bit mono WAV; index.json maps (voice, text) to the file. A test
that speaks a text that is not committed fails with the --add command to run.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from audio import pcm
from testkit import speech_corpus as corpus
from testkit.speech import VOICES, render

MIN_CLIP_S = 0.2  # a clip shorter than this, or silent, was rendered wrong


def add(voice: str, text: str) -> str:
    """Render (voice, text) into the corpus, replacing an earlier take; returns the file name."""
    if voice not in VOICES:
        raise ValueError(f"voice must be one of {VOICES}, got {voice!r}")
    name = corpus.clip_name(voice, text)
    corpus.CORPUS_DIR.mkdir(parents=True, exist_ok=True)
    pcm.write_wav(corpus.CORPUS_DIR / name, render(text, voice, corpus.CORPUS_RATE), corpus.CORPUS_RATE)
    clips = dict(corpus.index())
    clips[(voice, text)] = name
    corpus.write_index(clips)
    return name


def check() -> list[str]:
    """What is wrong with the committed corpus: missing, silent or stray files."""
    problems, listed = [], set(corpus.index().values())
    for (voice, text), name in sorted(corpus.index().items()):
        path = corpus.CORPUS_DIR / name
        if not path.exists():
            problems.append(f"{name} ({voice}: {text!r}) is listed but missing")
            continue
        x = corpus.lookup(voice, text)
        if len(x) < MIN_CLIP_S * corpus.CORPUS_RATE or np.max(np.abs(x)) < pcm.AUDIBLE_LEVEL:
            problems.append(f"{name} is silent or too short")
    stray = sorted(p.name for p in corpus.CORPUS_DIR.glob("*.wav") if p.name not in listed)
    problems += [f"{name} is not listed in index.json" for name in stray]
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--add", nargs=2, action="append", metavar=("VOICE", "TEXT"), default=[])
    args = ap.parse_args(argv)
    for voice, text in args.add:
        print(f"{add(voice, text)}  {voice}: {text}")
    problems = check()
    size = sum((corpus.CORPUS_DIR / n).stat().st_size for n in corpus.index().values() if not problems)
    for p in problems:
        print(p, file=sys.stderr)
    print(f"{len(corpus.index())} clips, {size / 1e6:.1f} MB, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
