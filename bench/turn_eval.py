"""End-of-turn judges on a labelled set of finished and unfinished utterances, spoken offline.

    python -m bench.turn_eval [--quick]   # needs pipecat-ai for the Smart Turn file

Each sentence is spoken by several voices (piper's joe at two speaking rates, espeak-ng with four
voices and rates) three ways, each followed by TRAILING_SILENCE_MS of silence (what the judge has
heard when it decides):
  complete  the whole sentence;
  broken    only its first words, spoken as if that were all ("I want to go to the");
  paused    the whole sentence's audio cut after those words (the speaker pauses mid-sentence).
Every clip is transcribed by the bundled Whisper, so the text judge sees real ASR output.
Sentences (not clips) are split into train and held-out; the calibrated combinations are fitted on
train and reported on held-out: precision and recall of "complete" at the threshold chosen on train,
for audio only (Smart Turn v3), the words (the AR twin's p_end_words; the counted sentence ends of
turn_taking.sentence_ends, with this set's sentences taken out of the counts; both), Whisper's
probability of the last word it wrote, and the combinations the judge ships. Then
the server's own judge (turn_taking.judge, as shipped) and semantic_vad's bands (eagerness auto)
on the held-out clips, and on its short turns alone (training.turn_sentences.SHORT_TURNS): precision
and recall of the fast band, how long finished turns wait, and the share of unfinished ones a pause
of each length would end (a cut-off). Transcripts and audio scores are cached under testkit's cache
dir. Prints a table, then ONE final JSON line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audio import pcm
from testkit import speech
from training.turn_sentences import SENTENCES, SHORT_TURNS

CACHE_VERSION = "3"  # 3: Whisper's probability of the last word joined the transcript
RATE = pcm.SAMPLE_RATE_ASR
TRAILING_SILENCE_MS = 200
# (engine, voice, rate): piper's length_scale (>1 slower), espeak-ng's voice and words per minute.
VOICES = [
    ("piper", "joe", 1.0),
    ("piper", "joe", 1.3),
    ("espeak", "en-us", 175),
    ("espeak", "en+f3", 150),
    ("espeak", "en-gb+m3", 200),
    ("espeak", "en+m3", 130),
]
QUICK_SENTENCES = 6
QUICK_VOICES = 2
HELD_OUT_EVERY = 3  # sentence i is held out when i % 3 == 2
PROB_CLIP = 1e-6  # logits of probabilities clipped to [1e-6, 1 - 1e-6]
L2 = 1e-2  # ridge on the logistic weights (not the bias): keeps the fit sane on small sets
PRECISION_WEIGHT = 0.5  # the threshold maximises F-beta with this beta: cutting a user off costs more
TIMING_CALLS = 10
CUT_PAUSES_S = (
    0.3,
    0.6,
    0.9,
    1.2,
)  # mid-sentence pause lengths checked for cut-offs (as bench.voice_latency)
CUT_BREAK_MS = 1500  # the SSML pause espeak-ng speaks at a cut; the audio is cut where it starts


@dataclass
class Clip:
    sentence: int  # index into SENTENCES
    voice: tuple
    kind: str  # "complete", "broken" or "paused"
    text: str  # what was spoken
    transcript: str
    p_audio: float
    p_text: float = 0.0  # TwinTurnEnd.p_end_words(transcript)
    p_text_raw: float = 0.0  # TwinTurnEnd.p_end(transcript), for comparison
    p_counts: float = 0.0  # SentenceEnds.p_end(transcript)
    p_asr: float | None = None  # Whisper's probability of the transcript's last word (Transcript.last_word_p)

    @property
    def label(self) -> int:
        return int(self.kind == "complete")


def render(text: str, voice: tuple, cut_after: int | None = None) -> np.ndarray | None:
    """Trimmed speech, float32 [N] at RATE. With `cut_after`, the whole sentence's audio up to the end
    of that many words (the speaker pauses mid-sentence); None when the words cannot be located."""
    engine, name, rate = voice
    if engine == "piper":
        x, src = _piper(text, rate, cut_after)
    else:
        x, src = _espeak(text, name, rate, cut_after)
    return None if x is None else speech.trim(pcm.resample(x, src, RATE), RATE)


def _piper(text: str, length_scale: float, cut_after: int | None) -> tuple[np.ndarray | None, int]:
    """piper's joe voice; a cut falls where its phoneme alignments put the word boundary."""
    from piper import PiperVoice, SynthesisConfig

    from audio.tts import resolve_voice

    voice = speech._once(
        "piper_aligned", lambda: PiperVoice.load(str(resolve_voice()), include_alignments=True)
    )
    config = SynthesisConfig(length_scale=length_scale)
    chunks = list(voice.synthesize(text, syn_config=config, include_alignments=cut_after is not None))
    x = np.concatenate([np.asarray(c.audio_float_array, np.float32).reshape(-1) for c in chunks])
    rate = chunks[0].sample_rate
    if cut_after is None:
        return x, rate
    aligned = [a for c in chunks for a in (c.phoneme_alignments or [])]
    ends = np.cumsum([a.num_samples for a in aligned])  # [P] sample where each phoneme ends
    gaps = [int(ends[k - 1]) for k, a in enumerate(aligned) if a.phoneme == " "]  # each word's end
    if len(gaps) + 1 != len(text.split()) or cut_after > len(gaps):
        return None, rate
    return x[: gaps[cut_after - 1]], rate


