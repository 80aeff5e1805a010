"""The test assistant's model: a tiny diffusion LM in the bundled model's own layout and chat template,
trained to memorise a few spoken exchanges (without tools in the prompt: tests that do not test tools
turn the built-in tools off), and to call tools (built-in ones, and one client function) for a few
requests, then say what the result means.

Its prompts are made by the product's own code (ToolTurn's tool list, the dlm_voice template), so what
it memorised is exactly what a Session asks it. Tests that need a model which really understands tool
lists use the bundled model; this one exercises the runtime and the protocol.
"""

from __future__ import annotations

import json
from pathlib import Path

from assistant.config import SessionConfig
from assistant.conversation import Conversation
from assistant.tool_turn import ToolTurn
from assistant.tools.builtin import Toolbox
from dlm_core.tokenizer import DlmTokenizer
from dlm_core.tool_calls import call_text
from training.bpe import save_tokenizer, train_bpe

VOCAB_SIZE = 700  # enough merges that the tool list and the calls take few tokens
MAX_SEQ_LEN = 512  # the tool list plus a reply canvas fits, as in the bundled model
# Wider than testkit.tiny_dlm's default: at dim 64 it mixed up tool names that share a prompt (measured
# 14 of 17 rows exact after 1000 steps, against 16 of 17 at dim 128).
MODEL = {"dim": 128, "mlp_dim": 384, "max_seq_len": MAX_SEQ_LEN}
# A function only the tests define (a client's, in Realtime terms).
CLIENT_TOOL = {
    "type": "function",
    "name": "check_order_status",
    "description": "Look up where a customer's order is.",
    "parameters": {
        "type": "object",
        "properties": {"order_id": {"type": "string", "description": "the order number"}},
        "required": ["order_id"],
    },
}
MISREAD = "6 times 7 is 43."
# (request, tool, arguments, what the model says once the result is in) for the built-in tools.
BUILTIN_CALLS = [
    ("What time is it?", "get_time", {}, None),
    ("Set a timer for three seconds.", "set_timer", {"seconds": 3}, None),
    ("Set a timer for 3 seconds.", "set_timer", {"seconds": 3}, None),  # as Whisper writes it
    ("Cancel my timer.", "cancel_timer", {"all": True}, None),
    # A misread result, as a small model may make one: the reply's grounding (assistant/grounding.py)
    # must say the tool's "6 times 7 is 42" instead.
    ("What is 6 times 7?", "calculate", {"expression": "6 * 7"}, MISREAD),
]
CLIENT_CALL = ("Where is my order 427?", {"order_id": "427"})
CLIENT_RESULT = '{"status": "shipped", "arrives": "Friday"}'
CLIENT_ANSWER = "Your order 427 has shipped and arrives on Friday."


def tool_definitions(client: tuple[dict, ...] = ()) -> list[dict] | None:
    """The tool list a Session with built-in tools (and `client` functions) puts in the prompt."""
    return ToolTurn(SessionConfig(instructions="", tools=client), Toolbox(), Conversation()).definitions


def _call(name: str, args: dict) -> dict:
    return {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"type": "function", "function": {"name": name, "arguments": args}}],
    }


def chats(pairs: list[tuple[str, str]]) -> list[tuple[list[dict], list[dict] | None, str]]:
    """(messages, tools, reply) rows: the pairs without tools, the tool calls, and the replies that
    follow a tool's result."""
    builtin, client = tool_definitions(), tool_definitions((CLIENT_TOOL,))
    rows = [([{"role": "user", "content": q}], None, a) for q, a in pairs]
    for q, name, args, answer in BUILTIN_CALLS:
        user = [{"role": "user", "content": q}]
        rows.append((user, builtin, call_text({"name": name, "arguments": args})))
        if answer is not None:
            output = Toolbox().run(name, json.dumps(args))
            rows.append(([*user, _call(name, args), {"role": "tool", "content": output}], builtin, answer))
    q, args = CLIENT_CALL
    user = [{"role": "user", "content": q}]
    rows.append((user, client, call_text({"name": CLIENT_TOOL["name"], "arguments": args})))
    after = [*user, _call(CLIENT_TOOL["name"], args), {"role": "tool", "content": CLIENT_RESULT}]
    rows.append((after, client, CLIENT_ANSWER))
    return rows


def train_test_model(out: Path, rows, steps: int, more_steps: int, rounds: int, start=None) -> list[str]:
    """Train the test model on `rows` into the checkpoint folder `out`, then check that the session's
    sampler gives every row's reply exactly; while some are off (float sums differ between CPUs, and a
    tiny model memorises at the edge), train `more_steps` more, at most `rounds` times. `start`: a
    checkpoint folder to go on from (its tokenizer too) instead of a new model. Returns the replies still
    wrong (empty: all memorised)."""
    from dlm_core.checkpoints import load_checkpoint, save_checkpoint
    from testkit.tiny_dlm import train_tiny

    if start is None:
        tok_dir, model = out / "tokenizer", None
        tok = voice_tokenizer(tok_dir, rows)
    else:
        loaded = load_checkpoint(str(start))
        tok_dir, tok, model = Path(start), loaded.tokenizer, loaded.model
    prompted = [(tok.chat_prompt(m, tools=t), r) for m, t, r in rows]
    wrong = []
    for i in range(rounds):
        n = steps if i == 0 else more_steps
        model, _, _ = train_tiny(
            "block_causal", steps=n, seed=i, tokenizer=tok, prompted=prompted, init=model, **MODEL
        )
        save_checkpoint(model, tok_dir, out)
        wrong = wrong_replies(out, rows)
        if not wrong:
            break
    return wrong


def wrong_replies(folder: Path, rows) -> list[str]:
    """The rows whose reply the model in `folder` does not give exactly, through a session's sampler."""
    from assistant.config import SessionConfig
    from dlm_core.engine import DlmEngine

    engine = DlmEngine.load(str(folder))
    try:
        sampler = SessionConfig().sampler(engine.family)
        return [r for m, t, r in rows if "".join(c.text for c in engine.reply(m, sampler, tools=t)) != r]
    finally:
        engine.close()


def rendered(rows) -> list[str]:
    """Each row as the dlm_voice chat template renders it, reply included: the text the model learns."""
    from dlm_core.tool_calls import DLM_VOICE_TEMPLATE

    probe = DlmTokenizer(None, None, DLM_VOICE_TEMPLATE)  # renders text only
    return [probe.chat_text(m, tools=t) + r for m, t, r in rows]


def voice_tokenizer(out: Path, rows) -> DlmTokenizer:
    """A BPE in the bundled layout (its special tokens and dlm_voice template), trained on the rows."""
    save_tokenizer(train_bpe(rendered(rows) * 4, VOCAB_SIZE), out)
    return DlmTokenizer.from_dir(out)
