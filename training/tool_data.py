"""Synthetic tool-use conversations, so the default model learns to call tools and to say their results.

    train, held_out = tool_examples(seed)     # lists of training.data.Example, source TOOLS

Kinds of example (COUNTS), each with the tools offered rendered into the system turn by the chat
template (dlm_core.tool_calls.DLM_VOICE_TEMPLATE):
- builtin_call: a request for a built-in tool (time, arithmetic, units, timers) -> the call;
- builtin_result: the same conversation after the call and the tool's result -> a short spoken reply
  that uses the result (mostly its "text"), or an honest "Sorry, I couldn't do that: ..." on an error;
- client_call: made-up client functions (training/tool_catalog.py), 1-4 per prompt with built-ins as
  distractors, and a request one of them serves -> the call, arguments copied or derived from the words;
- client_result: a client function's JSON result -> one sentence that says it;
- no_tool: tools offered, but the request needs none (small talk, a joke, a fact, something no listed
  tool does) -> the reply training/templates.py gives it.
Built-in examples offer all six built-ins as the server does (client functions first), now and then a
few client functions or only some built-ins. Held-out examples use other wordings of the built-in
requests and other client functions (names unseen in training), so their score measures generalising.
Every example fits the shipped 512-token context with the bundled tokenizer (one that is too long is
drawn again); a tokenizer trained on this data needs about 2/3 as many tokens, so a training run keeps
all tool rows with --max-prompt 384 --reply-len 64.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass

from assistant.tools.builtin import BUILTIN_TOOLS as _REALTIME_BUILTINS
from dlm_core.checkpoints import BUNDLED_MODEL
from dlm_core.tokenizer import DlmTokenizer
from dlm_core.tool_calls import DLM_VOICE_TEMPLATE, call_text
from training import templates
from training.data import SYSTEM_PROMPTS, TOOLS, Example
from training.tool_builtins import ask_builtin
from training.tool_catalog import HELD_OUT, TRAIN
from training.tool_clients import CAMEL_SHARE, ClientTool, camel, client_ask
from training.tool_words import Ask

# The server's built-in tools in the chat templates' shape, as a session offers them.
BUILTIN_TOOLS: list[dict] = [
    {"type": "function", "function": {k: t[k] for k in ("name", "description", "parameters")}}
    for t in _REALTIME_BUILTINS
]
BUILTIN_NAMES = [t["function"]["name"] for t in BUILTIN_TOOLS]
BUILTIN_DOMAINS = {"get_time": "clock", "calculate": "math", "convert_units": "units"} | dict.fromkeys(
    ["set_timer", "list_timers", "cancel_timer"], "timers"
)
# The server's default instructions (assistant/config.py), the system turn most conversations have.
DEFAULT_SYSTEM = "You are a helpful voice assistant. Answer briefly."
COUNTS = {  # training examples of each kind
    "builtin_call": 6000,
    "builtin_result": 4000,
    "client_call": 5000,
    "client_result": 2500,
    "no_tool": 2500,
}
HELD_OUT_DIVISOR = 25  # held-out examples of a kind: its count divided by this
# Template topics that are small talk whatever the tools; the replies of others depend on what is offered.
SMALL_TALK = (
    "greeting how_are_you feel_good feel_bad thanks bye who_are_you joke fact movie music food book hobby "
    "name bored sorry compliment insult travel"
).split()
TOPIC_DOMAINS = {"time": "clock", "date": "clock", "math": "math", "weather": "weather", "news": "news"}
TASK_DOMAINS = {  # training.templates.TASKS (the "cant_do" topic) by the kind of tool that does them
    "set an alarm": "timers", "set a reminder": "timers", "call my mom": "phone", "send a text": "messages",
    "turn on the lights": "home", "order a pizza": "food", "book a flight": "travel",
    "play my playlist": "music", "turn up the heat": "home", "open the door": "home",
    "check my email": "email", "buy groceries online": "shopping", "lock the car": "car",
    "start the dishwasher": "home", "pay my bills": "payments",
}  # fmt: skip
EXCHANGES_PER_TOPIC = 60  # template exchanges drawn per topic for no-tool examples and earlier turns
DECLINE_SHARE = 0.4  # no-tool requests that ask for something no tool on offer does (when there is one)
HISTORY_SHARE = 0.25  # examples with an earlier exchange before the request
MAX_CLIENT_TOOLS = 4
MAX_CLIENTS_WITH_BUILTINS = 2  # more client functions come with only a few built-ins: short prompts
# The shipped model's context. Prompt and reply must fit it with the bundled tokenizer, which knows no
# tool markup and so splits it finely: a tokenizer trained on this data needs about 2/3 as many tokens.
CONTEXT_TOKENS = 512


def call_of(ask: Ask) -> dict:
    return {"type": "function", "function": {"name": ask.name, "arguments": ask.arguments}}


def system_turn(rng: random.Random) -> list[tuple]:
    """The server's default instructions mostly, another short system prompt or none now and then."""
    roll = rng.random()
    if roll < 0.6:
        return [("system", DEFAULT_SYSTEM)]
    return [("system", rng.choice(SYSTEM_PROMPTS))] if roll < 0.8 else []


