"""Synthetic tool-use conversations, so the default model learns to call tools and to say their results.

    train, held_out = tool_examples(seed)     # lists of training.examples.Example, source TOOLS

Kinds of example (COUNTS), each with the tools offered: the six built-ins always (the bundled model
knows them by heart and its chat template, dlm_core.tool_calls.known_tools_template, leaves them out of
the prompt) and now and then a client's functions, which the template lists in the system turn:
- builtin_call: a request for a built-in tool (time, arithmetic, units, timers) -> the call;
- builtin_result: the same conversation after the call and the tool's result -> a short spoken reply
  that uses the result (mostly its "text"), or an honest "Sorry, I couldn't do that: ..." on an error;
- client_call: made-up client functions (training/tool_catalog.py), 1-4 per prompt with built-ins as
  distractors, and a request one of them serves -> the call, arguments copied or derived from the words;
- client_result: a client function's JSON result -> one sentence that says it;
- no_tool: tools offered, but the request needs none (small talk, a joke, a fact, something no listed
  tool does) -> the reply training/intents.py or training/facts.py gives it.
Held-out examples use other wordings of the built-in
requests and other client functions (names unseen in training), so their score measures generalising.
Since data v3 a training function is offered half the time under a name coined for the example
(training.tool_clients.coined_name), so the model copies names from the list instead of recalling them.
Every example fits the 512-token context with the data-v1 tokenizer (budget_tokenizer; one that is too long is
drawn again); a tokenizer trained on this data needs about 2/3 as many tokens, so a training run keeps
all tool rows with --max-prompt 384 --reply-len 64.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass

from assistant.tools.builtin import BUILTIN_TOOLS as _REALTIME_BUILTINS
from dlm_core.checkpoints import JUDGE_TWIN
from dlm_core.tokenizer import DlmTokenizer
from dlm_core.tool_calls import DLM_VOICE_TEMPLATE, call_text
from training.examples import SYSTEM_PROMPTS, TOOLS, Example
from training.facts import fact_exchanges
from training.intents import intent_exchanges
from training.tool_builtins import ask_builtin
from training.tool_catalog import HELD_OUT, TRAIN
from training.tool_clients import CAMEL_SHARE, COINED_SHARE, ClientTool, camel, client_ask, coined_name
from training.tool_words import Ask

# The server's built-in tools in the chat templates' shape, as a session offers them.
BUILTIN_TOOLS: list[dict] = [
    {"type": "function", "function": {k: t[k] for k in ("name", "description", "parameters")}}
    for t in _REALTIME_BUILTINS
]
BUILTIN_NAMES = [t["function"]["name"] for t in BUILTIN_TOOLS]
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
TALK_PER_INTENT = 60  # intent exchanges drawn per intent for no-tool examples and earlier turns
TALK_FACTS = 400  # fact questions among them
DECLINE_SHARE = 0.4  # no-tool requests that ask for something no tool on offer does (when there is one)
HISTORY_SHARE = 0.25  # examples with an earlier exchange before the request
MAX_CLIENT_TOOLS = 4
# The 512-token context. Prompt and reply must fit it with the data-v1 tokenizer, which knows no
# tool markup and so splits it finely: a tokenizer trained on this data needs about 2/3 as many tokens.
CONTEXT_TOKENS = 512
HELD_NAMES = {n for t in HELD_OUT for n in t.names}  # a coined training name never takes one of these


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
    if held:
        name = tool.names[0]
    elif rng.random() < COINED_SHARE:
        name = coined_name(tool, rng)
        name = name if name not in HELD_NAMES else tool.names[0]
    else:
        name = rng.choice(tool.names)
    return camel(name) if rng.random() < CAMEL_SHARE else name


def builtin_tools() -> list[dict]:
    """The built-ins as the server offers them: all six, whenever a model can call tools. The bundled
    model knows them by heart and its template leaves them out of the prompt (dlm_core.tool_calls
    .known_tools_template), so no prompt can show a subset of them: the data never offers one."""
    return list(BUILTIN_TOOLS)


def client_tools(rng: random.Random, pool: list[ClientTool], held: bool, first=None, count=None) -> list:
    """(tool, offered name) pairs: `first` (if any) and distractors from `pool`, in random order."""
    count = count or rng.randint(1, MAX_CLIENT_TOOLS)
    others = [t for t in pool if t is not first]
    chosen = ([first] if first else []) + rng.sample(others, count - (1 if first else 0))
    rng.shuffle(chosen)
    return [(t, offered_name(t, rng, held)) for t in chosen]


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
    tools = builtin_tools()
    if rng.random() < 0.3:  # a client's functions come first, as the server lists them
        clients = client_tools(rng, HELD_OUT if held else TRAIN, held, count=rng.randint(1, 2))
        tools = [t.definition(n) for t, n in clients] + tools
    return *conversation(rng, held, talk, ask, tools, with_result), tools


def client_example(rng, held, talk, with_result: bool) -> tuple[list, str, list[dict]]:
    pool = HELD_OUT if held else TRAIN
    target = rng.choice(pool)
    clients = client_tools(rng, pool, held, first=target)
    ask = client_ask(target, next(n for t, n in clients if t is target), rng)
    tools = [t.definition(n) for t, n in clients] + builtin_tools()
    return *conversation(rng, held, talk, ask, tools, with_result), tools


@dataclass(frozen=True)
class Talk:
    """Exchanges (kind, user, reply) that need no tool: small talk and facts (`small`), and declines of
    what only a client's function could do, by that function's domain (`needing`): "What's the weather?"
    -> "I can't check the weather" is right only where no weather function is on offer."""

    small: list[tuple]
    needing: dict[str, list[tuple]]

    @classmethod
    def draw(cls, seed: int) -> Talk:
        rng = random.Random(seed)
        small, needing = [], {}
        for ex in intent_exchanges(rng, per_intent=TALK_PER_INTENT):
            if ex.domain:
                needing.setdefault(ex.domain, []).append((ex.intent, ex.user, ex.reply))
            else:
                small.append((ex.intent, ex.user, ex.reply))
        facts = fact_exchanges(rng)
        small += [(f.relation, f.user, f.reply) for f in rng.sample(facts, TALK_FACTS)]
        return cls(sorted(set(small)), {d: sorted(set(exs)) for d, exs in needing.items()})


def no_tool_example(rng, held, talk) -> tuple[list, str, list[dict]]:
    pool = HELD_OUT if held else TRAIN
    clients = client_tools(rng, pool, held, count=rng.randint(1, 3)) if rng.random() < 0.75 else []
    tools = [t.definition(n) for t, n in clients] + builtin_tools()
    covered = {d for t, _ in clients for d in t.domains}
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
    """The data-v1 tokenizer (the judge's twin's, the bundled models' until data v3) with the dlm_voice
    chat template (which its folder predates): the tool data is sized by it, so it stays the same data."""
    bundled = DlmTokenizer.from_dir(JUDGE_TWIN)
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


def tool_examples(
    seed: int = 0, scale: float = 1.0, held_scale: float | None = None
) -> tuple[list[Example], list[Example]]:
    """(train, held-out) tool-use examples, the same for the same seed; `scale` multiplies COUNTS, and
    `held_scale` (default: `scale`) the held-out ones. Each split draws from its own seed, so one split
    stays the same whatever the other's scale."""
    talk, tok = Talk.draw(seed), budget_tokenizer()
    train = split_examples(random.Random(2 * seed), False, talk, tok, scale)
    held = scale if held_scale is None else held_scale
    return train, split_examples(random.Random(2 * seed + 1), True, talk, tok, held)
