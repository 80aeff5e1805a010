"""A reply that says a built-in tool's result says the tool's numbers, never the model's own.

The default model is small: copying "It's 9:56 PM" or "828 divided by 18 is 46" from a tool's result,
it can misread a digit, and a person who asked for the time or a sum must not hear a wrong one. So the
words the model says after a built-in tool's result are held until that pass ends (one short sentence:
tens of milliseconds of LM time) and checked: if they hold a number that is neither in the result nor
in the conversation's last request, or miss the number a sum comes to (the result's "result"), the
tool's own spoken sentence (its "text") is said instead.

    grounded("It's 9:56 PM.", '{"time": "21:56", "text": "It's 9:56 PM on Monday."}', "what time is it")
    # -> "It's 9:56 PM."; "It's 9:65 PM." -> "It's 9:56 PM on Monday."

Numbers written as words ("five minutes") are not checked: the models write numbers as digits.
"""

from __future__ import annotations

import json
import re

NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")


def canonical(number: str) -> str:
    """One spelling per value: "1,000" = "1000", "0.30" = "0.3", "08:15" = "8:15"."""
    parts = number.replace(",", "").split(":")
    out = []
    for part in parts:
        whole, _, frac = part.partition(".")
        frac = frac.rstrip("0")
        out.append(str(int(whole)) + (f".{frac}" if frac else ""))
    return ":".join(out)


def numbers(text: str) -> set[str]:
    return {canonical(m.rstrip(".,:")) for m in NUMBER.findall(text)}


def fields(output: str) -> dict:
    """A tool's JSON output as a dict ({} when it is not a JSON object)."""
    try:
        value = json.loads(output)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def grounded(reply: str, output: str, request: str = "") -> str:
    """`reply` if every number it says is in the tool's `output` or the `request`, and it says the
    output's "result" where there is a numeric one (a sum: "9 divided by 3 is 3", not "It is 9"); else
    the tool's own sentence, its "text" (the reply itself where the tool has none)."""
    said, result = numbers(reply), fields(output)
    answer = result.get("result")
    needed = (
        numbers(f"{abs(answer)}")
        if isinstance(answer, int | float) and not isinstance(answer, bool)
        else set()
    )
    if said <= numbers(output) | numbers(request) and (len(needed) != 1 or needed <= said):
        return reply
    text = result.get("text")
    return text if isinstance(text, str) and text.strip() else reply
