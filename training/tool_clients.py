"""Made-up client functions (the tools a Realtime client offers), for the model to learn calling tools it
has never seen: read the list, pick the function the request needs, copy its name and fill the arguments
from the request.

Each `ClientTool` is data: the names it is offered under, a description, JSON-schema parameters, request
wordings with `{param}` slots, how the client answers and how the assistant says the answer. The
functions themselves are listed in training/tool_catalog.py.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass

from training import templates
from training.tool_timers import clock_time
from training.tool_words import Ask, failed, sentence, spoken_number, transcript

CLIENT_ERROR_SHARE = 0.06  # calls the client answers with {"error": ...}
CAMEL_SHARE = 0.15  # functions offered under a camelCase name ("getWeather")
# Training functions offered under a name made up for the example ("query_forecast"), so the model
# copies the name from the list instead of recalling the few names it has seen (data v3).
COINED_SHARE = 0.5
VERBS = tuple("get fetch check find lookup query show read run make set start request handle open".split())
VERBS += ("update", "submit", "do", "add", "search")
FILLERS = tuple("info data task action service entry now v2 tool request".split())
CLIENT_ERRORS = [
    "The service is not responding.",
    "Request timed out.",
    "Not authorized.",
    "Something went wrong on the server.",
    "Rate limit exceeded, try again later.",
]


@dataclass(frozen=True)
class Param:
    kind: str  # JSON-schema type: "string", "number", "integer" or "boolean"
    pool: str | tuple = ""  # where values come from: a POOLS name, "lo-hi" for numbers, or enum options
    required: bool = True


@dataclass(frozen=True)
class ClientTool:
    names: tuple[str, ...]  # names it is offered under (training picks any; held-out ones are unique)
    description: str
    params: dict[str, Param]
    asks: tuple[str, ...]  # requests with {param} slots; "... | key=<json>" fixes an argument the words imply
    answer: Callable[[dict, random.Random], dict]  # the client's JSON result for the arguments
    says: tuple[str, ...]  # replies, filled from the arguments, "{param_said}", the result and `speak`
    domains: tuple[str, ...]  # what it serves: a request of these is not a no-tool example beside it
    speak: Callable[[dict], dict] | None = None  # words derived from the result ("on"/"off")

    def definition(self, name: str) -> dict:
        """The function as a client offers it, in the chat templates' shape."""
        properties = {}
        for key, p in self.params.items():
            properties[key] = {"type": p.kind} | ({"enum": list(p.pool)} if isinstance(p.pool, tuple) else {})
        required = [k for k, p in self.params.items() if p.required]
        parameters = {"type": "object", "properties": properties, "required": required}
        return {
            "type": "function",
            "function": {"name": name, "description": self.description, "parameters": parameters},
        }


def _pairs(values) -> list[tuple[str, str]]:
    return [(v, v) for v in values]


DAYS = [("today", "today"), ("tomorrow", "tomorrow"), ("on Friday", "Friday"), ("on Monday", "Monday"),
        ("this Saturday", "Saturday"), ("next Tuesday", "next Tuesday"), ("on Sunday", "Sunday")]  # fmt: skip
CURRENCIES = [("dollars", "USD"), ("euros", "EUR"), ("British pounds", "GBP"), ("yen", "JPY"),
              ("Canadian dollars", "CAD"), ("Swiss francs", "CHF"), ("Aussie dollars", "AUD")]  # fmt: skip
STOCKS = [("Apple", "AAPL"), ("AAPL", "AAPL"), ("Tesla", "TSLA"), ("Microsoft", "MSFT"), ("Amazon", "AMZN"),
          ("Nvidia", "NVDA"), ("Google", "GOOGL"), ("NVDA", "NVDA"), ("Netflix", "NFLX")]  # fmt: skip