def _espeak(text: str, name: str, wpm: int, cut_after: int | None) -> tuple[np.ndarray | None, int]:
    """espeak-ng; a cut is an SSML break after the words, and the audio ends where the break starts."""
    words = text.split()
    if cut_after is not None:
        text = (
            " ".join(words[:cut_after]) + f' <break time="{CUT_BREAK_MS}ms"/> ' + " ".join(words[cut_after:])
        )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "espeak.wav"
        cmd = ["espeak-ng", "-m", "-v", name, "-s", str(wpm), "-w", str(out), text]
        subprocess.run(cmd, check=True, capture_output=True)
        x, rate = pcm.read_wav(out)
    if cut_after is None:
        return x, rate
    quiet = np.abs(x) <= pcm.AUDIBLE_LEVEL
    run = pcm.ms_to_samples(CUT_BREAK_MS / 2, rate)
    quiet_runs = np.convolve(quiet, np.ones(run), "valid") == run  # [N - run + 1] a whole run quiet
    starts = np.flatnonzero(quiet_runs[pcm.ms_to_samples(100, rate) :])  # skip leading silence
    return (x[: starts[0] + pcm.ms_to_samples(100, rate)] if starts.size else None), rate


def with_silence(x: np.ndarray) -> np.ndarray:
    return np.concatenate([x, np.zeros(pcm.ms_to_samples(TRAILING_SILENCE_MS, RATE), np.float32)])


def _cache_file(*key) -> Path:
    d = speech.cache_dir() / "turn_eval"
    d.mkdir(exist_ok=True)
    return d / (hashlib.sha1(repr((CACHE_VERSION, *key)).encode()).hexdigest()[:16] + ".json")


def score_clips(i: int, voice: tuple, asr, turn) -> list[Clip]:
    """The three clips of sentence i in `voice`, transcribed and scored by Smart Turn (cached)."""
    text, n_words = SENTENCES[i]
    cache = _cache_file(text, n_words, voice, TRAILING_SILENCE_MS)
    if cache.exists():
        return [Clip(**{**c, "voice": tuple(c["voice"])}) for c in json.loads(cache.read_text())]
    full = render(text, voice)
    audio = {"complete": full}
    if n_words is not None:
        prefix = " ".join(text.split()[:n_words])
        audio["broken"] = render(prefix, voice)
        paused = render(text, voice, cut_after=n_words)
        if paused is not None and len(paused):
            audio["paused"] = paused
    clips = []
    for kind, x in audio.items():
        x = with_silence(x)
        spoken = text if kind == "complete" else " ".join(text.split()[:n_words])
        tr = asr.transcribe(x)
        clips.append(Clip(i, voice, kind, spoken, tr.text, turn.predict(x), p_asr=tr.last_word_p))
    cache.write_text(json.dumps([c.__dict__ for c in clips]))
    return clips


# ---------------------------------------------------------------- calibration


def logit(p) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), PROB_CLIP, 1 - PROB_CLIP)
    return np.log(p / (1 - p))


def sigmoid(z) -> np.ndarray:
    return 1 / (1 + np.exp(-np.asarray(z, dtype=np.float64)))


def fit_logistic(x: np.ndarray, y: np.ndarray, steps: int = 50) -> np.ndarray:
    """Weights [F + 1] (bias last) of an L2-regularised logistic regression, by Newton's method.
    x: [N, F] features, y: [N] labels in {0, 1}."""
    xb = np.hstack([x, np.ones((len(x), 1))])  # [N, F + 1]
    ridge = np.diag([L2] * x.shape[1] + [0.0])
    w = np.zeros(xb.shape[1])
    for _ in range(steps):
        p = sigmoid(xb @ w)
        grad = xb.T @ (p - y) + ridge @ w
        hess = xb.T @ (xb * (p * (1 - p))[:, None]) + ridge + 1e-9 * np.eye(len(w))
        w -= np.linalg.solve(hess, grad)
    return w


