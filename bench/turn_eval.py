"""End-of-turn judges on a labelled set of finished and unfinished utterances, spoken offline.

    python -m bench.turn_eval [--quick]   # needs pipecat-ai for the Smart Turn file

Two sets of sentences. training.turn_sentences' are spoken by six voices (piper's joe at two speaking
rates, espeak-ng with four voices and rates) three ways, each followed by TRAILING_SILENCE_MS of silence
(what the judge has heard when it decides):
  complete  the whole sentence;
  broken    only its first words, spoken as if that were all ("I want to go to the");
  paused    the whole sentence's audio cut after those words (the speaker pauses mid-sentence).
training.turn_pauses' thinking pauses (after a clause, inside a list, after a word that needs a
complement, after a filler, after a greeting) are written with a comma at the pause, so the voice keeps
its unfinished tone there, and spoken complete and paused by PAUSE_VOICES; its finished short turns
complete. Every clip is transcribed by the bundled Whisper, so the text judges see real ASR output.
Sentences (not clips) are split into train and held-out (every third of turn_sentences; turn_pauses'
own split, by wording); the calibrated combinations are fitted on train and reported on held-out: ROC
AUC, and precision and recall of "complete" at the threshold chosen on train, for audio only (Smart Turn
v3), the words (the AR twin's p_end_words; the counted sentence ends of turn_taking.sentence_ends, with
turn_sentences taken out of the counts; the whole-utterance model of turn_taking.utterance_end in the
weights trained without any of the set's sentences, training.utterance_end.EVALUATION_MODEL), Whisper's
probability of the last word it wrote, and combinations. Then the end-of-turn judge in semantic_vad's
bands (eagerness auto) on the held-out clips, as it was before issue 29 (without the utterance model,
the bands of then), as shipped (turn_taking.judge.combine) and as CANDIDATE fitted here: how long
finished turns wait (all, and the short ones), and the share of unfinished ones a pause of each length
would end (a cut-off: the band's silence is no longer than the pause), overall and by kind of pause.
Transcripts and audio scores are cached under testkit's cache
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
from training import turn_pauses
from training.turn_sentences import SENTENCES, SHORT_TURNS
from training.utterance_end import EVALUATION_MODEL, roc_auc

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
# training.turn_pauses is spoken by two of them, piper and espeak-ng at their usual rates: the pauses
# need the voice's unfinished tone, and on this project's shared 2-core machine 75 s of each sentence's
# clips in four voices were too many.
PAUSE_VOICES = [VOICES[0], VOICES[2]]
QUICK_SENTENCES = 6
QUICK_PAUSES = 2  # of each split of training.turn_pauses
QUICK_VOICES = 2
HELD_OUT_EVERY = 3  # turn_sentences' sentence i is held out when i % 3 == 2
PROB_CLIP = 1e-6  # logits of probabilities clipped to [1e-6, 1 - 1e-6]
L2 = 1e-2  # ridge on the logistic weights (not the bias): keeps the fit sane on small sets
PRECISION_WEIGHT = 0.5  # the threshold maximises F-beta with this beta: cutting a user off costs more
TIMING_CALLS = 10
CANDIDATE = "all4+utt"  # the combination fitted on train and shown in the bands beside the shipped judge
CUT_PAUSES_S = (0.3, 0.6, 0.9, 1.0, 1.2)  # pause lengths checked for cut-offs (issue 29: none up to 1.0 s)
CUT_BREAK_MS = 1500  # the SSML pause espeak-ng speaks at a cut; the audio is cut where it starts


@dataclass(frozen=True)
class Item:
    """One sentence of the labelled set."""

    text: str
    words: int | None  # words before the cut or pause (None: a sentence too short to cut)
    pause: str  # the kind of cut: "mid-sentence" (turn_sentences) or one of turn_pauses.PAUSE_KINDS
    held_out: bool
    short: bool  # a short turn (turn_sentences.SHORT_TURNS, turn_pauses' finished short turns)
    thinking: bool = False  # from turn_pauses: spoken complete and paused only, by PAUSE_VOICES


def labelled_set(quick: bool = False) -> list[Item]:
    """turn_sentences' sentences first (their cached clips keep their index), then turn_pauses'."""
    short = {text for text, _ in SHORT_TURNS}
    out = [
        Item(text, n, "mid-sentence", i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1, text in short)
        for i, (text, n) in enumerate(SENTENCES[:QUICK_SENTENCES] if quick else SENTENCES)
    ]
    for held, pauses, finished in (
        (False, turn_pauses.TRAIN, turn_pauses.FINISHED_SHORT_TRAIN),
        (True, turn_pauses.HELD_OUT, turn_pauses.FINISHED_SHORT_HELD_OUT),
    ):
        if quick:
            pauses, finished = pauses[:QUICK_PAUSES], finished[:QUICK_PAUSES]
        out += [Item(p.text, p.words, p.kind, held, False, True) for p in pauses]
        out += [Item(text, None, "none", held, True, True) for text in finished]
    return out


@dataclass
class Clip:
    sentence: int  # index into labelled_set()
    voice: tuple
    kind: str  # "complete", "broken" or "paused"
    text: str  # what was spoken
    transcript: str
    p_audio: float
    p_text: float = 0.0  # TwinTurnEnd.p_end_words(transcript)
    p_text_raw: float = 0.0  # TwinTurnEnd.p_end(transcript), for comparison
    p_counts: float = 0.0  # SentenceEnds.p_end(transcript)
    p_asr: float | None = None  # Whisper's probability of the transcript's last word (Transcript.last_word_p)
    p_utt: float = 0.0  # UtteranceEnd.p_end(transcript)
    pause: str = ""  # the item's kind of cut (Item.pause)
    short: bool = False  # the item is a short turn (Item.short)

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


def score_clips(i: int, item: Item, voice: tuple, asr, turn) -> list[Clip]:
    """The clips of item i in `voice`, transcribed and scored by Smart Turn (cached)."""
    text, n_words = item.text, item.words
    key = (text, n_words, voice, TRAILING_SILENCE_MS) + (("thinking",) if item.thinking else ())
    cache = _cache_file(*key)
    if cache.exists():
        clips = [Clip(**{**c, "voice": tuple(c["voice"])}) for c in json.loads(cache.read_text())]
    else:
        clips = _render_and_score(item, voice, asr, turn)
        cache.write_text(json.dumps([c.__dict__ for c in clips]))
    for c in clips:
        c.sentence, c.pause = i, item.pause
    return clips


def _render_and_score(item: Item, voice: tuple, asr, turn) -> list[Clip]:
    text, n_words = item.text, item.words
    audio = {"complete": render(text, voice)}
    if n_words is not None:
        prefix = " ".join(text.split()[:n_words])
        if not item.thinking:
            audio["broken"] = render(prefix, voice)
        paused = render(text, voice, cut_after=n_words)
        if paused is not None and len(paused):
            audio["paused"] = paused
    clips = []
    for kind, x in audio.items():
        x = with_silence(x)
        spoken = text if kind == "complete" else " ".join(text.split()[:n_words])
        tr = asr.transcribe(x)
        clips.append(Clip(-1, voice, kind, spoken, tr.text, turn.predict(x), p_asr=tr.last_word_p))
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
    "utterance": lambda c: [c.p_utt],  # turn_taking.utterance_end
    "words+utt": lambda c: [c.p_text, c.p_counts, c.p_utt],  # judge.WORDS_UTT
    "words+asr+utt": lambda c: [c.p_text, c.p_counts, _asr(c), c.p_utt],  # judge.WORDS_ASR_UTT
    "combined+utt": lambda c: [c.p_audio, c.p_text, c.p_counts, c.p_utt],  # judge.ALL_UTT
    "all4+utt": lambda c: [c.p_audio, c.p_text, c.p_counts, _asr(c), c.p_utt],  # judge.ALL_ASR_UTT
    "audio+asr+utt": lambda c: [c.p_audio, _asr(c), c.p_utt],  # the utterance model in place of both
    "asr+utt": lambda c: [_asr(c), c.p_utt],
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
            "roc_auc": round(roc_auc(p_held, y_held), 3),
            "threshold": round(threshold, 3),
            "precision": round(precision, 3),
            "recall": round(recall, 3),
            "said_complete_by_kind": {k: round(v, 3) for k, v in by_kind.items()},
        }
    return out


def shipped_verdicts(clips: list[Clip], utterance: bool = True) -> np.ndarray:
    """The server's judge as shipped (turn_taking.judge.combine) on each clip; without the utterance
    model (utterance=False) it is the judge before issue 29."""
    from turn_taking.judge import Words, combine

    words = [Words(c.p_text, c.p_counts, c.p_asr, c.p_utt if utterance else None) for c in clips]
    return np.array([combine(c.p_audio, w) for c, w in zip(clips, words)])


def fitted_verdicts(train: list[Clip], clips: list[Clip], signal: str) -> tuple[np.ndarray, dict]:
    """A combination fitted on train, shifted as judge.Calibration is (its threshold lands on 0.5),
    on `clips`; and the calibration itself."""
    features = SIGNALS[signal]
    x_train = logit([features(c) for c in train])
    y_train = np.array([c.label for c in train])
    w = fit_logistic(x_train, y_train)
    threshold = choose_threshold(sigmoid(np.hstack([x_train, np.ones((len(x_train), 1))]) @ w), y_train)
    x = logit([features(c) for c in clips])
    z = np.hstack([x, np.ones((len(x), 1))]) @ w - logit(threshold)
    return sigmoid(z), {"signal": signal, "weights": [round(float(v), 4) for v in w], "threshold": threshold}


def before_bands():
    """semantic_vad's bands (eagerness auto) before issue 29: 200 ms at p >= 0.5, 1 s at 0.3-0.5, 2 s."""
    from turn_taking.endpoint import SemanticConfig

    return SemanticConfig(
        complete_silence_ms=200, max_wait_ms=2000, threshold=0.5, unsure_silence_ms=1000, unsure_threshold=0.3
    )


