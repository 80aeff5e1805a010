"""Requests for the built-in tools, the calls they should become, and simulated tool results.

Each `ask_*` function draws one `Ask`: a transcribed request ("Set a 10 minute timer for the pasta."),
the call ({"minutes": 10, "label": "pasta"}), a result shaped exactly like the real tool's
(assistant/tools; tests/test_train.py compares them) and a short spoken reply that uses it. `held`
selects the held-out phrasings (tool_words.pick), so held-out requests are worded unlike training ones.
Timers, clocks and the wording of results are simulated here: the training code does not import the
assistant.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

from training.tool_timers import ask_cancel_timer, ask_list_timers, ask_set_timer
from training.tool_units import ask_convert
from training.tool_words import (
    ERROR_SHARE,
    Ask,
    failed,
    pick,
    random_now,
    say,
    say_clock,
    sentence,
    spoken_number,
    tidy,
    transcript,
)

# ---- get_time -----------------------------------------------------------------------------------

TIME_ASKS = {
    "time": [
        "What time is it", "What's the time", "Do you know what time it is", "Can you tell me the time",
        "What time is it now", "What's the time right now", "How late is it", "Tell me the time",
        "Time please", "Have you got the time", "What time is it right now", "Could you tell me the time",
    ],
    "date": [
        "What's the date today", "What's today's date", "What is the date", "What date is it",
        "Do you know the date", "What's the date", "Tell me today's date", "What month is it",
        "What year is it", "Can you tell me the date", "What is today's date",
    ],
    "weekday": [
        "What day is it", "What day of the week is it", "What day is it today", "Which day is it today",
        "Remind me what day it is", "What day is today", "Do you know what day it is",
    ],
    "is_day": [
        "Is it {day} today", "Is today {day}", "Is it {day}", "It's {day} today, right",
        "Today's {day}, isn't it",
    ],
    "later": [
        "What time will it be in {n} hours", "What time is it in {n} hours",
        "In {n} hours, what time will it be",
        "What's the time {n} hours from now", "What will the time be in {n} hours",
        "Tell me the time in {n} hours", "If I leave in {n} hours, what time is that",
        "What time is {n} hours from now", "Add {n} hours to the time",
        "Where will the clock be in {n} hours",
    ],
    "both": [
        "What's the time and date", "What time and day is it", "Tell me the time and the date",
        "What's the date and time", "Give me the date and time", "What time is it and what day",
    ],
}  # fmt: skip
TIME_REPLIES = {
    "time": ["It's {time}.", "It's {time} right now.", "The time is {time}.", "It's {time} now."],
    "date": ["Today is {date}.", "It's {date}.", "The date is {date}."],
    "weekday": ["It's {weekday}.", "Today is {weekday}.", "It's {weekday} today."],
    "yes": ["Yes, it's {weekday}.", "Yes, today is {weekday}.", "Yes, it's {weekday} today."],
    "no": ["No, it's {weekday}.", "No, today is {weekday}.", "No, it's {date}."],
    "both": ["{text}", "{text}", "It's {time}, and today is {date}."],
    "later": ["In {n} hours it will be {later}.", "It's {time} now, so in {n} hours it will be {later}."],
}
LATER_HOURS = (1, 12)  # "what time will it be in N hours": N drawn from this range
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def time_result(now: datetime) -> dict:
    """get_time's answer for `now` (assistant/tools/clock.py)."""
    return {
        "time": say_clock(now),
        "date": f"{now:%A}, {now:%B} {now.day}, {now.year}",
        "weekday": f"{now:%A}",
        "timezone": now.tzname(),
        "iso": now.isoformat(timespec="seconds"),
        "text": f"It's {say_clock(now)} on {now:%A}, {now:%B} {now.day}.",
    }


