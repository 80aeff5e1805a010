"""Words for the tool-use training data: numbers as a speech recogniser writes them, clock times and
durations as the built-in tools say them, and the tools' rounding.

The rules whose output the model must learn to copy (`tidy`, `say`, `say_clock`, `say_duration`) are
the built-in tools' own (assistant/tools), imported here for the other tool_* modules. `Ask` is the
record every generator of the tool data returns.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

# The tools' own wording, so that results in the training data read exactly as the tools write them.
from assistant.tools.clock import say_clock  # noqa: F401 -- used by the other tool_* modules
from assistant.tools.numbers import say, tidy  # noqa: F401
from assistant.tools.timers import say_duration  # noqa: F401

ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
# How often a number is written as words, as Whisper does for small numbers ("nine times eight") and
# rarely for larger ones ("Set a timer for 45 minutes").
WORDS_SHARE_SMALL, WORDS_SHARE_LARGE = 0.35, 0.1
SMALL = 20  # up to here a number counts as small
MEASURE_DIGITS = 6  # the convert_units tool's
SPOKEN_DIGITS = 4  # significant digits of a conversion's spoken text
ERROR_SHARE = 0.07  # requests whose call fails (the reply then says so)
TIMEZONES = [
    ("UTC", 0),
    ("GMT", 0),
    ("CET", 1),
    ("EET", 2),
    ("EST", -5),
    ("CST", -6),
    ("PST", -8),
    ("JST", 9),
]
YEARS = 4  # simulated clocks fall in 2025..2028
RAW_SHARE = 0.2  # requests left as lower case without end punctuation (typed, or another recogniser)
_QUESTION_WORDS = set(
    "what how when where who which why is are am do does did can could will would any has have should".split()
)


@dataclass(frozen=True)
class Ask:
    """One tool use, as every generator of the tool data returns it."""

    user: str  # the request, as a speech recogniser writes it
    name: str  # the tool that serves it
    arguments: dict  # the call's arguments
    result: dict  # what the tool answers (a JSON object; {"error": ...} when it failed)
    reply: str  # what the assistant then says


def number_words(n: int) -> str:
    """0..999 in words: "nine", "forty-five", "one hundred and twenty"."""
    if not 0 <= n < 1000:
        raise ValueError(f"number_words takes 0..999, got {n}")
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else "-" + ONES[n % 10])
    rest = n % 100
    return f"{ONES[n // 100]} hundred" + (f" and {number_words(rest)}" if rest else "")


def spoken_number(n: int | float, rng: random.Random) -> str:
    """A number as a transcript shows it: digits, or words now and then for whole numbers below 100."""
    if isinstance(n, float) and not n.is_integer():
        return say(n)
    n = int(n)
    share = WORDS_SHARE_SMALL if 0 <= n <= SMALL else WORDS_SHARE_LARGE if 0 <= n < 100 else 0.0
    if rng.random() < share:
        return number_words(n)
    return f"{n:,}" if n >= 10000 and rng.random() < 0.5 else str(n)


def transcript(text: str, rng: random.Random) -> str:
    """A request as a recogniser writes it: sentence case with end punctuation, or now and then raw."""
    text = " ".join(text.split())
    if rng.random() < RAW_SHARE:
        return text.rstrip(".?!").lower()
    text = text[0].upper() + text[1:]
    if text[-1] not in ".?!":
        first = text.split()[0].lower().strip(",").split("'")[0]
        text += "?" if first in _QUESTION_WORDS else "."
    return text


def sentence(text: str) -> str:
    """A reply: capitalised, ending in a full stop unless it already ends a sentence."""
    text = " ".join(text.split())
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".?!" else text + "."


def lower_first(text: str) -> str:
    """ "Cannot divide by zero." -> "cannot divide by zero." (but "I don't know..." keeps its "I")."""
    if text[:2] in ("I ", "I'") or text[1:2].isupper():
        return text
    return text[:1].lower() + text[1:]


def pick(rng: random.Random, items, held: bool, keep=None, every: int = 5):
    """One of `items` (those `keep` accepts): held-out examples draw only every `every`-th item,
    training ones the rest, so held-out phrasings are never trained on (lists shorter than `every`
    are shared). The split is by position in the whole list, so it does not depend on `keep`."""
    items = list(items)
    shared = len(items) < every
    part = [x for i, x in enumerate(items) if (shared or (i % every == every - 1) == held)]
    part = [x for x in part if keep is None or keep(x)]
    if not part:
        raise ValueError(f"nothing to pick ({'held-out' if held else 'training'}) from {items[:3]}...")
    return rng.choice(part)


def random_now(rng: random.Random) -> datetime:
    name, hours = rng.choice(TIMEZONES)
    start = datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=hours), name))
    return start + timedelta(seconds=rng.randrange(YEARS * 365 * 86400))


def failed(error: str, rng: random.Random) -> str:
    """The honest reply to a tool's {"error": ...}."""
    lead = rng.choice(
        ["Sorry, I couldn't do that:", "Sorry, that didn't work:", "Sorry, I couldn't do that:"]
    )
    return f"{lead} {lower_first(error)}"
