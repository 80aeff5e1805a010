"""Count where sentences end in our training conversations: the table of dlm_core.sentence_ends.

    python -m training.sentence_ends [--out PATH] [--min-count 5]   # needs the `train` extra (~40 s)

Every turn of the training split (chitchat, chatterbot, the templates, the tool conversations' user and
assistant words; not tool-call markup) is cut into sentences at . ! ?, and each sentence into its
prefixes: a prefix is a whole sentence once, an unfinished one for every other word. For the last one to
`MAX_ORDER` words of each prefix we count both, weighing each source as training does (`REPEATS`: the
small assistant-style sources count more than casual chat). Contexts seen fewer than `min_count` times
are dropped; the model backs off to shorter ones there. The sentences of the end-of-turn evaluation
set (testkit.turn_sentences) are left out, so `bench.turn_eval` measures phrasings the table never saw
whole.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
from collections import Counter

from dlm_core.sentence_ends import BUNDLED_TABLE, FORMAT, contexts, words
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


def count(texts: list[tuple[str, int]]) -> tuple[Counter, Counter, float]:
    """(ends, seen) per context, and the overall share of words that end a sentence."""
    held_out = {tuple(words(s)) for s, _ in SENTENCES}
    ends: Counter = Counter()
    seen: Counter = Counter()
    n_words = n_sentences = 0
    for text, weight in texts:
        for sentence in SENTENCE_SPLIT.split(text):
            ws = words(sentence)
            if not ws or tuple(ws) in held_out:
                continue
            n_words, n_sentences = n_words + weight * len(ws), n_sentences + weight
            for i in range(len(ws)):
                for ctx in contexts(ws[: i + 1], MAX_ORDER):
                    seen[ctx] += weight
                    ends[ctx] += weight * (i == len(ws) - 1)
    return ends, seen, n_sentences / n_words


def table(ends: Counter, seen: Counter, prior: float, min_count: int) -> dict:
    kept = {ctx: [ends[ctx], n] for ctx, n in sorted(seen.items()) if n >= min_count}
    return {"format": FORMAT, "max_order": MAX_ORDER, "alpha": ALPHA, "prior": prior, "counts": kept}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(BUNDLED_TABLE))
    ap.add_argument("--min-count", type=int, default=MIN_COUNT)
    args = ap.parse_args(argv)
    texts = weighted_texts()
    ends, seen, prior = count(texts)
    data = table(ends, seen, prior, args.min_count)
    blob = gzip.compress(json.dumps(data, separators=(",", ":")).encode(), mtime=0)
    with open(args.out, "wb") as f:
        f.write(blob)
    print(
        f"{len(texts)} turns, {len(seen)} contexts, {len(data['counts'])} kept -> {args.out} ({len(blob)} B)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
