"""One conversation's history: its items, what of each reply was heard, and trimming to the context.

Items are Realtime items: messages, the model's function calls and their outputs. `messages()` renders
them as the chat the LM reads (Hugging Face convention: an assistant message with `tool_calls`, then one
`tool` message per result).

An assistant item keeps its audio timeline (`SpokenReply`), so the text it holds can be cut to what the
listener heard: after a barge-in, or when the client says how much it played
(`conversation.item.truncate`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from assistant.turns import SpokenReply

TRUNCATE_SLACK_MS = 100.0  # a client's played position may overshoot the audio by its rounding
# Items kept at most, oldest dropped first: far more than any context holds (trimming to the context
# happens after each reply; this bounds a client that adds messages without asking for replies).
MAX_ITEMS = 512


MESSAGE, CALL, OUTPUT = "message", "function_call", "function_call_output"


@dataclass
class Item:
    id: str
    role: str  # "user" | "assistant" | "system"; "assistant" for a call, "tool" for its output
    text: str  # a message's text; a function_call_output's output
    spoken: SpokenReply | None = None  # assistant items: which text each stretch of audio speaks
    type: str = MESSAGE  # MESSAGE | CALL | OUTPUT
    call_id: str | None = None  # CALL and OUTPUT: pairs a result with its call
    name: str | None = None  # CALL: the tool
    arguments: str | None = None  # CALL: a JSON object text

    def realtime(self) -> dict:
        """The item as Realtime events show it (function calls and outputs; messages are built by the
        event mapping, which knows their modality)."""
        base = {"id": self.id, "object": "realtime.item", "type": self.type, "status": "completed"}
        if self.type == CALL:
            return {**base, "call_id": self.call_id, "name": self.name, "arguments": self.arguments}
        return {**base, "call_id": self.call_id, "output": self.text}


class Conversation:
    def __init__(self):
        self.items: list[Item] = []  # in conversation order

    def last_id(self) -> str | None:
        return self.items[-1].id if self.items else None

    def add(self, item: Item) -> Item:
        self.items.append(item)
        del self.items[:-MAX_ITEMS]
        return item

    def find(self, item_id: str) -> Item | None:
        return next((it for it in self.items if it.id == item_id), None)

    def delete(self, item_id: str) -> None:
        """Raises KeyError for an unknown id."""
        before = len(self.items)
        self.items = [it for it in self.items if it.id != item_id]
        if len(self.items) == before:
            raise KeyError(item_id)

    def find_call(self, call_id: str) -> Item | None:
        return next((it for it in self.items if it.type == CALL and it.call_id == call_id), None)

    def messages(self, instructions: str = "") -> list[dict]:
        """The chat the LM answers: the system prompt, then every item that has something to say."""
        msgs = [{"role": "system", "content": instructions}] if instructions else []
        return msgs + [m for _, m in self._spans()]

    def _spans(self) -> list[tuple[int, dict]]:
        """(index of the first item, message) for each message the items render to. Calls in a row
        become one assistant message; an output whose call is gone is left out (no template can say
        what it answers)."""
        spans: list[tuple[int, dict]] = []
        calls = {it.call_id for it in self.items if it.type == CALL}
        for i, it in enumerate(self.items):
            if it.type == CALL:
                call = {"type": "function", "function": {"name": it.name, "arguments": _args(it.arguments)}}
                last = spans[-1][1] if spans else None
                if last is not None and self.items[i - 1].type == CALL:
                    last["tool_calls"].append(call)
                else:
                    spans.append((i, {"role": "assistant", "content": "", "tool_calls": [call]}))
            elif it.type == OUTPUT:
                if it.call_id in calls:
                    spans.append((i, {"role": "tool", "content": it.text}))
            elif it.text:
                spans.append((i, {"role": it.role, "content": it.text}))
        return spans

    def trim(self, lm, instructions: str, max_new_tokens: int, tools: list | None = None) -> None:
        """Drop the oldest items while the chat would not fit the model's context with a reply."""
        while len(self.items) > 1:
            messages = self.messages(instructions)
            if not messages:
                return
            try:
                drop = lm.messages_to_drop(messages, max_new_tokens, tools=tools)
            except ValueError:  # max_new_tokens alone fills the context: no reply fits; keep the newest
                drop = len(self.items)
            if drop == 0:
                return
            starts = [i for i, m in self._spans() if m["role"] != "system"]
            cut = starts[drop] if drop < len(starts) else len(self.items) - 1
            del self.items[: max(1, cut)]

    # -- what of a reply was heard ---------------------------------------------------------------------
    def truncate(self, item_id: str, audio_end_ms: float) -> str:
        """The client played only `audio_end_ms` of an assistant item: keep that much of its text.

        Raises KeyError for an unknown or non-assistant item, ValueError past the item's audio."""
        item = self.find(item_id)
        if item is None or item.role != "assistant" or item.type != MESSAGE:
            raise KeyError(item_id)
        audio_ms = item.spoken.audio_ms if item.spoken else 0.0
        if item.spoken is None or audio_end_ms > audio_ms + TRUNCATE_SLACK_MS:
            raise ValueError(f"audio_end_ms {audio_end_ms} is past the item's audio ({audio_ms} ms)")
        item.text = item.spoken.text_until(audio_end_ms)
        return item.text

    def cut_last_reply(self) -> None:
        """Barge-in after a reply was all sent but before it was all played (the client's audio lead):
        the last reply keeps only what has been played by now."""
        last = self.items[-1] if self.items else None
        if last is None or last.role != "assistant" or last.spoken is None:
            return
        played = last.spoken.played_ms()
        if played < last.spoken.audio_ms:
            last.text = last.spoken.text_until(played)


def _args(arguments: str | None) -> dict:
    """A call's arguments as the templates want them (an object); what is not one renders as empty."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# Words Whisper writes with a capital wherever they stand.
_ALWAYS_CAPITAL = frozenset(["I", "I'm", "I'll", "I'd", "I've"])


def join_turns(first: str, rest: str) -> str:
    """One utterance from a turn that was not over and the words that followed it. Whisper heard each
    part alone, so it ended the first with a full stop and began the rest with a capital, neither of
    which the speaker said; after a question or exclamation mark both stay."""
    first, rest = first.strip(), rest.strip()
    if not first or not rest:
        return first or rest
    if first[-1] in "?!":
        return f"{first} {rest}"
    head, space, tail = rest.partition(" ")
    if head not in _ALWAYS_CAPITAL and head[:1].isupper() and head[1:].islower():
        head = head.lower()
    return f"{first.rstrip('.,;:…').rstrip()} {head}{space}{tail}"
