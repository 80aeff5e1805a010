"""Count where sentences end in our training conversations: the table of turn_taking.sentence_ends.

    python -m training.sentence_ends [--out PATH] [--min-count 5]   # needs the `train` extra (~40 s)

Every turn of the training split (chitchat, chatterbot, the templates, the tool conversations' user and
assistant words; not tool-call markup) is counted by `turn_taking.sentence_ends.count`, each source
weighed as training weighs it (`REPEATS`: the small assistant-style sources count more than casual chat).

Every sentence is counted, also those of the end-of-turn evaluation set (training.turn_sentences). The
table records how often each of those occurs whole (18 of the 66 do: "Okay." 614 weighted times,
"Thanks." 317, "How are you?" 171, ...), so that `SentenceEnds.load(evaluation=True)` can take them
out again and `bench.turn_eval` measures phrasings the table never saw. Leaving them out of the
shipped table instead taught it that "Thanks" never ends a sentence (p 0.004 for "Thanks.", 0.39
counted).
"""

from __future__ import annotations

import argparse
import gzip
import json

from dlm_core.tool_calls import CALL_OPEN
from training.data import load_examples
from training.examples import REPEATS
from training.turn_sentences import SENTENCES
from turn_taking.sentence_ends import BUNDLED_TABLE, MIN_COUNT, count, table


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(BUNDLED_TABLE))
    ap.add_argument("--min-count", type=int, default=MIN_COUNT)
    args = ap.parse_args(argv)
    texts = weighted_texts()
    counts = count(texts, [s for s, _ in SENTENCES])
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
