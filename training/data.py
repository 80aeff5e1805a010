"""Training conversations from offline sources, normalised to short speakable turns.

Sources (all read from installed PyPI packages, no network):
- chitchat-dataset (MIT): casual two-person chats; each reply comes with up to two earlier turns.
- chatterbot-corpus (BSD-3-Clause), English files: short assistant-style question/answer pairs.
- training.templates (this repo): everyday voice-assistant exchanges.
- training.intents (this repo, data v2): everyday requests that need no tool, by intent.
- training.facts (this repo, data v2): widely known facts as questions and answers.
- training.tool_data (this repo): synthetic tool use, with the tools offered in the prompt.
Since data v2 the casual chitchat and chatterbot sources weigh 0 (REPEATS) and are not loaded: they
taught the model to be one of two people chatting, not an assistant, and the template topics that
the built-in tools now serve (time, date, sums) are left out (V2_TEMPLATE_TOPICS).

The held-out split is decided by a hash of each example's group key (a chitchat conversation id, a
chatterbot file+index, a template's user text), so it is fixed before training and independent
of the shuffle seed. The tool data draws its own held-out split (other wordings, other functions).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path

from training import templates
from training.examples import (
    CHATTERBOT,
    CHITCHAT,
    FACTS,
    INTENTS,
    REPEATS,
    SYSTEM_PROMPTS,
    TEMPLATES,
    Example,
)
from training.facts import HELD_FACT, HELD_WORDING, TRAIN, fact_exchanges
from training.intents import intent_exchanges
from training.tool_data import BUILTIN_TOOLS, system_turn, tool_examples

# training.templates topics kept in data v2: the rest are served by training.intents or by the tools.
V2_TEMPLATE_TOPICS = ("confirm", "deny", "sorry", "compliment", "insult", "repeat", "fact")
INTENT_ROWS = 300  # training rows per intent (training.intents)
HELD_INTENT_ROWS = 8  # held-out rows per intent, in held-out wordings
MAX_REPLY_WORDS = 30  # a spoken reply stays short
MIN_CHAT_REPLY_WORDS = 3  # chitchat: "Yeah." / "Oh." teach an assistant to say nothing
MAX_TURN_WORDS = 40  # earlier turns in the prompt
HISTORY_TURNS = 2  # chitchat: earlier turns kept before the reply's prompt turn
TEST_PERCENT = 2  # share of groups held out
SYSTEM_SHARE = 0.15  # share of examples that start with a system turn (the server may send one)

_URL = re.compile(r"https?://|www\.|\.com\b")
_SPACES = re.compile(r"\s+")
_LONE_I = re.compile(r"\bi\b")
_FIXES = {
    r"\bim\b": "I'm",
    r"\bive\b": "I've",
    r"\bdont\b": "don't",
    r"\bcant\b": "can't",
    r"\bdidnt\b": "didn't",
    r"\bdoesnt\b": "doesn't",
    r"\bisnt\b": "isn't",
    r"\bwont\b": "won't",
    r"\bthats\b": "that's",
    r"\bwhats\b": "what's",
    r"\byoure\b": "you're",
    r"\bu\b": "you",
    r"\bur\b": "your",
    r"\bidk\b": "I don't know",
    r"\bill\b(?= be| have| go| try| do| see)": "I'll",
}
_FIXES = [(re.compile(k, re.IGNORECASE), v) for k, v in _FIXES.items()]
_STRETCH = re.compile(r"(.)\1{4,}")  # "eeeeehhh", "!!!!!"
_NOISE = re.compile(r"\b(lol|lmao|lmfao|rofl|haha+|hahaha+|hehe+|xd|omg)\b[.!]*", re.IGNORECASE)


def normalize(text: str) -> str | None:
    """Clean a turn into speakable text, or None if it is unusable (links, non-ASCII, empty)."""
    text = _SPACES.sub(" ", str(text)).strip()
    if not text or _URL.search(text) or not text.isascii() or _STRETCH.search(text):
        return None
    if sum(c.isupper() for c in text) > 0.5 * sum(c.isalpha() for c in text):
        text = text.lower()  # shouting in a text chat is not how a voice assistant speaks
    text = _NOISE.sub("", text)
    for pattern, repl in _FIXES:
        text = pattern.sub(repl, text)
    text = _LONE_I.sub("I", text)
    text = _SPACES.sub(" ", text).strip(" ,")
    if not re.search(r"[A-Za-z]", text):
        return None
    text = text[0].upper() + text[1:]
    if text[-1] not in ".!?":
        text += (
            "?"
            if re.match(
                r"(what|how|why|who|where|when|do|does|did|are|is|can|could|would|will)\b",
                text,
                re.IGNORECASE,
            )
            else "."
        )
    return text


def _words(text: str) -> int:
    return len(text.split())


def shorten(text: str, limit: int) -> str | None:
    """Keep whole leading sentences up to `limit` words; None if even the first is too long."""
    if _words(text) <= limit:
        return text
    out = []
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        if _words(" ".join(out + [sentence])) > limit:
            break
        out.append(sentence)
    return " ".join(out) if out else None


def is_test(group: str) -> bool:
    return int(hashlib.md5(group.encode()).hexdigest()[:8], 16) % 100 < TEST_PERCENT


def chitchat_examples() -> list[Example]:
    import chitchat_dataset

    path = Path(chitchat_dataset.__file__).parent / "dataset.json"
    data = json.loads(path.read_text())
    out = []
    for conv_id, conv in data.items():
        turns = []
        for group in conv["messages"]:
            t = normalize(" ".join(m["text"] for m in group))
            turns.append(shorten(t, MAX_TURN_WORDS) if t else None)
        for i in range(1, len(turns)):
            reply, prev = turns[i], turns[i - 1]
            if not reply or not prev or not MIN_CHAT_REPLY_WORDS <= _words(reply) <= MAX_REPLY_WORDS:
                continue
            history = []
            for j in range(i - 1, max(-1, i - 2 - HISTORY_TURNS), -1):
                if turns[j] is None:
                    break
                history.append(("user" if (i - 1 - j) % 2 == 0 else "assistant", turns[j]))
            out.append(Example(tuple(reversed(history)), reply, CHITCHAT, f"{CHITCHAT}:{conv_id}"))
    return out


def chatterbot_examples() -> list[Example]:
    import chatterbot_corpus
    import yaml

    out = []
    for path in sorted((Path(chatterbot_corpus.__file__).parent / "data" / "english").glob("*.yml")):
        for n, conv in enumerate(yaml.safe_load(path.read_text()).get("conversations", [])):
            turns = [normalize(t) for t in conv if isinstance(t, str)]
            for i in range(1, len(turns)):
                prompt, reply = turns[i - 1], turns[i] and shorten(turns[i], MAX_REPLY_WORDS)
                if prompt and reply and _words(prompt) <= MAX_TURN_WORDS:
                    out.append(
                        Example((("user", prompt),), reply, CHATTERBOT, f"{CHATTERBOT}:{path.stem}:{n}")
                    )
    return out


def template_examples(seed: int) -> list[Example]:
    seen, out = set(), []
    for topic, user, reply in templates.exchanges(random.Random(seed)):
        if topic in V2_TEMPLATE_TOPICS and (user, reply) not in seen:
            seen.add((user, reply))
            out.append(Example((("user", user),), reply, TEMPLATES, f"{TEMPLATES}:{user}"))
    return out


def assistant_examples(seed: int, scale: float = 1.0) -> tuple[list[Example], list[Example]]:
    """(train, held-out) rows of data v2's intents and facts, each with the server's system turn mostly
    and the built-in tools on offer, as the server offers them (they render as nothing). `scale`
    (at least 1) multiplies the training rows per intent; the rows past the first INTENT_ROWS come from
    a generator of their own, so every other row stays the same at any scale."""
    rng = random.Random(seed)
    rows = {
        "train": [(q.user, q.reply, INTENTS, q.group) for q in intent_exchanges(rng, False, INTENT_ROWS)]
        + [(q.user, q.reply, FACTS, q.group) for q in fact_exchanges(rng, TRAIN)],
        "test": [(q.user, q.reply, INTENTS, q.group) for q in intent_exchanges(rng, True, HELD_INTENT_ROWS)]
        + [
            (q.user, q.reply, FACTS, q.group)
            for s in (HELD_WORDING, HELD_FACT)
            for q in fact_exchanges(rng, s)
        ],
    }
    more = random.Random(f"{seed}:more")
    rows["more"] = [
        (q.user, q.reply, INTENTS, q.group)
        for q in intent_exchanges(more, False, round((scale - 1) * INTENT_ROWS))
    ]

    def example(r: random.Random, user, reply, source, group) -> Example:
        return Example((*system_turn(r), ("user", user)), reply, source, group, tuple(BUILTIN_TOOLS))

    out = {split: [example(rng, *item) for item in rows[split]] for split in ("train", "test")}
    return out["train"] + [example(more, *item) for item in rows["more"]], out["test"]


def load_examples(seed: int = 0, scale: float = 1.0) -> tuple[list[Example], list[Example]]:
    """(train, test) lists. A share of training examples get a system turn, drawn with `seed`; the tool
    examples (which draw their own system turns) follow the others. Sources weighing 0 are not read.
    `scale` multiplies the generated training rows (TrainConfig.data_scale); the test list is the same."""
    rng = random.Random(seed)
    train, test = [], []
    readers = {CHITCHAT: chitchat_examples, CHATTERBOT: chatterbot_examples}
    legacy = [ex for name, read in readers.items() if REPEATS[name] for ex in read()]
    for ex in legacy + template_examples(seed):
        if is_test(ex.group):
            test.append(ex)
            continue
        if rng.random() < SYSTEM_SHARE:
            ex = Example(
                (("system", rng.choice(SYSTEM_PROMPTS)),) + ex.messages, ex.reply, ex.source, ex.group
            )
        train.append(ex)
    assist_train, assist_test = assistant_examples(seed, scale)
    tool_train, tool_test = tool_examples(seed, scale, held_scale=1.0)
    return train + assist_train + tool_train, test + assist_test + tool_test
