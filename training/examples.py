"""One training conversation (`Example`), the sources examples come from with the weight each gets, and
the system prompts a conversation may start with. A leaf of `training/`: `training.data` assembles the
splits from every source, and the source modules (`training.tool_data`, ...) build on this without
importing it back."""

from __future__ import annotations

from dataclasses import dataclass

from dlm_core.tool_calls import DLM_VOICE_TOOLS_HEADER, call_text, tools_text

# The sources, by name, and how many times each row of a source appears per training epoch: the
# small assistant-style sources are oversampled to weigh against the much larger casual chitchat.
CHITCHAT, CHATTERBOT, TEMPLATES, TOOLS = "chitchat", "chatterbot", "templates", "tools"
INTENTS, FACTS = "intents", "facts"
REPEATS = {CHITCHAT: 0, CHATTERBOT: 0, TEMPLATES: 1, TOOLS: 1, INTENTS: 1, FACTS: 2}
SOURCES = tuple(REPEATS)
SYSTEM_PROMPTS = [
    "You are a helpful voice assistant.",
    "You are a friendly assistant. Keep replies short.",
    "You are a voice assistant. Answer briefly and kindly.",
]


@dataclass(frozen=True)
class Example:
    # (role, content) turns before the reply; an assistant turn that called tools is (role, content,
    # calls), the calls as dlm_core.tool_calls describes them; a tool's result is ("tool", json text).
    messages: tuple[tuple, ...]
    reply: str  # the assistant's reply text (a call's markup when the reply calls a tool)
    source: str  # one of SOURCES
    group: str  # split key: examples sharing it land in the same split
    tools: tuple[dict, ...] | None = None  # the functions offered, in the chat templates' shape

    def chat(self) -> list[dict]:
        out = []
        for role, content, *calls in self.messages:
            out.append({"role": role, "content": content} | ({"tool_calls": list(calls[0])} if calls else {}))
        return out

    def tool_list(self) -> list[dict] | None:
        return list(self.tools) if self.tools else None

    def texts(self) -> list[str]:
        """What the model reads and writes here, for training the tokenizer: turns, calls, tool list."""
        out = [self.reply, *(m[1] for m in self.messages if m[1])]
        out += [call_text(c) for m in self.messages if len(m) > 2 for c in m[2]]
        return out + ([tools_text(list(self.tools), DLM_VOICE_TOOLS_HEADER)] if self.tools else [])
