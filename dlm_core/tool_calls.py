"""Tool calls (function calling): how tools reach the prompt and how calls come back out of a reply.

One convention for every family, Hugging Face's: tools are `{"type": "function", "function": {"name",
"description", "parameters"}}` dicts; an assistant message that calls tools carries `tool_calls`
(`[{"type": "function", "function": {"name": str, "arguments": dict}}]`); a tool's result is a
`{"role": "tool", "content": str}` message. The model writes a call as
`<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, as Qwen2.5 / Qwen3 and the diffusion
families built on them do.

A chat template that knows tools (its source names `tools`) renders them itself. For one that does
not (LLaDA's Llama-3 template), `fallback_messages` writes the tool list into the system message and
the calls and results as plain text in the same markup, so any family can be offered tools.
`ToolCallParser` turns the reply's streamed text back into speakable text and `ToolCall` events.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
# A call opens wherever this stem appears, even garbled ("<tool_callname..."): a model that fumbles the
# tag is still writing a call, and what follows must not be spoken.
CALL_STEM = CALL_OPEN[:-1]
RESPONSE_OPEN, RESPONSE_CLOSE = "<tool_response>", "</tool_response>"
# Above the tool list of a template that knows no tools: the model has never seen our markup, so
# the header shows it.
TOOLS_HEADER = (
    "You can call these tools; to call one, reply with "
    f'{CALL_OPEN}{{"name": ..., "arguments": {{...}}}}{CALL_CLOSE}.'
)
# Above the tool list in DLM_VOICE_TEMPLATE: that model learns the markup in training, and the long
# header would cost ~50 of its 512 tokens in every prompt (its small vocabulary splits markup finely).
DLM_VOICE_TOOLS_HEADER = "You can call these tools:"

# The bundled "dlm_voice" checkpoints' chat template (their tokenizer_config.json holds the same string;
# a test keeps them equal). A turn is <|role|>text<|eot_id|>. With tools, one system turn holds the
# system instructions, DLM_VOICE_TOOLS_HEADER and one `name(param: type, optional?: type) - description`
# line per tool: short, because the bundled model has a 512-token context. A call is written inside the
# assistant turn; a tool's result comes back as a user turn. Without tools or tool messages it renders
# exactly as the template before tools did, so the trained model's prompts do not change.
DLM_VOICE_TEMPLATE = (
    "{% if tools %}<|system|>"
    "{% if messages and messages[0]['role'] == 'system' %}{{ messages[0]['content'] | trim }}{{ '\\n' }}"
    "{% endif %}" + DLM_VOICE_TOOLS_HEADER + "{% for t in tools %}{% set f = t['function'] %}"
    "{% set p = f['parameters'] or {} %}{{ '\\n' + f['name'] }}("
    "{% for k, s in (p['properties'] or {}).items() %}{{ ', ' if not loop.first }}{{ k }}"
    "{{ '?' if k not in (p['required'] or []) }}: "
    "{{ ((s['type'] if s['type'] is string else s['type'] | join('|')) if s['type'] else 'any') }}"
    "{% if s['enum'] %} {{ s['enum'] | join('|') }}{% endif %}{% endfor %})"
    "{% if f['description'] %} - {{ f['description'] | trim }}{% endif %}{% endfor %}<|eot_id|>{% endif %}"
    "{% for m in messages %}"
    "{% if m['role'] not in ['system', 'user', 'assistant', 'tool'] %}"
    "{{ raise_exception('unknown role ' + m['role']) }}{% endif %}"
    "{% if tools and loop.first and m['role'] == 'system' %}"  # already in the tools turn
    "{% elif m['role'] == 'tool' %}<|user|><tool_response>{{ (m['content'] or '') | trim }}"
    "</tool_response><|eot_id|>"
    "{% else %}<|{{ m['role'] }}|>{{ (m['content'] or '') | trim }}"
    "{% for c in m['tool_calls'] or [] %}{% set c = c['function'] or c %}"
    '<tool_call>{"name": {{ c[\'name\'] | tojson }}, "arguments": '
    "{{ c['arguments'] if c['arguments'] is string else ((c['arguments'] or {}) | tojson) }}}</tool_call>"
    "{% endfor %}<|eot_id|>{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def tool_key(tool: dict) -> str:
    """`name: description`, what identifies a tool a model knows without being shown it: a client's
    function of the same name but another description is listed as usual."""
    fn = tool.get("function", tool)
    return f"{fn['name']}: {(fn.get('description') or '').strip()}"


def known_tools_template(known: list[dict]) -> str:
    """DLM_VOICE_TEMPLATE for a model trained to know the `known` tools (the built-ins) by heart: they
    are left out of the tool list, which then holds only the client's own functions (the six built-ins
    cost ~215 prompt tokens a turn). A conversation whose tools are all known renders as one without
    tools. The known tools' keys (`tool_key`) are written into the template, so the checkpoint carries
    them and the runtime passes every tool as before."""
    keys = json.dumps(sorted(tool_key(t) for t in known))
    listed = (
        "{% set ns = namespace(listed=[]) %}{% for t in tools or [] %}"
        "{% if (t['function']['name'] ~ ': ' ~ (t['function']['description'] or '') | trim) not in "
        + keys
        + " %}{% set ns.listed = ns.listed + [t] %}{% endif %}{% endfor %}"
    )
    out = listed + DLM_VOICE_TEMPLATE
    for old, new in _LISTED:
        if old not in out:
            raise ValueError(f"DLM_VOICE_TEMPLATE changed: {old!r} not found")  # keep the two in step
        out = out.replace(old, new)
    return out


# Where DLM_VOICE_TEMPLATE reads `tools`, the known-tools template reads the tools it lists.
_LISTED = [
    ("{% if tools %}", "{% if ns.listed %}"),
    ("{% for t in tools %}", "{% for t in ns.listed %}"),
    ("{% if tools and loop.first", "{% if ns.listed and loop.first"),
]


def template_handles_tools(template: str | None) -> bool:
    """Whether a chat template renders tools itself (the Hugging Face convention passes `tools=`)."""
    return bool(template and re.search(r"\btools\b", template))


def uses_tools(messages: list[dict]) -> bool:
    """Whether a conversation holds tool calls or tool results."""
    return any(isinstance(m, dict) and (m.get("role") == "tool" or m.get("tool_calls")) for m in messages)


# ---- checking what callers pass ---------------------------------------------------------------


def check_tools(tools) -> list[dict] | None:
    """The tools as a list (None for none); ValueError for anything not in the Hugging Face form."""
    if not tools:
        return None
    if not isinstance(tools, (list, tuple)):
        raise ValueError(f"tools must be a list of tool dicts, got {type(tools).__name__}")
    for tool in tools:
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise ValueError(
                "each tool needs the form {'type': 'function', 'function': {'name': ..., "
                f"'description': ..., 'parameters': {{...}}}}}}, got {tool!r}"
            )
        if not isinstance(fn.get("parameters") or {}, dict):
            raise ValueError(f"tool {fn['name']!r}: 'parameters' must be a JSON-schema object")
    return list(tools)


def check_tool_calls(messages: list[dict]) -> None:
    """ValueError unless every assistant `tool_calls` entry names its function."""
    for m in messages:
        calls = m.get("tool_calls") if isinstance(m, dict) else None
        if calls is None:
            continue
        if not isinstance(calls, list):
            raise ValueError(f"'tool_calls' must be a list, got {calls!r}")
        for call in calls:
            fn = call.get("function", call) if isinstance(call, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise ValueError(
                    "each tool call needs the form {'type': 'function', 'function': {'name': ..., "
                    f"'arguments': {{...}}}}}}, got {call!r}"
                )


# ---- plain-text rendering, for templates that know no tools -----------------------------------


def tool_line(tool: dict) -> str:
    """`name(param: type, optional?: type a|b) - description`, as DLM_VOICE_TEMPLATE writes it."""
    fn = tool["function"]
    params = fn.get("parameters") or {}
    required = params.get("required") or []
    args = []
    for name, schema in (params.get("properties") or {}).items():
        kind = schema.get("type") or "any"
        kind = kind if isinstance(kind, str) else "|".join(kind)
        enum = f" {'|'.join(str(v) for v in schema['enum'])}" if schema.get("enum") else ""
        args.append(f"{name}{'' if name in required else '?'}: {kind}{enum}")
    description = (fn.get("description") or "").strip()
    return f"{fn['name']}({', '.join(args)})" + (f" - {description}" if description else "")


def tools_text(tools: list[dict], header: str = TOOLS_HEADER) -> str:
    """The header and the tool list, one line per tool."""
    return "\n".join([header, *(tool_line(t) for t in tools)])


def call_text(call: dict) -> str:
    """One call in the model's markup: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`."""
    fn = call.get("function", call)
    args = fn.get("arguments") or {}
    args = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
    name = json.dumps(fn["name"], ensure_ascii=False)
    return f'{CALL_OPEN}{{"name": {name}, "arguments": {args}}}{CALL_CLOSE}'