TRANSLATIONS = {
    ("good morning", "Spanish"): "buenos días", ("thank you", "Spanish"): "gracias",
    ("good morning", "French"): "bonjour", ("thank you", "French"): "merci",
    ("good night", "German"): "gute Nacht", ("thank you", "German"): "danke",
    ("where is the station", "French"): "où est la gare", ("cheers", "Italian"): "salute",
    ("I love you", "Italian"): "ti amo", ("how much is this", "Spanish"): "cuánto cuesta esto",
}  # fmt: skip
WORDS = {
    "serendipity": "finding something good without looking for it",
    "ephemeral": "lasting a very short time",
    "ubiquitous": "found everywhere",
    "gregarious": "fond of company",
    "meticulous": "very careful about details",
    "candid": "honest and direct",
}
POOLS: dict[str, list[tuple[str, str]]] = {
    "city": _pairs(templates.CITIES + ["Dublin", "Lisbon", "Seattle", "Denver", "Mumbai", "Cape Town"]),
    "person": _pairs(templates.NAMES + ["Mum", "Dad", "Grandma", "Jake", "Nina"]),
    "day": DAYS,
    "currency": CURRENCIES,
    "stock": STOCKS,
    "order": _pairs(["A1234", "B7781", "402918", "C3309", "775120", "D4410", "K9021", "583306"]),
    "restaurant": _pairs(
        ["Luigi's", "the Golden Dragon", "Nando's", "Chez Marie", "Blue Fin", "the Olive Tree"]
    ),
    "message": _pairs(
        [
            "I'm running late",
            "dinner is ready",
            "I'll be home at six",
            "see you soon",
            "happy birthday",
            "can you call me back",
            "I'm on my way",
            "don't forget the milk",
        ]
    ),  # fmt: skip
    "song": _pairs(templates.SONGS + templates.MUSIC),
    "item": _pairs(
        ["milk", "eggs", "bread", "bananas", "coffee", "rice", "apples", "toilet paper", "cheese"]
    ),
    "room": _pairs(["kitchen", "living room", "bedroom", "bathroom", "office", "hallway", "garage"]),
    "event": _pairs(
        ["dentist", "team meeting", "lunch with Sam", "yoga class", "haircut", "parents' evening"]
    ),
    "dish": _pairs(["lasagna", "pancakes", "chicken curry", "banana bread", "tomato soup", "fried rice"]),
    "place": _pairs(
        ["pharmacy", "coffee shop", "gas station", "supermarket", "ATM", "bakery", "pizza place"]
    ),
    "destination": _pairs(
        ["the airport", "Central Station", "the office", "42 Baker Street", "the hospital"]
    ),
    "flight": _pairs(["BA117", "LH400", "AA100", "UA901", "EK3", "AF1680", "DL44"]),
    "team": _pairs(["Arsenal", "the Lakers", "the Yankees", "Real Madrid", "the Bulls", "Liverpool"]),
    "note": _pairs(
        [
            "the plumber comes on Tuesday",
            "buy a birthday card",
            "the wifi password is on the fridge",
            "call the bank about the card",
            "book flights for August",
        ]
    ),  # fmt: skip
    "payee": _pairs(["the electric company", "Sam", "the landlord", "Maria", "the water company"]),
    "stop": _pairs(["Main Street", "the library", "Park Road", "the station", "Market Square"]),
    "phrase": _pairs(sorted({p for p, _ in TRANSLATIONS})),
    "language": _pairs(sorted({lang for _, lang in TRANSLATIONS})),
    "word": _pairs(sorted(WORDS)),
    "movie": _pairs(templates.MOVIES),
    "book": _pairs(templates.BOOKS),
}
# How enum options are said, where it is not the option itself.
SAID = {"xl": "XL", "technology": "tech", "sport": "sports"}


def slot(param: Param, rng: random.Random) -> tuple[str, object]:
    """(as said, argument value) for one parameter."""
    if isinstance(param.pool, tuple):
        option = rng.choice(param.pool)
        return SAID.get(option, option.replace("_", " ")), option
    if param.pool == "clock":
        return clock_time(rng)
    if param.pool[:1].isdigit():  # "lo-hi"
        lo, hi = map(int, param.pool.split("-"))
        n = rng.randint(lo, hi)
        return spoken_number(n, rng), n if param.kind in ("integer", "number") else str(n)
    return rng.choice(POOLS[param.pool])


def request(tool: ClientTool, rng: random.Random) -> tuple[str, dict, dict]:
    """(request, call arguments in schema order, what each argument was said as)."""
    text, _, fixed = rng.choice(tool.asks).partition(" | ")
    said, args = {}, {}
    for key, param in tool.params.items():
        if "{" + key + "}" in text:
            said[key], args[key] = slot(param, rng)
            while args[key] in [args[k] for k in args if k != key and tool.params[k].pool == param.pool]:
                said[key], args[key] = slot(param, rng)  # "convert 5 euros to euros" asks nothing
    for part in fixed.split(";") if fixed else []:
        key, value = part.strip().split("=", 1)
        args[key] = json.loads(value)
    args = {k: args[k] for k in tool.params if k in args}
    return text.format(**said), args, said


def client_ask(tool: ClientTool, name: str, rng: random.Random) -> Ask:
    """A request `tool`, offered as `name`, serves; its call, the client's answer and the reply."""
    user, args, said = request(tool, rng)
    if rng.random() < CLIENT_ERROR_SHARE:
        error = rng.choice(CLIENT_ERRORS)
        return Ask(transcript(user, rng), name, args, {"error": error}, failed(error, rng))
    result = tool.answer(args, rng)
    words = {**args, **{f"{k}_said": v for k, v in said.items()}, **result}
    words |= tool.speak(result) if tool.speak else {}
    return Ask(transcript(user, rng), name, args, result, sentence(rng.choice(tool.says).format(**words)))


def coined_name(tool: ClientTool, rng: random.Random) -> str:
    """A name the function was never given, from a verb and the words of its real names: "fetch_forecast"."""
    words = sorted({w for n in tool.names for w in n.split("_") if w not in VERBS})
    name = rng.sample(words, min(len(words), rng.randint(1, 2)))
    if rng.random() < 0.85:
        name.insert(0, rng.choice(VERBS))
    if rng.random() < 0.2:
        name.append(rng.choice(FILLERS))
    return "_".join(name)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.capitalize() for w in rest)


def money(rng: random.Random, lo: float, hi: float) -> float:
    return round(rng.uniform(lo, hi), 2)


def events_on(rng: random.Random) -> list[dict]:
    picks = rng.sample(POOLS["event"], rng.choice([0, 1, 1, 2, 3]))
    return [
        {"title": t, "time": f"{rng.randint(8, 18):02d}:{rng.choice([0, 15, 30, 45]):02d}"} for t, _ in picks
    ]


def event_words(result: dict) -> dict:
    events = result["events"]
    if not events:
        return {"summary": "your calendar is clear"}
    first = f"{events[0]['title']} at {events[0]['time']}"
    count = f"{len(events)} thing{'s' if len(events) > 1 else ''}"
    return {"summary": f"you have {count}, starting with {first}"}
