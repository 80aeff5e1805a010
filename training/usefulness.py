"""Is the bundled model useful? The evaluation set's score, tool-call accuracy and speed, per model.

    python -m training.usefulness --model diffusion=runs/v2_default --model twin=runs/v2_twin \\
        --model shipped=dlm_core/weights/default:balanced --out runs/v2_eval

A model is a run folder (its best held-out weights, training/evaluate.py) or a shipped weights folder.
Diffusion models answer with each preset of dlm_core.presets (or those named after a colon); an
autoregressive one (the twin) greedily.
For each (model, decoding) it prints and writes (OUT/usefulness.json, OUT/replies.md and .json):
- the share of training/eval_set.py's requests answered usefully, by split and by category;
- tool-call accuracy on client functions: "unseen" ones (training/tool_catalog.py HELD_OUT, held-out
  wordings) and "seen" ones (training functions and wordings, fresh argument values): the right
  function with the same arguments, and no call where the request needs none;
- tokens per forward pass and milliseconds per reply (median, first text and whole reply).
The prompts are what the server sends: its default instructions and the built-in tools on offer.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

from dlm_core.checkpoints import load_checkpoint
from dlm_core.presets import PRESET_NAMES
from dlm_core.sampler import SamplerConfig, generate, generate_autoregressive
from dlm_core.tool_calls import ToolCall, offered_call, parse_tool_calls
from training.eval_set import eval_items, key
from training.tool_data import BUILTIN_TOOLS, DEFAULT_SYSTEM, Talk, client_example, tool_examples

MAX_NEW_TOKENS = 40  # the reply canvas the models were trained with
SEEN_CALLS = 60  # client calls drawn with training functions and wordings
UNSEEN_CALLS = 60  # client calls of held-out functions
NO_CALLS = 60  # held-out requests that need no tool, beside client functions
TOOL_SEED = 1234  # the seen-function draws (any seed other than the training data's)
AR = "greedy"  # the twin's one decoding


def load(path: str):
    """(model, tokenizer) from a run folder (best held-out weights) or a weights folder, fp32 on CPU."""
    if (Path(path) / "ckpt.pt").is_file():
        from training.evaluate import load_run

        model, tok, _ = load_run(path)
        return model, tok
    loaded = load_checkpoint(path)
    return loaded.model, loaded.tokenizer


class Speaker:
    """One model with one decoding: replies to a conversation and keeps the speed figures."""

    def __init__(self, model, tok, decoding: str):
        self.model, self.tok, self.decoding = model, tok, decoding
        self.tokens = self.forwards = 0
        self.first_ms: list[float] = []
        self.total_ms: list[float] = []

    def reply(self, messages: list[dict], tools: list[dict] | None = BUILTIN_TOOLS) -> str:
        """The reply text; "" where the prompt does not fit the model's context. A model whose template
        knows no tools is not offered the built-ins (as the server does), only a client's functions."""
        if tools is BUILTIN_TOOLS and not self.tok.handles_tools:
            tools = None
        ids = self.tok.chat_prompt(messages, tools)
        if len(ids) + MAX_NEW_TOKENS > self.model.cfg.max_seq_len:
            return ""
        if self.decoding == AR:
            stream = generate_autoregressive(self.model, self.tok, ids, MAX_NEW_TOKENS)  # as the server
        else:
            cfg = SamplerConfig.preset(self.decoding, max_new_tokens=MAX_NEW_TOKENS)
            stream = generate(self.model, self.tok, ids, cfg)
        t0, first, text, nfe, n = time.perf_counter(), None, "", 0, 0
        for chunk in stream:
            if chunk.text and first is None:
                first = time.perf_counter() - t0
            text, nfe, n = text + chunk.text, chunk.nfe, n + len(chunk.token_ids)
        total = time.perf_counter() - t0
        self.tokens, self.forwards = self.tokens + n, self.forwards + nfe
        self.first_ms.append(1000 * (first or total))
        self.total_ms.append(1000 * total)
        return text.strip()

    def speed(self) -> dict:
        def median(xs):
            return round(sorted(xs)[len(xs) // 2], 1) if xs else None

        return {
            "tokens_per_forward": round(self.tokens / max(1, self.forwards), 2),
            "median_first_ms": median(self.first_ms),
            "median_reply_ms": median(self.total_ms),
        }


def run_item(speaker: Speaker, item) -> dict:
    """One request: the reply, then for a tool request the reply after the (expected) tool's result."""
    messages = [{"role": "system", "content": DEFAULT_SYSTEM}, {"role": "user", "content": item.user}]
    reply, tool_reply = speaker.reply(messages), None
    ask = item.matching(reply) if item.check.kind == "tool" else None
    if ask is not None:
        call = {"type": "function", "function": {"name": ask.name, "arguments": ask.arguments}}
        messages += [
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "content": json.dumps(ask.result, ensure_ascii=False)},
        ]
        tool_reply = speaker.reply(messages)
    useful, why = item.judge(reply, tool_reply)
    return {"reply": reply, "tool_reply": tool_reply, "useful": useful, "why": "" if useful else why}


def score(results: list[dict], items) -> dict:
    """Useful shares: overall, by split and by category."""

    def share(rows):
        return round(sum(r["useful"] for r in rows) / max(1, len(rows)), 3)

    out = {"useful": share(results), "n": len(results), "by_split": {}, "by_category": {}}
    for field, name in (("split", "by_split"), ("category", "by_category")):
        groups = {}
        for item, r in zip(items, results):
            groups.setdefault(getattr(item, field), []).append(r)
        out[name] = {g: [share(rows), len(rows)] for g, rows in sorted(groups.items())}
    return out


def client_sets(seed: int = 0) -> dict[str, list]:
    """Client-function requests: (messages, tools, expected call or None), seen, unseen and no-call."""

    def as_case(ex):
        calls = parse_tool_calls(ex.reply)
        want = next((c for c in calls if isinstance(c, ToolCall)), None)
        return ex.chat(), ex.tool_list(), want

    _, held = tool_examples(seed)
    unseen = [as_case(ex) for ex in held if ":client_call:" in ex.group][:UNSEEN_CALLS]
    no_call = [as_case(ex) for ex in held if ":no_tool:" in ex.group][:NO_CALLS]
    rng, talk = random.Random(TOOL_SEED), Talk.draw(seed)
    seen = []
    for _ in range(SEEN_CALLS):
        turns, reply, tools = client_example(rng, False, talk, with_result=False)
        chat = [
            {"role": t[0], "content": t[1]} | ({"tool_calls": list(t[2])} if len(t) > 2 else {})
            for t in turns
        ]
        seen.append((chat, tools, next(c for c in parse_tool_calls(reply) if isinstance(c, ToolCall))))
    return {"seen": seen, "unseen": unseen, "no_call": no_call}


def call_accuracy(speaker: Speaker, cases: dict[str, list]) -> dict:
    """Share of right calls (name and arguments) on seen and unseen functions; share of no call. Each
    entry: [share as the server runs it (a name not offered is taken as the one offered function its
    arguments fit, dlm_core.tool_calls.offered_call), rows, share of calls the model named right itself]."""
    out = {}
    for name, rows in cases.items():
        right = named = 0
        for messages, tools, want in rows:
            calls = [e for e in parse_tool_calls(speaker.reply(messages, tools)) if not isinstance(e, str)]
            if want is None:
                right += not calls
                named += not calls
            elif len(calls) == 1 and isinstance(calls[0], ToolCall):
                same_args = json.loads(calls[0].arguments) == json.loads(want.arguments)
                meant = offered_call(calls[0], tools)
                right += same_args and meant is not None and meant.name == want.name
                named += same_args and calls[0].name == want.name
        n = max(1, len(rows))
        out[name] = [round(right / n, 3), len(rows), round(named / n, 3)]
    return out


def train_requests(seed: int = 0) -> set[str]:
    """Every user turn of the training split, for eval_items to drop the ones trained on."""
    from training.data import load_examples

    train, _ = load_examples(seed)
    return {key(m[1]) for ex in train for m in ex.messages if m[0] == "user"}


def evaluate(name: str, path: str, items, cases, presets) -> tuple[dict, dict]:
    """(scores by decoding, replies by decoding) of one model."""
    model, tok = load(path)
    decodings = [AR] if model.cfg.attention == "causal" else list(presets)  # a shifted diffusion model too
    scores, replies = {}, {}
    for decoding in decodings:
        speaker = Speaker(model, tok, decoding)
        results = [run_item(speaker, item) for item in items]
        speed = speaker.speed()  # the evaluation set's replies only
        scores[decoding] = score(results, items) | speed | {"calls": call_accuracy(speaker, cases)}
        replies[decoding] = results
        print(name, decoding, json.dumps(scores[decoding]), flush=True)
    return scores, replies


def replies_table(items, replies: dict) -> str:
    columns = [(m, d) for m, by in replies.items() for d in by]
    lines = [
        "| request | split | " + " | ".join(f"{m} ({d})" for m, d in columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for i, item in enumerate(items):
        cells = []
        for m, d in columns:
            r = replies[m][d][i]
            said = r["reply"] + (f" → {r['tool_reply']}" if r["tool_reply"] else "")
            cells.append(("✓ " if r["useful"] else "✗ ") + said.replace("|", "/").replace("\n", " "))
        lines.append(f"| {item.user} | {item.split} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.usefulness", description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", required=True, help="NAME=PATH (run or weights folder)")
    parser.add_argument("--presets", nargs="+", default=list(PRESET_NAMES), help="diffusion decodings")
    parser.add_argument("--out", default="runs/usefulness")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    items, cases = eval_items(train_requests()), client_sets()
    print(f"{len(items)} requests; client calls: " + ", ".join(f"{k} {len(v)}" for k, v in cases.items()))
    result, replies = {"items": len(items)}, {}
    for spec in args.model:
        name, path = spec.split("=", 1)
        path, _, presets = path.partition(":")
        result[name], replies[name] = evaluate(
            name, path, items, cases, presets.split(",") if presets else args.presets
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "usefulness.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "replies.md").write_text(replies_table(items, replies))
    (out / "replies.json").write_text(json.dumps(replies, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