def precision_recall(p: np.ndarray, y: np.ndarray, threshold: float) -> tuple[float, float]:
    said = p >= threshold
    tp = float(np.sum(said & (y == 1)))
    precision = tp / max(1, int(said.sum())) if said.any() else 1.0
    return precision, tp / max(1, int(np.sum(y == 1)))


def choose_threshold(p: np.ndarray, y: np.ndarray) -> float:
    """The threshold on train that maximises F-beta (beta = PRECISION_WEIGHT)."""
    best, best_f = 0.5, -1.0
    b2 = PRECISION_WEIGHT**2
    for t in np.unique(np.round(p, 3)):
        prec, rec = precision_recall(p, y, t)
        f = (1 + b2) * prec * rec / max(1e-9, b2 * prec + rec)
        if f > best_f:
            best, best_f = float(t), f
    return best


def _asr(c: Clip) -> float:
    """Whisper's last-word probability, or 0.5 (logit 0: no evidence) for the few clips without one."""
    return 0.5 if c.p_asr is None else c.p_asr


SIGNALS = {  # name -> the clip's features fed to the logistic combination
    "audio": lambda c: [c.p_audio],
    "asr": lambda c: [_asr(c)],
    "text": lambda c: [c.p_text],
    "text_raw": lambda c: [c.p_text_raw],
    "counts": lambda c: [c.p_counts],
    "words": lambda c: [c.p_text, c.p_counts],  # judge.WORDS_ONLY
    "audio+text": lambda c: [c.p_audio, c.p_text],  # the judge before the counted sentence ends
    "combined": lambda c: [c.p_audio, c.p_text, c.p_counts],  # judge.ALL
    "words+asr": lambda c: [c.p_text, c.p_counts, _asr(c)],  # judge.WORDS_ASR
    "all4": lambda c: [c.p_audio, c.p_text, c.p_counts, _asr(c)],  # judge.ALL_ASR
}


def evaluate(train: list[Clip], held: list[Clip]) -> dict:
    """Per signal: fitted weights, the threshold chosen on train, held-out precision/recall."""
    out = {}
    y_train = np.array([c.label for c in train])
    y_held = np.array([c.label for c in held])
    for name, features in SIGNALS.items():
        x_train = logit([features(c) for c in train])
        x_held = logit([features(c) for c in held])
        w = fit_logistic(x_train, y_train)
        p_train = sigmoid(np.hstack([x_train, np.ones((len(x_train), 1))]) @ w)
        p_held = sigmoid(np.hstack([x_held, np.ones((len(x_held), 1))]) @ w)
        threshold = choose_threshold(p_train, y_train)
        precision, recall = precision_recall(p_held, y_held, threshold)
        by_kind = {
            kind: float(np.mean(p_held[[c.kind == kind for c in held]] >= threshold))
            for kind in ("complete", "broken", "paused")
            if any(c.kind == kind for c in held)
        }
        out[name] = {
            "weights": [round(float(v), 4) for v in w],  # one per feature, then the bias
            "threshold": round(threshold, 3),
            "precision": round(precision, 3),
            "recall": round(recall, 3),
            "said_complete_by_kind": {k: round(v, 3) for k, v in by_kind.items()},
        }
    return out


def band_report(clips: list[Clip]) -> dict:
    """The shipped judge and semantic_vad's bands (eagerness auto) on these clips: finished turns' silence
    wait, and the share of unfinished ones each mid-sentence pause length would cut off."""
    from turn_taking.endpoint import EAGERNESS
    from turn_taking.judge import Words, combine

    cfg = EAGERNESS["auto"]
    verdicts = [combine(c.p_audio, Words(c.p_text, c.p_counts, c.p_asr)) for c in clips]
    wait = np.array([cfg.silence_needed_ms(p) for p in verdicts])  # [N] ms
    finished = np.array([c.label == 1 for c in clips])
    bands = {"complete": cfg.complete_silence_ms, "unsure": cfg.unsure_silence_ms, "max": cfg.max_wait_ms}

    def shares(mask):
        return {name: round(float(np.mean(wait[mask] == ms)), 3) for name, ms in bands.items()}

    said_complete = wait == cfg.complete_silence_ms
    precision, recall = precision_recall(said_complete.astype(float), finished.astype(int), 0.5)
    return {
        "clips": len(clips),
        "precision": round(precision, 3),  # of "complete" (the fast band)
        "recall": round(recall, 3),
        "finished_band": shares(finished),
        "unfinished_band": shares(~finished),
        "finished_wait_ms": {
            "median": float(np.median(wait[finished])),
            "mean": round(float(wait[finished].mean())),
        },
        "cut_off_by_pause_s": {
            str(s): round(float(np.mean(wait[~finished] < s * 1000)), 3) for s in CUT_PAUSES_S
        },
    }


