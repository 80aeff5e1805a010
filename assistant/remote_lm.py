"""An LM reached over the network, on the OpenAI chat-completions protocol: our `lm-server`, or vLLM or
SGLang serving a diffusion checkpoint. It plugs in where the in-process `DlmEngine` is used.

    lm = RemoteLM.connect("http://127.0.0.1:8766/v1", api_key=None, model=None)   # asks /v1/models
    for c in lm.reply(messages, RemoteSampling(knobs, 128), session_id, tools, prefix):
        ...                                    # Committed chunks, as the local sampler yields them

`reply` is a synchronous iterator, pulled through `ThreadIter` like the local sampler: the request is
sent on the first `next` and every streamed content delta is one `Committed`. A tool call, which the
protocol streams as deltas of its name and arguments, becomes our call markup again once it is whole, so
the reply's `ToolCallParser` reads it as it reads the local model's text. `close()` closes the connection,
which is how the server learns to stop generating (a barge-in, a held reply thrown away); `cancel()`, from
any thread, cuts a read that waits for the next chunk. Everything else (turn-taking, tools, speech) stays
in the process that holds the conversation.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from urllib.parse import urlsplit

from assistant.config import REMOTE_FAMILY, RemoteSampling
from assistant.tool_turn import choice_of_prefix
from dlm_core.decoding import Committed
from dlm_core.presets import AUTO
from dlm_core.tool_calls import call_text

CONNECT_TIMEOUT_S = 10.0  # reaching the server (and asking /v1/models at start)
READ_TIMEOUT_S = 60.0  # longest wait for the next chunk of a reply before it fails
DEFAULT_CONTEXT = 4096  # tokens, when the server does not say (`max_model_len` is vLLM's and ours)
# The remote tokenizer is not ours to run: the history kept here is trimmed by an estimate of its tokens.
# English BPE averages 3-4 characters per token; counting the JSON wrapping too keeps the estimate high.
CHARS_PER_TOKEN = 3
SSE_DATA = b"data:"
SSE_DONE = "[DONE]"


class RemoteLMError(OSError):
    """The LM server could not be reached, refused a request or broke off a reply."""


class RemoteLM:
    family = REMOTE_FAMILY  # sessions hand it their knobs (RemoteSampling), not a sampler
    tokenizer = None  # the server counts its own tokens

    def __init__(
        self,
        url: str,
        api_key: str | None,
        model: str,
        context_len: int,
        knows_tools: bool,
        ours: bool = False,
    ):
        self.url, self.api_key, self.model = url.rstrip("/"), api_key, model
        self.context_len, self.knows_tools = context_len, knows_tools
        self.ours = ours  # our lm-server: it takes the `dlm` extension (strict servers refuse unknown fields)

    @classmethod
    def connect(cls, url: str, api_key: str | None = None, model: str | None = None) -> RemoteLM:
        """Ask the server which models it serves: `model` (None: the first listed) must be one."""
        status, body = _get(url.rstrip("/") + "/models", api_key)
        if status != http.HTTPStatus.OK:
            raise RemoteLMError(f"the LM server at {url} answered {status} to /models: {_message(body)}")
        try:
            listed = {m["id"]: m for m in json.loads(body)["data"]}
        except (ValueError, KeyError, TypeError) as e:
            raise RemoteLMError(f"{url}/models did not list models in the OpenAI shape") from e
        name = model or next(iter(listed), None)
        if name not in listed:
            raise RemoteLMError(f"the LM server at {url} serves {sorted(listed)}, not {model!r}")
        entry = listed[name]
        facts = entry.get("dlm") if isinstance(entry.get("dlm"), dict) else None
        # A server of another kind serves a real model with its own tool parser: it may be offered tools.
        knows_tools = bool((facts or {}).get("knows_tools", True))
        context = int(entry.get("max_model_len") or DEFAULT_CONTEXT)
        return cls(url, api_key, name, context, knows_tools, ours=facts is not None)

    def reply(
        self,
        messages: list[dict],
        cfg: RemoteSampling,
        session_id: str | None = None,
        tools: list[dict] | None = None,
        prefix: str = "",
    ) -> RemoteStream:
        """The streamed reply, as `DlmEngine.reply` has it (`prefix`: a forced call's opening, sent as
        `tool_choice`; the stream holds what follows it)."""
        body = {
            "model": self.model,
            "messages": wire_messages(messages),
            "stream": True,
            "max_tokens": cfg.max_new_tokens,
        }
        if tools:
            choice = choice_of_prefix(prefix)
            body["tools"] = tools
            body["tool_choice"] = (
                choice if isinstance(choice, str) else {"type": "function", "function": choice}
            )
        knobs = {k: v for k, v in vars(cfg.knobs).items() if v is not None and (k, v) != ("preset", AUTO)}
        extension = {**knobs, **({"session_id": session_id} if session_id else {})}
        if extension and self.ours:
            body["dlm"] = extension
        return RemoteStream(self, body, prefix)

    def messages_to_drop(
        self, messages: list[dict], max_new_tokens: int, tools: list[dict] | None = None
    ) -> int:
        """How many of the oldest non-system messages to drop so that the chat fits the server's context,
        by an estimate of its tokens (the server, whose tokenizer counts exactly, may trim further)."""
        room = (self.context_len - max_new_tokens) * CHARS_PER_TOKEN
        if room <= 0:
            raise ValueError(
                f"max_new_tokens {max_new_tokens} leaves no room in a context of {self.context_len}"
            )
        size = len(json.dumps(tools)) if tools else 0
        sizes = [len(json.dumps(m)) for m in messages]
        droppable = [i for i, m in enumerate(messages) if m["role"] != "system"]
        total, drop = sum(sizes) + size, 0
        while drop < len(droppable) - 1 and total > room:  # never the last one
            total -= sizes[droppable[drop]]
            drop += 1
            while drop < len(droppable) - 1 and messages[droppable[drop]]["role"] == "tool":
                total -= sizes[droppable[drop]]  # a tool's result goes with the call it answers
                drop += 1
        return drop

    def drop_session(self, session_id: str) -> None:
        """The server keeps a conversation's cache by recency; nothing to free here."""

    def close(self) -> None:
        """No connection outlives its reply."""