def tool_round(ask: Ask) -> list[tuple]:
    """The turns of one tool use: request, call, result and the reply."""
    return [
        ("user", ask.user),
        ("assistant", "", (call_of(ask),)),
        ("tool", json.dumps(ask.result, ensure_ascii=False)),
        ("assistant", ask.reply),
    ]


def offered_name(tool: ClientTool, rng: random.Random, held: bool) -> str:
    name = tool.names[0] if held else rng.choice(tool.names)
    return camel(name) if rng.random() < CAMEL_SHARE else name


def builtin_tools(rng: random.Random, needed: str | None) -> list[dict]:
    """Built-ins as the server offers them: all six mostly, else a few (in order) that include `needed`."""
    if rng.random() < 0.85:
        return list(BUILTIN_TOOLS)
    names = set(rng.sample(BUILTIN_NAMES, rng.randint(1, 3))) | ({needed} if needed else set())
    return [t for t in BUILTIN_TOOLS if t["function"]["name"] in names]


def client_tools(rng: random.Random, pool: list[ClientTool], held: bool, first=None, count=None) -> list:
    """(tool, offered name) pairs: `first` (if any) and distractors from `pool`, in random order."""
    count = count or rng.randint(1, MAX_CLIENT_TOOLS)
    others = [t for t in pool if t is not first]
    chosen = ([first] if first else []) + rng.sample(others, count - (1 if first else 0))
    rng.shuffle(chosen)
    return [(t, offered_name(t, rng, held)) for t in chosen]


def domains(tools: list[dict], clients: list) -> set[str]:
    names = {t["function"]["name"] for t in tools}
    return {BUILTIN_DOMAINS[n] for n in names if n in BUILTIN_DOMAINS} | {
        d for t, _ in clients for d in t.domains
    }


# ---- the kinds of example -----------------------------------------------------------------------


def history(rng: random.Random, held: bool, talk: Talk, tools: list[dict], short: bool) -> list[tuple]:
    """Earlier turns: none mostly, else a small-talk exchange or (unless `short`) an earlier use of a
    built-in on offer."""
    roll = rng.random()
    if roll >= HISTORY_SHARE:
        return []
    if short or roll < HISTORY_SHARE / 2:
        _, user, reply = rng.choice(talk.small)
        return [("user", user), ("assistant", reply)]
    ask = ask_builtin(rng, held)
    return tool_round(ask) if ask.name in {t["function"]["name"] for t in tools} else []


def conversation(rng, held, talk, ask: Ask, tools: list[dict], with_result: bool) -> tuple[list, str]:
    """(turns, reply): the request and its call, or, `with_result`, on to the result and its reply."""
    turns = system_turn(rng) + history(rng, held, talk, tools, short=with_result)
    turns.append(("user", ask.user))
    if not with_result:
        return turns, call_text(call_of(ask))
    turns += [("assistant", "", (call_of(ask),)), ("tool", json.dumps(ask.result, ensure_ascii=False))]
    return turns, ask.reply


def builtin_example(rng, held, talk, with_result: bool) -> tuple[list, str, list[dict]]:
    ask = ask_builtin(rng, held)
    tools = builtin_tools(rng, ask.name)
    if rng.random() < 0.3:  # a client's functions come first, as the server lists them
        clients = client_tools(rng, HELD_OUT if held else TRAIN, held, count=rng.randint(1, 2))
        tools = [t.definition(n) for t, n in clients] + tools
    return *conversation(rng, held, talk, ask, tools, with_result), tools


def client_example(rng, held, talk, with_result: bool) -> tuple[list, str, list[dict]]:
    pool = HELD_OUT if held else TRAIN
    target = rng.choice(pool)
    clients = client_tools(rng, pool, held, first=target)
    ask = client_ask(target, next(n for t, n in clients if t is target), rng)
    roll = rng.random()
    builtins = list(BUILTIN_TOOLS) if roll < 0.5 else builtin_tools(rng, None) if roll < 0.7 else []
    if len(clients) > MAX_CLIENTS_WITH_BUILTINS and len(builtins) == len(BUILTIN_TOOLS):
        builtins = builtin_tools(rng, None)[:3]  # keeps the prompt short
    tools = [t.definition(n) for t, n in clients] + builtins
    return *conversation(rng, held, talk, ask, tools, with_result), tools


def need(topic: str, user: str) -> str | None:
    """What a template exchange needs to be right beside tools: "" if it is small talk, else the domain
    of tool that must not be on offer ("What time is it?" -> "I have no clock" needs no "clock" tool);
    None if its reply depends on more than the tools offered."""
    if topic in SMALL_TALK:
        return ""
    if topic == "cant_do":
        return next((d for task, d in TASK_DOMAINS.items() if task in user.lower()), None)
    return TOPIC_DOMAINS.get(topic)


