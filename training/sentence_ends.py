"""Count where sentences end in our training conversations: the table of dlm_core.sentence_ends.

    python -m training.sentence_ends [--out PATH] [--min-count 5]   # needs the `train` extra (~40 s)

Every turn of the training split (chitchat, chatterbot, the templates, the tool conversations' user and
assistant words; not tool-call markup) is cut into sentences at . ! ?, and each sentence into its
prefixes: a prefix is a whole sentence once, an unfinished one for every other word. For the last one to
`MAX_ORDER` words of each prefix we count both, weighing each source as training does (`REPEATS`: the
small assistant-style sources count more than casual chat). Contexts seen fewer than `min_count` times
are dropped; the model backs off to shorter ones there.

Every sentence is counted, also those of the end-of-turn evaluation set (testkit.turn_sentences).
The table records how often each of those occurs whole (18 of the 66 do: "Okay." 614 weighted times,
"Thanks." 317, "How are you?" 171, ...), so that `SentenceEnds.load(evaluation=True)` can take them
out again and `bench.turn_eval` measures phrasings the table never saw. Leaving them out of the
shipped table instead taught it that "Thanks" never ends a sentence (p 0.004 for "Thanks.", 0.39
counted).
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
from collections import Counter
from dataclasses import dataclass, field

from dlm_core.sentence_ends import BUNDLED_TABLE, FORMAT, key, prefix_contexts, words
from dlm_core.tool_calls import CALL_OPEN
from testkit.turn_sentences import SENTENCES
from training.data import REPEATS, load_examples

MAX_ORDER = 3  # the last 1-3 words; a 2-word context measured the same on bench.turn_eval's clips
MIN_COUNT = 5  # 0.5 MB gzipped instead of 6.7 MB for all contexts, the same ROC AUC (0.892 vs 0.890)
ALPHA = 8.0  # back-off weight; 2-16 gave ROC AUC 0.884-0.894 on bench.turn_eval's clips
SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+")


def weighted_texts() -> list[tuple[str, int]]:
    """(turn text, weight) for every distinct plain-text turn of the training split."""
    train, _test = load_examples(0)
    out: dict[str, int] = {}
    for ex in train:
        turns = [m[1] for m in ex.messages if m[0] in ("user", "assistant") and len(m) == 2 and m[1]]
        if CALL_OPEN not in ex.reply:
            turns.append(ex.reply)
        for t in turns:
            out[t] = max(out.get(t, 0), REPEATS[ex.source])
    return list(out.items())


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


def count(texts: list[tuple[str, int]]) -> Counts:
    """Every sentence's prefixes, and which of them were testkit.turn_sentences' sentences."""
    c = Counts(checked=sorted({key(s) for s, _ in SENTENCES}))
    evaluation = set(c.checked)
    for text, weight in texts:
        for sentence in SENTENCE_SPLIT.split(text):
            ws = words(sentence)
            if not ws:
                continue
            c.words, c.sentences = c.words + weight * len(ws), c.sentences + weight
            if (k := " ".join(ws)) in evaluation:
                c.evaluation[k] += weight
            for ctx, ends_here in prefix_contexts(ws, MAX_ORDER):
                c.seen[ctx] += weight
                c.ends[ctx] += weight * ends_here
    return c


def table(c: Counts, min_count: int) -> dict:
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(BUNDLED_TABLE))
    ap.add_argument("--min-count", type=int, default=MIN_COUNT)
    args = ap.parse_args(argv)
    texts = weighted_texts()
    counts = count(texts)
    data = table(counts, args.min_count)
    blob = gzip.compress(json.dumps(data, separators=(",", ":")).encode(), mtime=0)
    with open(args.out, "wb") as f:
        f.write(blob)
    print(
        f"{len(texts)} turns, {len(counts.seen)} contexts, {len(data['counts'])} kept -> {args.out} "
        f"({len(blob)} B); evaluation sentences counted: {dict(counts.evaluation)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