def wire_messages(messages: list[dict]) -> list[dict]:
    """Hugging Face chat messages as the OpenAI protocol has them: a call's arguments as JSON text, an id
    per call, and each tool result naming the call it answers (in order, as the history keeps them)."""
    out, waiting, n = [], [], 0
    for m in messages:
        m = dict(m)
        if m.get("tool_calls"):
            calls = []
            for c in m["tool_calls"]:
                fn, n = c.get("function", c), n + 1
                args = fn.get("arguments") or {}
                args = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
                calls.append(
                    {
                        "id": f"call_{n}",
                        "type": "function",
                        "function": {"name": fn["name"], "arguments": args},
                    }
                )
                waiting.append(f"call_{n}")
            m["tool_calls"] = calls
        elif m["role"] == "tool":
            m["tool_call_id"] = waiting.pop(0) if waiting else f"call_{n}"
        out.append(m)
    return out


class RemoteStream:
    """One streamed reply of the LM server. `sent` and `headers_at` (perf_counter) time the request and
    the answer's first byte: the network hop's round trip as the turn's latency shows it."""

    def __init__(self, lm: RemoteLM, body: dict, prefix: str):
        self.lm, self.body, self.prefix = lm, body, prefix
        self.sent: float | None = None
        self.headers_at: float | None = None
        self._conn: http.client.HTTPConnection | None = None
        self._resp: http.client.HTTPResponse | None = None
        self._calls: dict[int, dict] = {}  # tool calls being streamed, by index
        self._done = self._cancelled = False

    def __iter__(self):
        return self

    def __next__(self) -> Committed:
        if self._done or self._cancelled:
            raise StopIteration
        try:
            if self._resp is None:
                self._open()
            while not self._cancelled and (event := self._next_event()) is not None:
                text = self._text(event)
                if text:
                    return Committed(text, [], 0)
        except (OSError, ValueError, http.client.HTTPException) as e:
            if self._cancelled:
                raise StopIteration from None
            if isinstance(e, RemoteLMError):
                raise
            raise RemoteLMError(f"the LM server at {self.lm.url} broke off the reply: {e}") from e
        if self._cancelled:  # cut while connecting or reading: nothing of it counts
            raise StopIteration
        self._done = True
        return Committed(self._whole_calls(all_of_them=True), [], 0, done=True)

    def _open(self) -> None:
        u = urlsplit(self.lm.url)
        conn = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
        self._conn = conn(u.hostname, u.port, timeout=CONNECT_TIMEOUT_S)
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            **_auth(self.lm.api_key),
        }
        self.sent = time.perf_counter()
        try:
            self._conn.connect()
            self._conn.sock.settimeout(READ_TIMEOUT_S)  # a reply may pause longer than a connect may take
            self._conn.request("POST", f"{u.path}/chat/completions", json.dumps(self.body).encode(), headers)
            resp = self._conn.getresponse()
        except OSError as e:
            raise RemoteLMError(f"cannot reach the LM server at {self.lm.url}: {e}") from e
        self.headers_at = time.perf_counter()
        if resp.status != http.HTTPStatus.OK:
            raise RemoteLMError(f"the LM server answered {resp.status}: {_message(resp.read())}")
        self._resp = resp

    def _next_event(self) -> dict | None:
        """The next `data:` event of the stream; None at its end."""
        while line := self._resp.readline():
            if not line.startswith(SSE_DATA):
                continue  # blank separators, comments, other fields
            data = line[len(SSE_DATA) :].strip().decode()
            if data == SSE_DONE:
                return None
            event = json.loads(data)
            if "error" in event:
                raise RemoteLMError(f"the LM server failed the reply: {_message(data.encode())}")
            return event
        return None

    def _text(self, event: dict) -> str:
        """What an event adds to the reply: its content, and the markup of every call now complete."""
        text = ""
        for choice in event.get("choices") or []:
            delta = choice.get("delta") or {}
            for tc in delta.get("tool_calls") or []:
                index = tc.get("index", 0)
                text += self._whole_calls(below=index)
                call = self._calls.setdefault(index, {"name": "", "arguments": ""})
                fn = tc.get("function") or {}
                call["name"] += fn.get("name") or ""
                call["arguments"] += fn.get("arguments") or ""
            text += delta.get("content") or ""
            if choice.get("finish_reason"):
                text += self._whole_calls(all_of_them=True)
        return text

    def _whole_calls(self, below: int | None = None, all_of_them: bool = False) -> str:
        """The markup of the calls that are complete (those before `below`, or all), once each."""
        done = sorted(i for i in self._calls if all_of_them or i < below)
        text = "".join(call_text(self._calls.pop(i)) for i in done)
        if text and self.prefix:  # the reply's parser already holds a forced call's opening
            text, self.prefix = text.removeprefix(self.prefix), ""
        return text

    def cancel(self) -> None:
        """Cut the connection now, from any thread: a read waiting for the next chunk returns."""
        self._cancelled = True
        sock = self._conn.sock if self._conn is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed

    def close(self) -> None:
        """End the reply: the closed connection tells the server to stop generating."""
        self._done = True
        if self._conn is not None:
            self._conn.close()


def _auth(api_key: str | None) -> dict:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _get(url: str, api_key: str | None) -> tuple[int, bytes]:
    u = urlsplit(url)
    conn_cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(u.hostname, u.port, timeout=CONNECT_TIMEOUT_S)
    try:
        conn.request("GET", u.path, headers=_auth(api_key))
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (OSError, http.client.HTTPException) as e:
        raise RemoteLMError(f"cannot reach the LM server at {url}: {e}") from e
    finally:
        conn.close()


def _message(body: bytes) -> str:
    """An OpenAI error body's message, or the body itself (cut short)."""
    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return body[:200].decode(errors="replace")
