"""The OpenAI chat-completions protocol: requests checked into what the engine takes, replies built as
the protocol has them, errors in OpenAI's shape. Torch-free; `lm_server.py` serves it.

    req = parse_request(body, served_model, default_preset)   # ChatError (a 4xx) for a bad request
    chunk(req_id, model, created, {"content": "Hel"})          # one `chat.completion.chunk`

A request's messages become the engine's Hugging Face chat messages (an assistant's `tool_calls` with
their arguments as objects, `tool` results, text content parts joined), its `tools` are the same
function dicts the chat templates render, and `tool_choice` becomes the opening the reply is made to
start with (`tool_turn.forced_prefix`). Our extension rides in the body as `dlm`: `{"preset", "threshold",
"max_steps_per_block"}` as in the Realtime `session.dlm`, and `session_id`, which keeps the conversation's
prompt cache in the engine between requests.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from http import HTTPStatus

from assistant.config import MAX_REPLY_TOKENS, DlmKnobs
from assistant.tool_turn import forced_prefix

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # OpenAI's rule for function names
MAX_TEMPERATURE = 2.0  # OpenAI's range is [0, 2]
MAX_SESSION_ID_CHARS = 128
# Request fields we do not implement: refused unless they ask for the default, never silently ignored.
UNSUPPORTED_DEFAULTS = {"n": 1, "stop": None, "logprobs": False, "top_logprobs": None}


class ChatError(Exception):
    """A request refused, as OpenAI refuses it: an HTTP status and `{"error": {...}}`."""

    def __init__(
        self,
        message: str,
        param: str | None = None,
        code: str | None = None,
        status: HTTPStatus = HTTPStatus.BAD_REQUEST,
        kind: str = "invalid_request_error",
    ):
        super().__init__(message)
        self.message, self.param, self.code, self.status, self.kind = message, param, code, status, kind

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


@dataclass
class ChatRequest:
    model: str
    messages: list[dict]  # Hugging Face chat messages
    tools: list[dict] | None  # the functions offered (after tool_choice), as chat templates take them
    prefix: str  # how the reply must start (a forced call's opening), "" when the model chooses
    max_tokens: int
    temperature: float | None  # None: the decoding's own
    seed: int | None
    knobs: DlmKnobs
    session_id: str | None
    stream: bool
    include_usage: bool  # stream_options.include_usage: a last chunk with the token counts


def parse_request(body: bytes, served: str, default_preset: str) -> ChatRequest:
    """The request, checked. ChatError names the offending field (`param`)."""
    try:
        obj = json.loads(body or b"null")
    except ValueError as e:
        raise ChatError(f"the body is not valid JSON: {e}") from e
    if not isinstance(obj, dict):
        raise ChatError("the body must be a JSON object")
    model = obj.get("model")
    if model != served:
        raise ChatError(
            f"the model {model!r} does not exist; this server has {served!r}",
            "model",
            "model_not_found",
            HTTPStatus.NOT_FOUND,
        )
    for name, default in UNSUPPORTED_DEFAULTS.items():
        if obj.get(name, default) not in (default, None):
            raise ChatError(f"{name} is not supported by this server", name, "unsupported_parameter")
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ChatError("messages must be a non-empty list", "messages")
    tools, prefix = _tools(obj.get("tools"), obj.get("tool_choice"))
    stream = _typed(obj, "stream", bool, False)
    options = _typed(obj, "stream_options", dict, {})
    return ChatRequest(
        model=model,
        messages=[_message(m, f"messages[{i}]") for i, m in enumerate(messages)],
        tools=tools,
        prefix=prefix,
        max_tokens=_max_tokens(obj),
        temperature=_temperature(obj.get("temperature")),
        seed=_typed(obj, "seed", int, None),
        knobs=_knobs(obj.get("dlm"), default_preset),
        session_id=_session_id(obj.get("dlm")),
        stream=stream,
        include_usage=stream and bool(options.get("include_usage")),
    )


def _typed(obj: dict, name: str, kind: type, default):
    value = obj.get(name)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ChatError(f"{name} must be a {kind.__name__}", name)
    return value


def _message(m, param: str) -> dict:
    if not isinstance(m, dict):
        raise ChatError("each message must be an object", param)
    role = ROLES.get(m.get("role"))
    if role is None:
        raise ChatError(f"role must be one of {sorted(ROLES)}", f"{param}.role")
    out = {"role": role, "content": _content(m.get("content"), f"{param}.content")}
    calls = m.get("tool_calls")
    if role == "assistant" and calls:
        if not isinstance(calls, list):
            raise ChatError("tool_calls must be a list", f"{param}.tool_calls")
        out["tool_calls"] = [_call(c, f"{param}.tool_calls[{j}]") for j, c in enumerate(calls)]
    return out


def _content(content, param: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if len(texts) == len(content) and all(isinstance(t, str) for t in texts):
            return "".join(texts)
    raise ChatError("content must be a string or a list of text parts (only text is supported)", param)


def _call(call, param: str) -> dict:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise ChatError("a tool call is {'type': 'function', 'function': {'name', 'arguments'}}", param)
    args = fn.get("arguments") or "{}"
    try:
        args = json.loads(args) if isinstance(args, str) else args
    except ValueError as e:
        raise ChatError("a tool call's arguments must be a JSON object", f"{param}.function.arguments") from e
    if not isinstance(args, dict):
        raise ChatError("a tool call's arguments must be a JSON object", f"{param}.function.arguments")
    return {"type": "function", "function": {"name": fn["name"], "arguments": args}}


def _tools(tools, choice) -> tuple[list[dict] | None, str]:
    """(the functions offered, the reply's forced opening) from `tools` and `tool_choice`."""
    if tools is not None and not isinstance(tools, list):
        raise ChatError("tools must be a list", "tools")
    defs = [_tool(t, f"tools[{i}]") for i, t in enumerate(tools or [])]
    choice = "auto" if choice is None else choice
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") if choice.get("type") == "function" else None
        named = [t for t in defs if t["function"]["name"] == name]
        if not named:
            raise ChatError("tool_choice names a function that is not in tools", "tool_choice")
        return named, forced_prefix({"name": name})
    if choice not in ("auto", "none", "required"):
        raise ChatError("tool_choice must be 'auto', 'none', 'required' or a named function", "tool_choice")
    if choice == "required" and not defs:
        raise ChatError("tool_choice 'required' needs tools", "tool_choice")
    if choice == "none" or not defs:
        return None, ""
    return defs, forced_prefix(choice)


def _tool(tool, param: str) -> dict:
    fn = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not TOOL_NAME.match(fn["name"]):
        raise ChatError(
            "a tool is {'type': 'function', 'function': {'name': [A-Za-z0-9_-]{1,64}, ...}}", param
        )
    params = fn.get("parameters") or {"type": "object", "properties": {}}
    if not isinstance(params, dict):
        raise ChatError("parameters must be a JSON schema object", f"{param}.function.parameters")
    description = fn.get("description") or ""
    return {
        "type": "function",
        "function": {"name": fn["name"], "description": description, "parameters": params},
    }


def _max_tokens(obj: dict) -> int:
    name = "max_completion_tokens" if obj.get("max_completion_tokens") is not None else "max_tokens"
    value = _typed(obj, name, int, MAX_REPLY_TOKENS)
    if value < 1:
        raise ChatError(f"{name} must be at least 1", name)
    return value


def _temperature(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_TEMPERATURE:
        raise ChatError(f"temperature must be a number in [0, {MAX_TEMPERATURE}]", "temperature")
    return float(value)


def _knobs(dlm, default_preset: str) -> DlmKnobs:
    if dlm is None:
        return DlmKnobs(preset=default_preset)
    if not isinstance(dlm, dict):
        raise ChatError("dlm must be an object", "dlm")
    fields = {k: dlm[k] for k in ("preset", "threshold", "max_steps_per_block") if dlm.get(k) is not None}
    try:
        return DlmKnobs(**{"preset": default_preset, **fields})
    except (ValueError, TypeError) as e:
        raise ChatError(str(e), "dlm") from e


def _session_id(dlm) -> str | None:
    sid = dlm.get("session_id") if isinstance(dlm, dict) else None
    if sid is not None and (not isinstance(sid, str) or not 0 < len(sid) <= MAX_SESSION_ID_CHARS):
        raise ChatError(f"dlm.session_id must be a string of 1-{MAX_SESSION_ID_CHARS} characters", "dlm")
    return sid


# ---- what goes back -----------------------------------------------------------------------------


def _envelope(obj: str, req_id: str, model: str, created: int, choices: list, **more) -> dict:
    """The fields every reply object of the protocol carries."""
    return {"id": req_id, "object": obj, "created": created, "model": model, "choices": choices, **more}


def chunk(req_id: str, model: str, created: int, delta: dict, finish: str | None = None) -> dict:
    """One `chat.completion.chunk` of a streamed reply."""
    choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
    return _envelope("chat.completion.chunk", req_id, model, created, [choice])


def usage_chunk(req_id: str, model: str, created: int, usage: dict) -> dict:
    """The last chunk when `stream_options.include_usage` asked for it: no choices, the counts."""
    return _envelope("chat.completion.chunk", req_id, model, created, [], usage=usage)


def tool_call(index: int, call_id: str, name: str, arguments: str) -> dict:
    """A whole call, as the first (and here only) delta of tool call `index`."""
    return {
        "index": index,
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def completion(req_id: str, model: str, created: int, text: str, calls: list[dict], finish: str, usage):
    """The non-streamed reply: one `chat.completion`."""
    message = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
    choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
    return _envelope("chat.completion", req_id, model, created, [choice], usage=usage)


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    total = prompt_tokens + completion_tokens
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": total}
