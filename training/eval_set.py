"""The held-out evaluation set of everyday requests, and the check that says whether a reply is useful.

    items = eval_items()            # >= 100 EvalItem, the same every time
    verdict = item.judge(first_reply, tool_reply)

Requests come from the held-out side of every generator, so the score measures generalising:
- "wording": an intent's or a fact's question in a wording never trained on (training/intents.py,
  training/facts.py, the built-in tool requests of training/tool_builtins.py);
- "fact": a fact the model was only told as a statement ("Tell me about Peru." -> "... its capital is
  Lima."), never asked as a question (training/facts.py HELD_FACT);
- "issue": the six requests of issue 27, as a new user typed them.
`eval_items` drops any request whose text is a training request, so no wording leaks.

A reply is useful when (kinds of `Check`): it says one of the expected words (a greeting says hello, a
capital question names the capital, a film suggestion names a film); it declines (live data, no access);
or, for a tool request, it calls the right built-in with the right arguments (compared by running the
real tool on both) and then, given the tool's result, says the result's numbers.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from assistant.tools.arithmetic import calculate
from assistant.tools.units import convert_units
from dlm_core.tool_calls import ToolCall, parse_tool_calls
from training.facts import HELD_FACT, HELD_WORDING, fact_exchanges
from training.intents import INTENTS, REFUSE, intent_exchanges
from training.tool_builtins import ask_builtin
from training.tool_words import Ask, number_words

EVAL_SEED = 27  # the issue's number: any fixed seed gives one fixed set
PER_INTENT = 3  # held-out requests per intent
WORDING_FACTS = 30  # fact questions in unseen wordings
TOOL_ASKS = 40  # built-in tool requests in unseen wordings
STEM_CHARS = 5  # an expected word this long matches as the start of a word
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?(?::\d\d)?")


@dataclass(frozen=True)
class Check:
    kind: str  # "says" (one of `words`), "declines", or "tool" (the call, then the result spoken)
    words: tuple[str, ...] = ()  # "says": a useful reply contains one of these (case-insensitive)
    asks: tuple[Ask, ...] = ()  # "tool": the right calls (any one) with the tool's result for each


@dataclass(frozen=True)
class EvalItem:
    category: str  # an intent, a fact relation, or a built-in tool's name
    split: str  # "wording", "fact" or "issue"
    user: str
    check: Check
    history: tuple = field(default=())  # earlier (role, text) turns, if any

    def judge(self, reply: str, tool_reply: str | None = None) -> tuple[bool, str]:
        """(useful?, why not). `tool_reply`: what the model said after the tool's result (tool checks)."""
        events = parse_tool_calls(reply)
        calls = [e for e in events if not isinstance(e, str)]
        text = "".join(e for e in events if isinstance(e, str))
        if self.check.kind != "tool":
            if calls:
                return False, "called a tool"
            if self.check.kind == "declines":
                return contains(text, REFUSE), "did not decline"
            return contains(text, self.check.words), "missed the expected words"
        ask = self.matching(reply)
        if ask is None:
            return False, "no call, the wrong one, or wrong arguments"
        if tool_reply is None or parse_tool_calls(tool_reply) != [tool_reply]:
            return False, "no spoken reply after the result"
        return says_result(ask, tool_reply), "did not say the result"

    def matching(self, reply: str) -> Ask | None:
        """The expected call the reply makes (one call, the right tool, equivalent arguments), if any."""
        calls = [e for e in parse_tool_calls(reply) if not isinstance(e, str)]
        if len(calls) != 1 or not isinstance(calls[0], ToolCall):
            return None
        fits = [
            a for a in self.check.asks if a.name == calls[0].name and same_arguments(a, calls[0].arguments)
        ]
        return fits[0] if fits else None