def fallback_messages(messages: list[dict], tools: list[dict] | None) -> list[dict]:
    """The conversation in roles every template knows: the tool list joins the system message, calls
    become the assistant's text, and each run of tool results becomes one user message (so templates
    that insist on alternating user/assistant turns still render it)."""
    out: list[dict] = []
    for i, m in enumerate(messages):
        if m["role"] == "tool":
            result = f"{RESPONSE_OPEN}{str(m['content']).strip()}{RESPONSE_CLOSE}"
            if i > 0 and messages[i - 1]["role"] == "tool":
                out[-1]["content"] += "\n" + result
            else:
                out.append({"role": "user", "content": result})
        elif m.get("tool_calls"):
            calls = "".join(call_text(c) for c in m["tool_calls"])
            rest = {k: v for k, v in m.items() if k != "tool_calls"}
            out.append({**rest, "content": (m["content"] or "").strip() + calls})
        else:
            out.append(dict(m))
    if tools:
        if out and out[0]["role"] == "system":
            system = str(out[0]["content"]).strip()
            out[0]["content"] = f"{system}\n{tools_text(tools)}" if system else tools_text(tools)
        else:
            out.insert(0, {"role": "system", "content": tools_text(tools)})
    return out


# ---- reading calls back out of a streamed reply -----------------------------------------------