def band_report(clips: list[Clip], verdicts: np.ndarray, cfg=None) -> dict:
    """Verdicts in semantic_vad's bands (eagerness auto) on these clips: finished turns' silence wait (all,
    and the short turns), and the share of unfinished ones a pause of each length would end (the band's
    silence is no longer than the pause), overall and by kind of pause (paused clips; "broken": the
    first words said alone). cfg: the bands (default: eagerness auto's, as shipped)."""
    from turn_taking.endpoint import EAGERNESS

    cfg = cfg or EAGERNESS["auto"]
    wait = np.array([cfg.silence_needed_ms(p) for p in verdicts])  # [N] ms
    finished = np.array([c.label == 1 for c in clips])
    short = np.array([c.short for c in clips]) & finished
    bands = {"complete": cfg.complete_silence_ms, "unsure": cfg.unsure_silence_ms, "max": cfg.max_wait_ms}

    def shares(mask):
        return {name: round(float(np.mean(wait[mask] == ms)), 3) for name, ms in bands.items()}

    def cut_offs(mask):
        return {str(s): round(float(np.mean(wait[mask] <= s * 1000)), 3) for s in CUT_PAUSES_S}

    said_complete = wait == cfg.complete_silence_ms
    precision, recall = precision_recall(said_complete.astype(float), finished.astype(int), 0.5)
    kinds = {c.pause for c in clips if c.kind == "paused"}
    by_kind = {k: np.array([c.kind == "paused" and c.pause == k for c in clips]) for k in sorted(kinds)}
    by_kind["broken"] = np.array([c.kind == "broken" for c in clips])
    return {
        "clips": len(clips),
        "precision": round(precision, 3),  # of "complete" (the fast band)
        "recall": round(recall, 3),
        "finished_band": shares(finished),
        "unfinished_band": shares(~finished),
        "finished_wait_ms": {"mean": round(float(wait[finished].mean())), "n": int(finished.sum())},
        "short_finished_wait_ms": {
            "mean": round(float(wait[short].mean())) if short.any() else None,
            "n": int(short.sum()),
        },
        "cut_off_by_pause_s": cut_offs(~finished),
        "cut_off_by_kind": {k: {"n": int(m.sum()), **cut_offs(m)} for k, m in by_kind.items() if m.any()},
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


def build_set(items: list[Item], quick: bool, models) -> list[Clip]:
    """Every item's clips in its voices, then the text signals of every transcript."""
    asr, turn, judge, ends, utterance = models
    clips = []
    for i, item in enumerate(items):
        voices = PAUSE_VOICES if item.thinking else VOICES
        for voice in voices[:: len(voices) // QUICK_VOICES] if quick else voices:
            clips.extend(score_clips(i, item, voice, asr, turn))
        print(f"  sentence {i + 1}/{len(items)}: {len(clips)} clips", file=sys.stderr, flush=True)
    for c in clips:
        c.short = items[c.sentence].short
        c.p_text = judge.p_end_words(c.transcript)
        c.p_text_raw = judge.p_end(c.transcript)
        c.p_counts = ends.p_end(c.transcript)
        c.p_utt = utterance.p_end(c.transcript)
    return clips


def describe(clips: list[Clip]) -> dict:
    kinds = {k: sum(c.kind == k for c in clips) for k in ("complete", "broken", "paused")}
    engines = {e: sum(c.voice[0] == e for c in clips) for e in ("piper", "espeak")}
    pauses = {k: sum(c.kind == "paused" and c.pause == k for c in clips) for k in turn_pauses.PAUSE_KINDS}
    return {"clips": len(clips), "sentences": len({c.sentence for c in clips}), **kinds, **engines, **pauses}


def print_bands(name: str, b: dict) -> None:
    print(f"\n{name}: precision / recall of the fast band {b['precision']} / {b['recall']}")
    wait, short = b["finished_wait_ms"], b["short_finished_wait_ms"]
    print(f"  finished turns: bands {b['finished_band']}, mean wait {wait['mean']} ms (n {wait['n']})")
    print(f"  short finished turns: mean wait {short['mean']} ms (n {short['n']})")
    print("  cut off by a pause of (s): " + "  ".join(f"{s:>5}" for s in CUT_PAUSES_S))
    rows = {"all unfinished": {"n": int(b["clips"] - b["finished_wait_ms"]["n"]), **b["cut_off_by_pause_s"]}}
    for kind, row in {**rows, **b["cut_off_by_kind"]}.items():
        rates = "  ".join(f"{100 * row[str(s)]:>4.0f}%" for s in CUT_PAUSES_S)
        print(f"  {kind:<16} n {row['n']:>4}  {rates}")


def print_table(stats: dict, results: dict, ms: dict, bands: dict) -> None:
    print(f"labelled set: {stats}")
    head = f"{'signal':<14} {'AUC':>5} {'threshold':>9} {'precision':>9} {'recall':>7}"
    print(f"{head}  said complete (held-out)  weights")
    for name, r in results.items():
        kinds = " ".join(f"{k}={v:.2f}" for k, v in r["said_complete_by_kind"].items())
        head = f"{name:<14} {r['roc_auc']:>5.3f} {r['threshold']:>9.3f}"
        head += f" {r['precision']:>9.3f} {r['recall']:>7.3f}"
        print(f"{head}  {kinds:<24} {r['weights']}")
    print("ms per call: " + ", ".join(f"{k} {v:.1f}" for k, v in ms.items()))
    for name, b in bands.items():
        print_bands(f"semantic_vad (auto), {name}", b)


def load_models(utterance_model: str | None):
    import torch

    from turn_taking.sentence_ends import SentenceEnds, key
    from turn_taking.smart_turn import SmartTurn
    from turn_taking.twin import TwinTurnEnd
    from turn_taking.utterance_end import UtteranceEnd

    torch.set_num_threads(1)  # as the judge runs beside ASR and the LM on a small CPU
    ends = SentenceEnds.load(evaluation=True)  # without turn_sentences' sentences, as if never seen
    if ends.left_out != {key(s) for s, _ in SENTENCES}:
        raise SystemExit(
            "the sentence-end table predates this labelled set: python -m training.sentence_ends"
        )
    judge, utterance = TwinTurnEnd.load(), UtteranceEnd.load(utterance_model or EVALUATION_MODEL)
    return speech.load_transcriber(), SmartTurn.load(), judge, ends, utterance


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_SENTENCES} + 2 x {QUICK_PAUSES} sentences, {QUICK_VOICES} voices",
    )
    ap.add_argument(
        "--utterance-model",
        help="turn_taking.utterance_end weights (default: those trained without this set's sentences)",
    )
    ap.add_argument(
        "--candidate", default=CANDIDATE, help="a SIGNALS combination to fit on train and put in the bands"
    )
    args = ap.parse_args(argv)
    models = load_models(args.utterance_model)
    items = labelled_set(args.quick)
    clips = build_set(items, args.quick, models)
    held = [c for c in clips if items[c.sentence].held_out]
    train = [c for c in clips if not items[c.sentence].held_out]
    results = evaluate(train, held)
    candidate, calibration = fitted_verdicts(train, held, args.candidate)
    bands = {
        "before issue 29 (judge and bands), held-out": band_report(
            held, shipped_verdicts(held, utterance=False), before_bands()
        ),
        "the shipped judge, held-out": band_report(held, shipped_verdicts(held)),
        f"{args.candidate} fitted on train, held-out": band_report(held, candidate),
    }
    stats = {"all": describe(clips), "train": describe(train), "held_out": describe(held)}
    ms = call_times(models, clips[0].transcript)
    print_table(stats["all"], results, ms, bands)
    record = {
        "bench": "turn_eval",
        "quick": args.quick,
        "trailing_silence_ms": TRAILING_SILENCE_MS,
        "set": stats,
        "results": results,
        "candidate": calibration,
        "semantic_vad_bands": bands,
        "ms_per_call": {k: round(v, 1) for k, v in ms.items()},
    }
    print(json.dumps(record))
    return 0


def call_times(models, transcript: str) -> dict:
    asr, turn, judge, ends, utterance = models
    sample = with_silence(render(SENTENCES[0][0], VOICES[0]))
    return {
        "smart_turn": time_calls(turn.predict, sample),
        "text_p_end_words": time_calls(judge.p_end_words, transcript),
        "text_p_end": time_calls(judge.p_end, transcript),
        "sentence_ends": time_calls(ends.p_end, transcript),
        "utterance_end": time_calls(utterance.p_end, transcript),
        "whisper_transcribe": time_calls(lambda x: asr.transcribe(x), sample),
    }


if __name__ == "__main__":
    sys.exit(main())
