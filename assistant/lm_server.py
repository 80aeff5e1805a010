"""The diffusion LM as a network service on the OpenAI protocol (`python -m assistant lm-server`).

    GET  /v1/models              the served model, with `max_model_len` (as vLLM lists it) and our `dlm` facts
    POST /v1/chat/completions    one reply, streamed as server-sent events or as one JSON object
    GET  /healthz                {"ok": true, "generations": n, ...} (no key needed: load balancers ask it)

Every request is one `DlmEngine.reply`, so the engine batches the steps of all live requests into
shared forward passes, as it does for the sessions of one process. A streamed reply sends each step's
committed text as a content delta; tool calls are parsed out of the text (`ToolCallParser`, as a voice
reply does) and sent whole, as one tool-call delta each. While a reply runs the connection is watched:
a client that closes it (an SDK stream closed, a barge-in in a gateway) stops its generation before the
next forward pass. Bad requests get OpenAI's error JSON with a 4xx status; the server goes on.
Who may call is `access.Gate`'s decision, as for `serve`: loopback by default, an API key beyond it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus

from websockets.datastructures import MultipleValuesError

from assistant import http1
from assistant import openai_chat as oc
from assistant.access import Gate
from assistant.bridge import END, ThreadIter, blocking
from assistant.config import DEFAULT_PRESET, ServerConfig
from assistant.turns import new_id
from dlm_core.tool_calls import BadToolCall, ToolCall, ToolCallParser

log = logging.getLogger(__name__)
DEFAULT_LM_PORT = 8766  # beside serve's 8765
DEFAULT_MODEL_NAME = "dlm-voice"  # the bundled model's name on the wire (--model: the name given)
# Generations running at once; more get 429. The engine merges at most dlm_core.engine.MAX_BATCH rows per
# forward pass, so beyond a few batches' worth a request only waits longer than a client would.
DEFAULT_MAX_GENERATIONS = 32
SPARE_THREADS = 4  # worker threads beyond one per generation: starting replies, closing those that ended
OUTCOMES = ("completed", "disconnected", "failed")


@dataclass
class LmServerConfig:
    """Where the LM server listens and who may call it (`server`: host, port, API key, origins, with the
    same rule as `serve`), the name it serves the model under, and how requests decode by default."""

    server: ServerConfig = field(default_factory=lambda: ServerConfig(port=DEFAULT_LM_PORT))
    model_name: str = DEFAULT_MODEL_NAME
    preset: str = DEFAULT_PRESET  # the knobs of a request that sends no `dlm` (auto: the family's own)
    max_generations: int = DEFAULT_MAX_GENERATIONS

    def __post_init__(self):
        if not isinstance(self.max_generations, int) or self.max_generations < 1:
            raise ValueError(f"max_generations must be a positive integer, got {self.max_generations!r}")
        if not self.model_name:
            raise ValueError("the served model needs a name")


class ClientGone(Exception):
    """The client closed the connection while its reply was being made."""


class LmServer:
    def __init__(self, engine, cfg: LmServerConfig | None = None):
        self.engine, self.cfg = engine, cfg or LmServerConfig()
        self.gate = Gate(self.cfg.server)
        self.generations = 0  # replies being made now
        self.outcomes = dict.fromkeys(OUTCOMES, 0)  # replies ended, by how
        self.port: int | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task] = set()

    async def start(self) -> LmServer:
        # Each live generation holds a worker thread while its step waits for the engine's batched pass;
        # asyncio's default pool (cores + 4 threads) would cap the rows of a pass at that.
        workers = self.cfg.max_generations + SPARE_THREADS
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(workers, "lm-step"))
        self._server = await asyncio.start_server(
            self._connection, self.cfg.server.host, self.cfg.server.port, limit=http1.MAX_HEAD_BYTES
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://{self.cfg.server.host}:{self.port}/v1"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):  # their generations close on the way out
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._connections.add(task)
        try:
            while (req := await http1.read_request(reader, writer)) is not None:
                if not await self._route(req, reader, writer):
                    break
        except http1.HttpError as e:
            err = oc.ChatError(e.message, status=e.status)
            with contextlib.suppress(ConnectionError):
                await http1.send_json(writer, e.status, err.body(), keep_alive=False)
        except (ConnectionError, ClientGone, asyncio.CancelledError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def _route(self, req: http1.HttpRequest, reader, writer) -> bool:
        """Answer one request; False when the connection must close after it."""
        if req.path == "/healthz" and req.method == "GET":
            await http1.send_json(writer, HTTPStatus.OK, self.health(), req.keep_alive)
            return req.keep_alive
        try:
            self._check_access(req)
            if req.path == "/v1/models" and req.method == "GET":
                await http1.send_json(writer, HTTPStatus.OK, self.models(), req.keep_alive)
                return req.keep_alive
            if req.path == "/v1/chat/completions" and req.method == "POST":
                return await self._chat(req, reader, writer)
            raise oc.ChatError(
                f"no route {req.method} {req.path}", code="not_found", status=HTTPStatus.NOT_FOUND
            )
        except oc.ChatError as e:
            await http1.send_json(writer, e.status, e.body(), req.keep_alive)
            return req.keep_alive
        except (ClientGone, ConnectionError):
            raise
        except Exception as exc:  # noqa: BLE001 -- a fault of ours is a 500 for this request only
            log.exception("a request failed")
            err = oc.ChatError(f"{type(exc).__name__}: {exc}", kind="server_error")
            await http1.send_json(writer, HTTPStatus.INTERNAL_SERVER_ERROR, err.body(), keep_alive=False)
            return False

    def _check_access(self, req: http1.HttpRequest) -> None:
        try:
            refused = self.gate.check(req.headers)
        except MultipleValuesError as e:
            raise oc.ChatError("a header that may appear once appears twice") from e
        if refused is not None:
            log.warning("refused a request: %s", refused.message)
            code = "invalid_api_key" if refused.status == HTTPStatus.UNAUTHORIZED else "forbidden"
            raise oc.ChatError(refused.message, code=code, status=refused.status)

    def health(self) -> dict:
        """Liveness, and the load: replies running and ended, the engine's forward passes and the rows the
        recent ones carried (how well requests batch)."""
        sizes = getattr(self.engine, "batch_sizes", None) or []
        engine = {"forward_passes": getattr(self.engine, "forward_calls", None)}
        engine["rows_per_pass"] = round(sum(sizes) / len(sizes), 2) if sizes else None
        return {
            "ok": True,
            "model": self.cfg.model_name,
            "generations": self.generations,
            **self.outcomes,
            **engine,
        }

    def models(self) -> dict:
        e = self.engine
        entry = {
            "id": self.cfg.model_name,
            "object": "model",
            "created": 0,
            "owned_by": "dlm-voice",
            "max_model_len": e.context_len,
            "dlm": {"family": e.family, "knows_tools": e.knows_tools},
        }
        return {"object": "list", "data": [entry]}

    # ---- one chat completion ---------------------------------------------------------------------
    async def _chat(self, req: http1.HttpRequest, reader, writer) -> bool:
        chat = oc.parse_request(req.body, self.cfg.model_name, self.cfg.preset)
        if self.generations >= self.cfg.max_generations:
            raise oc.ChatError(
                f"the server makes {self.cfg.max_generations} replies at once; try again",
                code="too_many_generations",
                status=HTTPStatus.TOO_MANY_REQUESTS,
                kind="rate_limit_error",
            )
        gen, prompt_tokens = await blocking(self._start, chat)
        reply = _Reply(new_id("chatcmpl"), chat.model, int(time.time()), prompt_tokens)
        self.generations += 1
        outcome = "failed"
        try:
            if chat.stream:
                keep = await self._stream(gen, chat, reply, reader, writer, req.keep_alive)
            else:
                keep = await self._whole(gen, chat, reply, reader, writer, req.keep_alive)
            outcome = "failed" if reply.failed else "completed"
            return keep
        except (ClientGone, ConnectionError):
            outcome = "disconnected"
            raise ClientGone() from None
        finally:
            gen.close()  # already closed when it ran; this frees one that never got to run
            self.generations -= 1
            self.outcomes[outcome] += 1

    def _start(self, chat: oc.ChatRequest):
        """The engine's reply iterator and the prompt's length (ChatError if it cannot be made)."""
        sampler = chat.knobs.sampler(chat.max_tokens, self.engine.family)
        over = {"temperature": chat.temperature, "seed": chat.seed}
        sampler = sampler.replace(**{k: v for k, v in over.items() if v is not None})
        try:
            prompt = self.engine.prompt_ids(chat.messages, chat.max_tokens, chat.tools)
            gen = self.engine.reply(
                chat.messages, sampler, session_id=chat.session_id, tools=chat.tools, prefix=chat.prefix
            )
        except ValueError as e:  # the conversation does not fit, a template refused it, ...
            raise oc.ChatError(
                str(e), "messages", "context_length_exceeded" if "context" in str(e) else None
            ) from e
        return gen, len(prompt)

    async def _stream(self, gen, chat: oc.ChatRequest, reply: _Reply, reader, writer, keep: bool) -> bool:
        stream = await http1.ChunkedStream.open(writer, "text/event-stream", keep)

        async def send(obj: dict | str) -> None:
            data = obj if isinstance(obj, str) else json.dumps(obj)
            await stream.write(b"data: " + data.encode() + b"\n\n")

        async def on_text(text: str) -> None:
            await send(reply.chunk({"content": text}))

        async def on_call(call: dict) -> None:
            await send(reply.chunk({"tool_calls": [call]}))

        async def run() -> None:
            await send(reply.chunk({"role": "assistant", "content": ""}))
            try:
                await self._generate(gen, chat, reply, on_text, on_call)
            except Exception as exc:  # noqa: BLE001 -- the stream has begun: the error is its last event
                log.exception("a generation failed")
                reply.failed = True
                await send(oc.ChatError(f"{type(exc).__name__}: {exc}", kind="server_error").body())
            else:
                await send(reply.chunk({}, reply.finish))
                if chat.include_usage:
                    await send(oc.usage_chunk(reply.id, reply.model, reply.created, reply.usage()))
            await send("[DONE]")
            await stream.end()

        return await _watched(run(), reader) and keep and not reply.failed

    async def _whole(self, gen, chat: oc.ChatRequest, reply: _Reply, reader, writer, keep: bool) -> bool:
        parts: list[str] = []

        async def on_text(text: str) -> None:
            parts.append(text)

        async def on_call(call: dict) -> None:
            pass  # kept in reply.calls

        async def run() -> None:
            await self._generate(gen, chat, reply, on_text, on_call)

        try:
            clean = await _watched(run(), reader)
        except ClientGone:
            raise
        except Exception as exc:  # noqa: BLE001 -- a failed generation is a 500, the server goes on
            log.exception("a generation failed")
            reply.failed = True
            err = oc.ChatError(f"{type(exc).__name__}: {exc}", kind="server_error")
            await http1.send_json(writer, HTTPStatus.INTERNAL_SERVER_ERROR, err.body(), keep)
            return keep
        body = oc.completion(
            reply.id, reply.model, reply.created, "".join(parts), reply.calls, reply.finish, reply.usage()
        )
        await http1.send_json(writer, HTTPStatus.OK, body, keep)
        return clean and keep

    async def _generate(self, gen, chat: oc.ChatRequest, reply: _Reply, on_text, on_call) -> None:
        """Pull the engine's committed chunks; text goes to on_text, whole calls to on_call (text after the
        first call is dropped: the reply's turn is the call). Closing stops the engine's generation."""
        it, parser = ThreadIter(gen), ToolCallParser()
        parser.push(chat.prefix)  # a forced call's opening is already written
        try:
            while (c := await it.next()) is not END:
                reply.tokens += len(c.token_ids)
                events = (parser.push(c.text) if c.text else []) + (parser.flush() if c.done else [])
                for ev in events:
                    await reply.event(ev, on_text, on_call)
                if c.done:
                    break
        finally:
            await it.aclose()
        reply.finish = (
            "tool_calls" if reply.calls else "length" if reply.tokens >= chat.max_tokens else "stop"
        )


@dataclass
class _Reply:
    """One completion as it is made: ids for its chunks, its calls and its token count."""

    id: str
    model: str
    created: int
    prompt_tokens: int
    tokens: int = 0
    calls: list = field(default_factory=list)
    finish: str = "stop"
    failed: bool = False  # the engine raised: the client got an error instead of the rest

    def chunk(self, delta: dict, finish: str | None = None) -> dict:
        return oc.chunk(self.id, self.model, self.created, delta, finish)

    def usage(self) -> dict:
        return oc.usage(self.prompt_tokens, self.tokens)

    async def event(self, ev, on_text, on_call) -> None:
        if isinstance(ev, ToolCall):
            call = oc.tool_call(len(self.calls), new_id("call"), ev.name, ev.arguments)
            self.calls.append(call)
            await on_call(call)
        elif isinstance(ev, BadToolCall):
            log.warning("the model wrote a malformed tool call (%s); it was dropped", ev.message)
        elif not self.calls:
            await on_text(ev)


async def _watched(work, reader: asyncio.StreamReader) -> bool:
    """Run `work` while watching the connection: a client that closes it first cancels `work` (raising
    ClientGone). True when the connection may carry another request (the client sent nothing meanwhile:
    we do not pipeline)."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(reader.read(http1.MAX_HEAD_BYTES))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
        if watch.done() and not task.done() and (watch.exception() is not None or not watch.result()):
            raise ClientGone()  # EOF or a reset: nobody reads the reply any more
        await task
        return not watch.done()
    finally:
        watch.cancel()
        if not task.done():
            task.cancel()  # its generation closes on the way out, before the next forward pass
            with contextlib.suppress(BaseException):
                await task