@dataclass(frozen=True)
class ToolCall:
    """A well-formed call the model made."""

    name: str  # the tool's name, as the model wrote it
    arguments: str  # compact JSON text of an object (json.dumps of the parsed arguments)


@dataclass(frozen=True)
class BadToolCall:
    """Markup the model meant as a call but that cannot be run (malformed JSON, no name, ...)."""

    raw: str  # the call as written, tags included, for a log line or to show the model its mistake
    message: str  # what is wrong with it


ToolEvent = str | ToolCall | BadToolCall


def parse_call(body: str) -> ToolCall | BadToolCall:
    """The text between <tool_call> and </tool_call>. `arguments` may also be named "parameters" (some
    models write that), may be a string holding JSON, and may be left out for a call without any."""
    raw, body = CALL_OPEN + body + CALL_CLOSE, body.strip()
    try:
        # The object, and nothing after it but stray characters a diffusion model may commit before the
        # closing tag ('{...}}</}}'): the call itself is whole and unambiguous.
        obj, end = json.JSONDecoder().raw_decode(body)
    except json.JSONDecodeError as exc:
        return BadToolCall(raw, f"the call is not valid JSON: {exc}")
    if "{" in body[end:]:
        return BadToolCall(raw, "the call holds more than one JSON object")
    if not isinstance(obj, dict):
        return BadToolCall(raw, "the call is not a JSON object")
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        return BadToolCall(raw, 'the call has no "name" string')
    args = obj["arguments"] if "arguments" in obj else obj.get("parameters", {})
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            return BadToolCall(raw, '"arguments" is a string that does not hold JSON')
    if not isinstance(args, dict):
        return BadToolCall(raw, '"arguments" is not a JSON object')
    return ToolCall(name, json.dumps(args, ensure_ascii=False))


def offered_call(call: ToolCall, tools: list[dict] | None) -> ToolCall | None:
    """The call as one of the offered `tools` (chat-template shape) takes it, or None when none does.

    A small model may copy a function's arguments right and its name wrong ("check_text" with the
    `to` and `message` of the offered `text_contact`). Such a call means the one offered function whose
    parameters take exactly those arguments (all its required ones, none it does not know); with no
    such function, or several ({} fits every function without required parameters), it means none."""
    functions = [t.get("function", t) for t in tools or []]
    if any(f.get("name") == call.name for f in functions):
        return call
    args = set(json.loads(call.arguments))
    fits = [f["name"] for f in functions if _takes(f.get("parameters") or {}, args)]
    return ToolCall(fits[0], call.arguments) if len(fits) == 1 else None