@dataclass(frozen=True)
class Talk:
    """Template exchanges (topic, user, reply): small talk, and the others by the domain they need."""

    small: list[tuple]
    needing: dict[str, list[tuple]]

    @classmethod
    def draw(cls, seed: int) -> Talk:
        small, needing = [], {}
        for ex in sorted(set(templates.exchanges(random.Random(seed), per_topic=EXCHANGES_PER_TOPIC))):
            domain = need(ex[0], ex[1])
            if domain == "":
                small.append(ex)
            elif domain is not None:
                needing.setdefault(domain, []).append(ex)
        return cls(small, needing)


def no_tool_example(rng, held, talk) -> tuple[list, str, list[dict]]:
    pool = HELD_OUT if held else TRAIN
    clients = client_tools(rng, pool, held, count=rng.randint(1, 3)) if rng.random() < 0.75 else []
    roll = rng.random()
    builtins = (
        list(BUILTIN_TOOLS) if roll < 0.5 or not clients else builtin_tools(rng, None) if roll < 0.7 else []
    )
    tools = [t.definition(n) for t, n in clients] + builtins
    covered = domains(tools, clients)
    # "What's the weather?" -> "I can't check the weather" only where no weather tool is on offer.
    free = [ex for domain, exs in sorted(talk.needing.items()) if domain not in covered for ex in exs]
    if free and rng.random() < DECLINE_SHARE:
        _, user, reply = rng.choice(free)
    else:
        _, user, reply = rng.choice(talk.small)
    turns = system_turn(rng) + history(rng, held, talk, tools, short=False)
    return turns + [("user", user)], reply, tools


MAKERS = {
    "builtin_call": lambda rng, held, talk: builtin_example(rng, held, talk, with_result=False),
    "builtin_result": lambda rng, held, talk: builtin_example(rng, held, talk, with_result=True),
    "client_call": lambda rng, held, talk: client_example(rng, held, talk, with_result=False),
    "client_result": lambda rng, held, talk: client_example(rng, held, talk, with_result=True),
    "no_tool": no_tool_example,
}


def budget_tokenizer() -> DlmTokenizer:
    """The bundled model's tokenizer with the dlm_voice chat template (which its folder may predate)."""
    bundled = DlmTokenizer.from_dir(BUNDLED_MODEL)
    return DlmTokenizer(bundled.tok, bundled.special, DLM_VOICE_TEMPLATE)


def too_long(examples: list[Example], tok: DlmTokenizer) -> list[int]:
    """Indexes of the examples whose prompt and reply (with <|eot_id|>) exceed CONTEXT_TOKENS.

    Text between special tokens is tokenized on its own, so each distinct stretch is encoded once (the
    tool lists repeat across many examples) and the counts equal those of encoding each whole text."""
    specials = sorted(t.content for t in tok.tok.get_added_tokens_decoder().values())
    split = re.compile("|".join(re.escape(t) for t in specials))
    texts = [split.split(tok.chat_text(ex.chat(), ex.tool_list()) + ex.reply) for ex in examples]
    stretches = sorted({s for parts in texts for s in parts if s})
    encoded = tok.tok.encode_batch(stretches, add_special_tokens=False)
    sizes = {s: len(e.ids) for s, e in zip(stretches, encoded)}
    lengths = [len(parts) + sum(sizes[s] for s in parts if s) for parts in texts]  # specials + text + eot
    return [i for i, n in enumerate(lengths) if n > CONTEXT_TOKENS]


def draw(kind: str, n: int, rng: random.Random, held: bool, talk: Talk) -> Example:
    """Example `n` of a kind; its group is "tools:<kind>:<train|held>:<n>"."""
    turns, reply, tools = MAKERS[kind](rng, held, talk)
    group = f"{TOOLS}:{kind}:{'held' if held else 'train'}:{n}"
    return Example(tuple(turns), reply, TOOLS, group, tuple(tools))


def split_examples(
    rng: random.Random, held: bool, talk: Talk, tok: DlmTokenizer, scale: float
) -> list[Example]:
    """One split's examples, kind by kind; one too long for the context is drawn again."""
    jobs = [
        (kind, n)
        for kind, count in COUNTS.items()
        for n in range(round(scale * count / (HELD_OUT_DIVISOR if held else 1)))
    ]
    examples = [draw(kind, n, rng, held, talk) for kind, n in jobs]
    redo = too_long(examples, tok)
    while redo:
        for i in redo:
            examples[i] = draw(*jobs[i], rng, held, talk)
        redo = [redo[j] for j in too_long([examples[i] for i in redo], tok)]
    return examples


def tool_examples(seed: int = 0, scale: float = 1.0) -> tuple[list[Example], list[Example]]:
    """(train, held-out) tool-use examples, the same for the same seed; `scale` multiplies COUNTS."""
    talk, tok = Talk.draw(seed), budget_tokenizer()
    train = split_examples(random.Random(2 * seed), False, talk, tok, scale)
    return train, split_examples(random.Random(2 * seed + 1), True, talk, tok, scale)
