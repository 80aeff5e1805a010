"""One conversation's history: its items, what of each reply was heard, and trimming to the context.

An assistant item keeps its audio timeline (`SpokenReply`), so the text it holds can be cut to what the
listener heard: after a barge-in, or when the client says how much it played
(`conversation.item.truncate`).
"""

from __future__ import annotations

from dataclasses import dataclass

from assistant.turns import SpokenReply

TRUNCATE_SLACK_MS = 100.0  # a client's played position may overshoot the audio by its rounding
# Items kept at most, oldest dropped first: far more than any context holds (trimming to the context
# happens after each reply; this bounds a client that adds messages without asking for replies).
MAX_ITEMS = 512


@dataclass
class Item:
    id: str
    role: str  # "user" | "assistant" | "system"
    text: str
    spoken: SpokenReply | None = None  # assistant items: which text each stretch of audio speaks


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

    def messages(self, instructions: str = "") -> list[dict]:
        """The chat the LM answers: the system prompt, then every item that has text."""
        msgs = [{"role": "system", "content": instructions}] if instructions else []
        return msgs + [{"role": it.role, "content": it.text} for it in self.items if it.text]

    def trim(self, lm, instructions: str, max_new_tokens: int) -> None:
        """Drop the oldest items while the chat would not fit the model's context with a reply."""
        messages = self.messages(instructions)
        if not messages:
            return
        try:
            drop = lm.messages_to_drop(messages, max_new_tokens)
        except ValueError:  # max_new_tokens alone fills the context: no reply fits, keep the newest item
            drop = len(self.items)
        cut = 0
        while drop > 0 and cut < len(self.items) - 1:
            if self.items[cut].text and self.items[cut].role != "system":
                drop -= 1
            cut += 1
        del self.items[:cut]

    # -- what of a reply was heard ---------------------------------------------------------------------
    def truncate(self, item_id: str, audio_end_ms: float) -> str:
        """The client played only `audio_end_ms` of an assistant item: keep that much of its text.

        Raises KeyError for an unknown or non-assistant item, ValueError past the item's audio."""
        item = self.find(item_id)
        if item is None or item.role != "assistant":
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
