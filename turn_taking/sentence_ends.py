"""How often a sentence ends after these words: a counted n-gram model of sentence ends.

The second text signal of the end-of-turn judge (the first is the AR twin, `turn_taking.twin`). From the
sentences of our training conversations (`python -m training.sentence_ends` feeds them to `count` and
writes its `table`) we count, for the last one, two and three words of every sentence prefix, how many
prefixes ending in them were whole sentences. "... for" almost never ends a sentence, "... ten minutes"
often does. The estimate backs off from the longest context seen to shorter ones (interpolated, each
level weighted by its count against `alpha`), so an unseen phrase falls back on its last word and then on
the overall rate.

    ends = SentenceEnds.load()                  # the table bundled in turn_taking/tables
    held = SentenceEnds.load(evaluation=True)   # the same without bench.turn_eval's sentences
    ends.p_end("Set a timer for ten minutes.")  # high
    ends.p_end("I want to go to the")           # ~0

Words are what Whisper writes, lower-cased, without punctuation (digits stay digits). On
bench.turn_eval's clips it separates finished from unfinished turns better than the twin (ROC AUC
about 0.89 against 0.83), and costs a dictionary lookup instead of a forward pass.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

BUNDLED_TABLE = Path(__file__).resolve().parent / "tables" / "sentence_ends.json.gz"
FORMAT = "dlm-voice sentence ends v1"
WORD = re.compile(r"[a-z0-9']+")
MAX_ORDER = 3  # the last 1-3 words; a 2-word context measured the same on bench.turn_eval's clips
MIN_COUNT = 5  # 0.5 MB gzipped instead of 6.7 MB for all contexts, the same ROC AUC (0.892 vs 0.890)
ALPHA = 8.0  # back-off weight; 2-16 gave ROC AUC 0.884-0.894 on bench.turn_eval's clips
SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+")
START = "<s>"  # stands before the first word, so "<s> thanks" (a one-word sentence) is its own context


def words(text: str) -> list[str]:
    """The words as the table counts them: lower case, punctuation dropped."""
    return WORD.findall(text.lower())


def key(text: str) -> str:
    """A sentence as the table records it: its words, space-separated."""
    return " ".join(words(text))


def contexts(ws: list[str], max_order: int) -> list[str]:
    """The contexts of a prefix ending at its last word, shortest first: "minutes", "ten minutes", ..."""
    padded = [START, *ws]
    return [" ".join(padded[-n:]) for n in range(1, min(max_order, len(padded)) + 1)]


def prefix_contexts(ws: list[str], max_order: int):
    """What one whole sentence adds to the table: (context, whether the sentence ends there) for every
    context of each of its prefixes."""
    for i in range(len(ws)):
        for ctx in contexts(ws[: i + 1], max_order):
            yield ctx, i == len(ws) - 1


class SentenceEnds:
    def __init__(
        self,
        counts: dict[str, tuple[int, int]],
        prior: float,
        alpha: float,
        max_order: int,
        left_out: frozenset[str] = frozenset(),
    ):
        """counts: context -> (sentence ends after it, prefixes ending in it). left_out: the sentences
        (`key`s) taken out of the counts, by load(evaluation=True)."""
        if not 0.0 < prior < 1.0 or alpha <= 0 or max_order < 1:
            raise ValueError(f"bad table: prior {prior}, alpha {alpha}, max_order {max_order}")
        self.counts, self.prior, self.alpha, self.max_order = counts, prior, alpha, max_order
        self.left_out = left_out

    @classmethod
    def load(cls, path: str | Path | None = None, *, evaluation: bool = False) -> SentenceEnds:
        """A table written by training.sentence_ends (default: the bundled one). evaluation: as if the
        sentences of the end-of-turn evaluation set (training.turn_sentences) had never been counted,
        which the table records for this."""
        path = Path(path) if path is not None else BUNDLED_TABLE
        if not path.is_file():
            raise FileNotFoundError(f"no sentence-end table at {path} (python -m training.sentence_ends)")
        data = json.loads(gzip.decompress(path.read_bytes()))
        if data.get("format") != FORMAT:
            raise ValueError(f"{path} is not a sentence-end table ({FORMAT!r})")
        counts = {k: (int(v[0]), int(v[1])) for k, v in data["counts"].items()}
        table = cls(counts, float(data["prior"]), float(data["alpha"]), int(data["max_order"]))
        if not evaluation:
            return table
        left = data.get("evaluation")
        if left is None:
            raise ValueError(f"{path} records no evaluation sentences (python -m training.sentence_ends)")
        held = table.leaving_out(left["sentences"], float(left["prior"]), int(data["min_count"]))
        held.left_out = frozenset(left["checked"])  # all the set's sentences, counted or not
        return held

    def leaving_out(self, sentences: dict[str, int], prior: float, min_count: int) -> SentenceEnds:
        """The table as if these whole sentences (`key` -> how often, weighted) had not been counted:
        what each added (`prefix_contexts`) is taken off, and contexts left with fewer than min_count
        are dropped, as the builder would have done. prior: the rate without them."""
        counts = dict(self.counts)
        for sentence, weight in sentences.items():
            for ctx, ends_here in prefix_contexts(sentence.split(), self.max_order):
                if ctx in counts:
                    ends, seen = counts[ctx]
                    counts[ctx] = (ends - weight * ends_here, seen - weight)
        kept = {ctx: v for ctx, v in counts.items() if v[1] >= min_count}
        return SentenceEnds(kept, prior, self.alpha, self.max_order, frozenset(sentences))

    def p_end(self, text: str) -> float:
        """P(a sentence ends after the last word of `text`); 0 when there are no words."""
        ws = words(text)
        if not ws:
            return 0.0
        p = self.prior
        for ctx in contexts(ws, self.max_order):
            ends, seen = self.counts.get(ctx, (0, 0))
            p = (ends + self.alpha * p) / (seen + self.alpha)
        return p


# ---- counting: what `python -m training.sentence_ends` writes ------------------------------------------


@dataclass
class Counts:
    ends: Counter = field(default_factory=Counter)  # context -> weighted sentence ends after it
    seen: Counter = field(default_factory=Counter)  # context -> weighted prefixes ending in it
    words: int = 0  # weighted words counted
    sentences: int = 0  # weighted sentences counted
    checked: list[str] = field(default_factory=list)  # the evaluation sentences' words, all of them
    evaluation: Counter = field(default_factory=Counter)  # those counted -> their weight

    @property
    def prior(self) -> float:
        """The overall share of words that end a sentence."""
        return self.sentences / self.words

    @property
    def evaluation_prior(self) -> float:
        """The same without the evaluation sentences."""
        left = self.sentences - sum(self.evaluation.values())
        left_words = self.words - sum(w * len(k.split()) for k, w in self.evaluation.items())
        return left / left_words


def count(texts: list[tuple[str, int]], evaluation: list[str]) -> Counts:
    """Every sentence's prefixes in (text, weight) pairs, cut into sentences at . ! ?, and which of them
    were `evaluation`'s sentences (recorded so that `load(evaluation=True)` can take them out again)."""
    c = Counts(checked=sorted({key(s) for s in evaluation}))
    held = set(c.checked)
    for text, weight in texts:
        for sentence in SENTENCE_SPLIT.split(text):
            ws = words(sentence)
            if not ws:
                continue
            c.words, c.sentences = c.words + weight * len(ws), c.sentences + weight
            if (k := " ".join(ws)) in held:
                c.evaluation[k] += weight
            for ctx, ends_here in prefix_contexts(ws, MAX_ORDER):
                c.seen[ctx] += weight
                c.ends[ctx] += weight * ends_here
    return c


def table(c: Counts, min_count: int = MIN_COUNT) -> dict:
    """The table `SentenceEnds.load` reads: contexts seen at least min_count times."""
    kept = {ctx: [c.ends[ctx], n] for ctx, n in sorted(c.seen.items()) if n >= min_count}
    evaluation = {
        "checked": c.checked,
        "sentences": dict(sorted(c.evaluation.items())),
        "prior": c.evaluation_prior,
    }
    return {
        "format": FORMAT,
        "max_order": MAX_ORDER,
        "alpha": ALPHA,
        "min_count": min_count,
        "prior": c.prior,
        "counts": kept,
        "evaluation": evaluation,
    }