# ---------------------------------------------------------------- the run


def time_calls(fn, arg) -> float:
    """Median ms of TIMING_CALLS calls after one warm-up."""
    fn(arg)
    times = []
    for _ in range(TIMING_CALLS):
        t0 = time.perf_counter()
        fn(arg)
        times.append(1000 * (time.perf_counter() - t0))
    return float(np.median(times))


def build_set(sentences: range, voices: list, asr, turn, judge, ends) -> list[Clip]:
    clips = []
    for i in sentences:
        for voice in voices:
            clips.extend(score_clips(i, voice, asr, turn))
        print(f"  sentence {i + 1}/{len(sentences)}: {len(clips)} clips", file=sys.stderr, flush=True)
    for c in clips:
        c.p_text = judge.p_end_words(c.transcript)
        c.p_text_raw = judge.p_end(c.transcript)
        c.p_counts = ends.p_end(c.transcript)
    return clips


def describe(clips: list[Clip]) -> dict:
    kinds = {k: sum(c.kind == k for c in clips) for k in ("complete", "broken", "paused")}
    engines = {e: sum(c.voice[0] == e for c in clips) for e in ("piper", "espeak")}
    return {"clips": len(clips), "sentences": len({c.sentence for c in clips}), **kinds, **engines}


def print_table(stats: dict, results: dict, ms: dict, bands: dict) -> None:
    print(f"labelled set: {stats}")
    print(
        f"{'signal':<10} {'threshold':>9} {'precision':>9} {'recall':>7}  said complete (held-out)  weights"
    )
    for name, r in results.items():
        kinds = " ".join(f"{k}={v:.2f}" for k, v in r["said_complete_by_kind"].items())
        head = f"{name:<10} {r['threshold']:>9.3f} {r['precision']:>9.3f} {r['recall']:>7.3f}"
        print(f"{head}  {kinds:<24} {r['weights']}")
    print("ms per call: " + ", ".join(f"{k} {v:.1f}" for k, v in ms.items()))
    for name, b in bands.items():
        print(f"semantic_vad (auto), the shipped judge, {name}: {b}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick", action="store_true", help=f"{QUICK_SENTENCES} sentences, {QUICK_VOICES} voices"
    )
    args = ap.parse_args(argv)

    import torch

    from turn_taking.sentence_ends import SentenceEnds, key
    from turn_taking.smart_turn import SmartTurn
    from turn_taking.twin import TwinTurnEnd

    torch.set_num_threads(1)  # as the judge runs beside ASR and the LM on a small CPU
    asr, turn, judge = speech.load_transcriber(), SmartTurn.load(), TwinTurnEnd.load()
    n = QUICK_SENTENCES if args.quick else len(SENTENCES)
    voices = VOICES[:: len(VOICES) // QUICK_VOICES] if args.quick else VOICES
    ends = SentenceEnds.load(evaluation=True)  # without these sentences, as if never seen
    if ends.left_out != {key(s) for s, _ in SENTENCES}:
        raise SystemExit(
            "the sentence-end table predates this labelled set: python -m training.sentence_ends"
        )
    clips = build_set(range(n), voices, asr, turn, judge, ends)
    held = [c for c in clips if c.sentence % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
    train = [c for c in clips if c.sentence % HELD_OUT_EVERY != HELD_OUT_EVERY - 1]
    results = evaluate(train, held)
    sample = with_silence(render(SENTENCES[0][0], VOICES[0]))
    ms = {
        "smart_turn": time_calls(turn.predict, sample),
        "text_p_end_words": time_calls(judge.p_end_words, clips[0].transcript),
        "text_p_end": time_calls(judge.p_end, clips[0].transcript),
        "sentence_ends": time_calls(ends.p_end, clips[0].transcript),
        "whisper_transcribe": time_calls(lambda x: asr.transcribe(x), sample),
    }
    stats = {"all": describe(clips), "train": describe(train), "held_out": describe(held)}
    short = {text for text, _ in SHORT_TURNS}
    held_short = [c for c in held if SENTENCES[c.sentence][0] in short]
    bands = {"held_out": band_report(held)}
    if held_short:  # not in --quick's first sentences
        bands["held_out_short_turns"] = band_report(held_short)
    print_table(stats["all"], results, ms, bands)
    record = {
        "bench": "turn_eval",
        "quick": args.quick,
        "trailing_silence_ms": TRAILING_SILENCE_MS,
        "set": stats,
        "results": results,
        "semantic_vad_bands": bands,
        "ms_per_call": {k: round(v, 1) for k, v in ms.items()},
    }
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