def ask_time(rng: random.Random, held: bool) -> Ask:
    kind = rng.choices(list(TIME_ASKS), weights=[5, 3, 2, 1, 2, 1])[0]
    now = random_now(rng)
    result = time_result(now)
    day = result["weekday"] if rng.random() < 0.5 else rng.choice(WEEKDAYS)
    n = rng.randint(*LATER_HOURS)
    user = pick(rng, TIME_ASKS[kind], held).format(day=day, n=spoken_number(n, rng))
    if kind == "is_day":
        kind = "yes" if day == result["weekday"] else "no"
    # The model adds the hours to the tool's clock time itself: get_time has no offset argument.
    slots = result | {"n": n, "later": say_clock(now + timedelta(hours=n))}
    return Ask(transcript(user, rng), "get_time", {}, result, rng.choice(TIME_REPLIES[kind]).format(**slots))


# ---- calculate ----------------------------------------------------------------------------------

CALC_ASKS = {
    "+": [
        "What's {a} plus {b}", "What is {a} plus {b}", "{a} plus {b}", "Add {a} and {b}",
        "How much is {a} plus {b}", "What's {a} + {b}", "Calculate {a} plus {b}",
        "What do {a} and {b} add up to",
        "Can you add {a} and {b}", "{a} + {b}",
    ],
    "-": [
        "What's {a} minus {b}", "{a} minus {b}", "What is {a} take away {b}", "Subtract {b} from {a}",
        "How much is {a} minus {b}", "What's {a} - {b}", "Take {b} away from {a}", "Calculate {a} minus {b}",
        "What's {a} take away {b}", "{a} take away {b}",
    ],
    "*": [
        "What's {a} times {b}", "{a} times {b}", "Multiply {a} by {b}", "What is {a} multiplied by {b}",
        "How much is {a} times {b}", "What's {a} x {b}", "Calculate {a} times {b}", "What are {a} times {b}",
        "{a} multiplied by {b}", "What's {a} * {b}",
    ],
    "/": [
        "What's {a} divided by {b}", "{a} divided by {b}", "Divide {a} by {b}", "What is {a} over {b}",
        "How much is {a} divided by {b}", "What's {a} / {b}", "Calculate {a} divided by {b}",
        "Split {a} {b} ways", "What do you get if you divide {a} by {b}", "{a} over {b}",
    ],
    "%": [
        "What's {a} percent of {b}", "What is {a}% of {b}", "{a} percent of {b}",
        "Calculate {a} percent of {b}",
        "How much is {a}% of {b}", "What's a {a} percent tip on {b}", "What's {a} percent of {b} dollars",
        "Work out {a} percent of {b}", "How much is a {a}% tip on {b} dollars", "{a}% of {b}",
    ],
    "^": [
        "What's {a} to the power of {b}", "{a} to the power of {b}", "What is {a} raised to the power of {b}",
        "Calculate {a} to the power of {b}", "What's {a} to the {b}", "{a} raised to the {b}",
    ],
    "sq": [
        "What's {a} squared", "{a} squared", "What is {a} squared", "Calculate {a} squared",
        "How much is {a} squared",
    ],
    "sqrt": [
        "What's the square root of {a}", "Square root of {a}", "What is the square root of {a}",
        "Calculate the square root of {a}", "Work out the square root of {a}", "What's the root of {a}",
    ],
    "()": [
        "What's {a} plus {b}, times {c}", "Add {a} and {b} and multiply by {c}",
        "What's {a} plus {b}, all times {c}",
        "Take {a} plus {b} and multiply it by {c}", "{a} plus {b}, then times {c}",
    ],
}  # fmt: skip
CALC_WEIGHTS = {"+": 4, "-": 3, "*": 5, "/": 3, "%": 3, "^": 1, "sq": 1, "sqrt": 1, "()": 1}
CALC_REPLIES = ["{Text}.", "{Text}.", "{Text}.", "That's {r}.", "It's {r}.", "The answer is {r}.", "{r}."]
SPOKEN_OPS = {"+": "plus", "-": "minus", "*": "times", "/": "divided by"}
PERCENTS = [5, 10, 12, 15, 18, 20, 25, 30, 40, 50, 75]


def _operand(rng: random.Random) -> int | float:
    roll = rng.random()
    if roll < 0.7:
        return rng.randint(2, 20) if rng.random() < 0.5 else rng.randint(2, 100)
    if roll < 0.9:
        return rng.randint(100, 9999)
    return rng.randint(1, 99) + rng.choice([0.5, 0.25, 0.75, 0.1])