def _takes(parameters: dict, args: set[str]) -> bool:
    return set(parameters.get("required", [])) <= args <= set(parameters.get("properties", {}))


def _partial_tag(text: str) -> int:
    """Length of the longest tail of `text` that could still grow into a tag."""
    for n in range(min(len(text), len(CALL_CLOSE) - 1), 0, -1):
        if CALL_OPEN.startswith(text[-n:]) or CALL_CLOSE.startswith(text[-n:]):
            return n
    return 0


class ToolCallParser:
    """Splits a reply's text, fed in order as it is committed, into events: plain `str` to speak or
    show (never any part of the markup), `ToolCall` and `BadToolCall`.

    The tail of a push that could be the start of a tag waits for the next push. Text between calls
    passes through, except a stretch of only whitespace next to a call (the model's separator). A
    stray </tool_call> outside a call is dropped; a <tool_call> opened inside another ends the first
    as a BadToolCall; a call still open at `flush()` is a BadToolCall."""

    def __init__(self):
        self._reset()

    def _reset(self) -> None:
        self._buf = ""  # outside a call: text held back (a possible tag start); inside: the call so far
        self._in_call = False
        self._held = ""  # leading whitespace of the current text stretch, dropped if a call follows
        self._fresh = True  # the current stretch (since the start or the last tag) has emitted nothing
        self._after_call = False  # a call has been seen: a whitespace-only ending is dropped

    def push(self, text: str) -> list[ToolEvent]:
        self._buf += text
        events: list[ToolEvent] = []
        while self._take_call(events) if self._in_call else self._take_text(events):
            pass
        return events

    def flush(self) -> list[ToolEvent]:
        """The events left at the end of the reply; the parser is then ready for another."""
        events: list[ToolEvent] = []
        if self._in_call:
            events.append(BadToolCall(CALL_OPEN + self._buf, "the reply ended inside a <tool_call>"))
        else:
            self._emit(self._buf, events, at_tag=False)
            if self._held and not self._after_call:
                events.append(self._held)
        self._reset()
        return events

    def _take_text(self, events: list[ToolEvent]) -> bool:
        """Outside a call: hand out text up to the next tag; True if a tag was consumed."""
        found = [(i, tag) for tag in (CALL_STEM, CALL_CLOSE) if (i := self._buf.find(tag)) != -1]
        if not found:
            keep = _partial_tag(self._buf)
            self._emit(self._buf[: len(self._buf) - keep], events, at_tag=False)
            self._buf = self._buf[len(self._buf) - keep :]
            return False
        i, tag = min(found)
        if tag == CALL_STEM:
            if i + len(CALL_STEM) == len(self._buf):  # the ">" may come with the next push
                self._emit(self._buf[:i], events, at_tag=True)
                self._buf = self._buf[i:]
                return False
            if self._buf.startswith(CALL_OPEN, i):
                tag = CALL_OPEN
        self._emit(self._buf[:i], events, at_tag=True)
        self._buf = self._buf[i + len(tag) :]
        self._in_call = tag != CALL_CLOSE
        return True

    def _take_call(self, events: list[ToolEvent]) -> bool:
        """Inside a call: parse it once it is closed; True if the call ended."""
        close, reopen = self._buf.find(CALL_CLOSE), self._buf.find(CALL_OPEN)
        if reopen != -1 and (close == -1 or reopen < close):
            events.append(BadToolCall(CALL_OPEN + self._buf[:reopen], "a <tool_call> was never closed"))
            self._buf = self._buf[reopen + len(CALL_OPEN) :]
            self._after_call = True
            return True
        if close == -1:
            return False
        events.append(parse_call(self._buf[:close]))
        self._buf = self._buf[close + len(CALL_CLOSE) :]
        self._in_call, self._after_call = False, True
        return True

    def _emit(self, text: str, events: list[ToolEvent], at_tag: bool) -> None:
        """Hand out text, holding a stretch's leading whitespace until it proves to be more than a
        separator; at a tag the stretch ends and held whitespace is dropped."""
        if self._fresh:
            self._held += text
            text = ""
            if self._held.strip():
                text, self._held, self._fresh = self._held, "", False
        if text:
            events.append(text)
        if at_tag:
            self._held, self._fresh = "", True


def parse_tool_calls(text: str) -> list[ToolEvent]:
    """All the events of a finished reply at once."""
    parser = ToolCallParser()
    return parser.push(text) + parser.flush()