def normal(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9:,.' ]", " ", text.lower().replace("-", " ")).split())


def contains(text: str, words) -> bool:
    """Whether `text` holds one of `words`; a number also counts written as words."""
    said = normal(text).replace(",", "")
    for word in words:
        w = normal(word).replace(",", "").rstrip(".")
        forms = {w} | ({number_words(int(w)).replace("-", " ")} if w.isdigit() and int(w) < 1000 else set())
        if any(re.search(rf"(?<![a-z0-9]){re.escape(f)}{_end(f)}", said) for f in forms if f):
            return True
    return False


def _end(word: str) -> str:
    """A number or a short word must end where the reply's word ends ("hi" is not "his", 3 is not 30);
    a longer word may go on ("congrat" in "congratulations", "breath" in "breaths")."""
    return "" if len(word) >= STEM_CHARS and word[-1].isalpha() else "(?![a-z0-9])"


def says_result(ask: Ask, reply: str) -> bool:
    """The spoken reply after a result holds the numbers (times, amounts) of the reply the data would
    give, or, where that has none ("No timers are running."), most of its words."""
    expected = _NUMBER.findall(ask.reply)
    if expected:
        return all(contains(reply, [n]) for n in expected)
    want = set(normal(ask.reply).split())
    return len(want & set(normal(reply).split())) >= 0.5 * len(want)


def same_arguments(ask: Ask, arguments_json: str) -> bool:
    """The call's arguments do what the expected ones do: for sums and conversions, the real tool gives
    the same result; for timers, the same duration, clock time and label."""
    import json

    try:
        got = json.loads(arguments_json)
    except ValueError:
        return False
    want = ask.arguments
    try:
        if ask.name == "calculate":
            return _value(calculate(str(got.get("expression", "")))) == _value(calculate(want["expression"]))
        if ask.name == "convert_units":
            a = convert_units(float(got["value"]), str(got["from_unit"]), str(got["to_unit"]))
            b = convert_units(float(want["value"]), want["from_unit"], want["to_unit"])
            return _value(a) == _value(b) and a["to_unit"] == b["to_unit"]
    except (ValueError, KeyError, TypeError):
        return False
    if ask.name == "set_timer":
        return _timer(got) == _timer(want)
    return {k: _plain(v) for k, v in got.items()} == {k: _plain(v) for k, v in want.items()}


def _value(result: dict):
    value = result.get("result")
    return round(float(value), 6) if isinstance(value, (int, float)) else None


def _plain(value):
    return normal(str(value)).removeprefix("the ").removeprefix("my ") if isinstance(value, str) else value


def _timer(args: dict) -> tuple:
    seconds = sum(float(args.get(k) or 0) * m for k, m in (("seconds", 1), ("minutes", 60), ("hours", 3600)))
    return round(seconds), _plain(args.get("at") or ""), _plain(args.get("label") or "")


def _intent_items(rng: random.Random) -> list[EvalItem]:
    out = []
    for intent in INTENTS:
        rows = {q.user.lower().rstrip(".?!"): q for q in intent_exchanges(rng, True, 4 * PER_INTENT)
                if q.intent == intent.name}  # fmt: skip
        for q in list(rows.values())[:PER_INTENT]:
            kind = "declines" if intent.name in ("live_data", "no_access") else "says"
            out.append(EvalItem(intent.name, "wording", q.user, Check(kind, tuple(q.expect))))
    return out


def _answer_words(answer: str) -> tuple[str, ...]:
    """ "Paris, France" -> ("Paris",): the place's first part; "the Himalayas" -> ("Himalayas",)."""
    first = answer.split(",")[0].strip()
    return (first.removeprefix("the "),)


def _fact_items(rng: random.Random) -> list[EvalItem]:
    worded = fact_exchanges(rng, HELD_WORDING)
    chosen = rng.sample(worded, WORDING_FACTS)
    out = [EvalItem(q.relation, "wording", q.user, Check("says", _answer_words(q.answer))) for q in chosen]
    held = fact_exchanges(rng, HELD_FACT)
    return out + [EvalItem(q.relation, "fact", q.user, Check("says", _answer_words(q.answer))) for q in held]


def _tool_items(rng: random.Random) -> list[EvalItem]:
    out, seen = [], set()
    while len(out) < TOOL_ASKS:
        ask = ask_builtin(rng, held=True)
        if ask.user.lower() in seen or "error" in ask.result:
            continue  # the tools' error replies are trained, but a request that fails is not everyday
        seen.add(ask.user.lower())
        out.append(EvalItem(ask.name, "wording", ask.user, Check("tool", asks=(ask,))))
    return out


def _issue_items() -> list[EvalItem]:
    """Issue 27's six requests, with what a useful answer needs."""
    plants = []  # "at six": morning or evening, both fine; the tool's result as it words it
    for at, clock in (("18:00", "6:00 PM"), ("06:00", "6:00 AM")):
        text = f"Reminder set for {clock}: water the plants."
        result = {"id": "timer_1", "label": "water the plants", "seconds": 3600.0, "text": text}
        plants.append(Ask("", "set_timer", {"at": at, "label": "water the plants"}, result, text))
    nine = {"expression": "9 / 3", "result": 3, "text": "9 divided by 3 is 3"}
    divide = Ask("", "calculate", {"expression": "9 / 3"}, nine, "9 divided by 3 is 3.")
    return [
        EvalItem("plan_morning", "issue", "Can you help me plan my morning?",
                 Check("says", ("breakfast", "task", "list", "plan"))),
        EvalItem("trivia", "issue", "How long should I boil an egg?", Check("says", ("minutes",))),
        EvalItem("set_timer", "issue", "Remind me to water the plants at six.",
                 Check("tool", asks=tuple(plants))),
        EvalItem("calculate", "issue", "What is nine divided by three?", Check("tool", asks=(divide,))),
        EvalItem("landmark", "issue", "Where is the Eiffel Tower?", Check("says", ("Paris",))),
        EvalItem("cant_sleep", "issue", "I can't sleep.",
                 Check("says", ("breath", "phone", "screen", "room"))),
    ]  # fmt: skip


def eval_items(train_requests: set[str] | None = None) -> list[EvalItem]:
    """The evaluation set. `train_requests` (lower-cased request texts of the training split): items
    whose request was trained on are dropped (the issue's six stay: they are the issue's yardstick)."""
    rng = random.Random(EVAL_SEED)
    items = _intent_items(rng) + _fact_items(rng) + _tool_items(rng)
    if train_requests:
        items = [it for it in items if key(it.user) not in train_requests]
    return items + _issue_items()


def key(text: str) -> str:
    return text.lower().strip().rstrip(".?!")