def _expression(op: str, rng: random.Random) -> tuple[list, str, str, float]:
    """(operands, expression for the tool, its spoken form as the tool says it, value)."""
    a, b = _operand(rng), _operand(rng)
    if op == "/":
        a = a * b if rng.random() < 0.7 and isinstance(a, int) and isinstance(b, int) and a < 100 else a
        return [a, b], f"{say(a)} / {say(b)}", f"{say(a)} divided by {say(b)}", a / b
    if op in SPOKEN_OPS:
        value = {"+": a + b, "-": a - b, "*": a * b}[op]
        return [a, b], f"{say(a)} {op} {say(b)}", f"{say(a)} {SPOKEN_OPS[op]} {say(b)}", value
    if op == "%":
        a, b = rng.choice(PERCENTS), rng.randint(2, 50) * rng.choice([1, 2, 5, 10])
        return [a, b], f"{a}% of {b}", f"{a} percent of {b}", a / 100 * b
    if op in ("^", "sq"):
        a, b = rng.randint(2, 12), 2 if op == "sq" else rng.randint(3, 8)
        said = {2: f"{a} squared", 3: f"{a} cubed"}.get(b, f"{a} to the power of {b}")
        return [a, b], f"{a} ** {b}", said, a**b
    if op == "sqrt":
        a = rng.randint(2, 20) ** 2 if rng.random() < 0.8 else rng.randint(2, 200)
        return [a], f"sqrt({a})", f"the square root of {a}", math.sqrt(a)
    a, b, c = rng.randint(2, 30), rng.randint(2, 30), rng.randint(2, 12)
    return [a, b, c], f"({a} + {b}) * {c}", f"({a} plus {b}) times {c}", (a + b) * c


def _calc_error(rng: random.Random, held: bool) -> tuple[str, str, str]:
    """(request, expression, error) for sums the tool refuses."""
    a = rng.randint(2, 100)
    if rng.random() < 0.6:
        asks = pick(rng, CALC_ASKS["/"], held, keep=lambda x: not x.startswith("Split"))
        user = asks.format(a=spoken_number(a, rng), b="zero")
        return user, f"{a} / 0", "Cannot divide by zero."
    user = pick(rng, CALC_ASKS["sqrt"], held).format(a=f"minus {spoken_number(a, rng)}")
    return user, f"sqrt(-{a})", "Cannot take the square root of a negative number."


def ask_calculate(rng: random.Random, held: bool) -> Ask:
    if rng.random() < ERROR_SHARE:
        user, expression, error = _calc_error(rng, held)
        return Ask(
            transcript(user, rng),
            "calculate",
            {"expression": expression},
            {"error": error},
            failed(error, rng),
        )
    op = rng.choices(list(CALC_WEIGHTS), weights=list(CALC_WEIGHTS.values()))[0]
    operands, expression, said, value = _expression(op, rng)
    names = dict(zip("abc", (spoken_number(x, rng) for x in operands)))
    user = pick(rng, CALC_ASKS[op], held).format(**names)
    result = tidy(value)
    text = f"{said} is {say(result)}"
    reply = rng.choice(CALC_REPLIES).format(Text=text[0].upper() + text[1:], r=say(result))
    answer = {"expression": expression, "result": result, "text": text}
    return Ask(transcript(user, rng), "calculate", {"expression": expression}, answer, sentence(reply))


# The generators by tool, and each one's share of the built-in requests.
BUILTIN_ASKS = {
    "get_time": (ask_time, 14),
    "calculate": (ask_calculate, 26),
    "convert_units": (ask_convert, 20),
    "set_timer": (ask_set_timer, 24),
    "list_timers": (ask_list_timers, 6),
    "cancel_timer": (ask_cancel_timer, 10),
}


def ask_builtin(rng: random.Random, held: bool) -> Ask:
    """One request for a built-in tool, the tools drawn by their shares."""
    makers = [maker for maker, _ in BUILTIN_ASKS.values()]
    return rng.choices(makers, weights=[w for _, w in BUILTIN_ASKS.values()])[0](rng, held)
