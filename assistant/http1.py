"""HTTP/1.1 on asyncio streams, as much of it as a JSON API with streamed replies needs.

    while (req := await read_request(reader, writer)) is not None:  # None: the client closed
        await send_json(writer, HTTPStatus.OK, {...}, req.keep_alive)
        stream = await ChunkedStream.open(writer, "text/event-stream", req.keep_alive)
        await stream.write(b"data: ...\\n\\n"); await stream.end()

Requests carry a Content-Length body or none (a chunked request body is refused with 411, which every
JSON client avoids); responses are Content-Length or chunked, so a connection is kept alive between
requests unless the client says `Connection: close`. The standard library's `http.server` is threads and
blocking sockets; this is the asyncio edge the rest of the server already runs on.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from http import HTTPStatus

from websockets.datastructures import Headers, MultipleValuesError

MAX_HEAD_BYTES = 64 * 1024  # request line and headers; pass as asyncio.start_server(limit=...)
MAX_BODY_BYTES = 4 * 1024 * 1024  # a chat request: a long conversation with tools is well under 1 MiB
IDLE_TIMEOUT_S = 60.0  # a kept-alive connection without a new request this long is closed
BODY_TIMEOUT_S = 30.0  # a body announced by Content-Length must arrive within this (slow clients)
CRLF = b"\r\n"


class HttpError(Exception):
    """A request this server cannot read: answered with `status` and the connection closed."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class HttpRequest:
    method: str
    path: str  # without the query
    headers: Headers
    body: bytes
    keep_alive: bool  # HTTP/1.1 without `Connection: close`


async def read_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> HttpRequest | None:
    """The next request on the connection; None once the client has closed it (or stayed idle). A client
    that waits for `100 Continue` before sending its body (curl does) is told to go on."""
    try:
        head = await asyncio.wait_for(reader.readuntil(CRLF + CRLF), IDLE_TIMEOUT_S)
    except asyncio.IncompleteReadError as e:
        if not e.partial.strip():
            return None
        raise HttpError(HTTPStatus.BAD_REQUEST, "the request ended inside its headers") from e
    except asyncio.LimitOverrunError as e:
        raise HttpError(
            HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "the request headers are too large"
        ) from e
    except (asyncio.TimeoutError, ConnectionError):
        return None
    method, path, version, headers = _parse_head(head)
    try:
        size = int(headers.get("Content-Length") or 0)
        chunked = "Transfer-Encoding" in headers
        connection = (headers.get("Connection") or "").lower()
        expects = (headers.get("Expect") or "").lower() == "100-continue"
    except (ValueError, MultipleValuesError) as e:
        raise HttpError(HTTPStatus.BAD_REQUEST, "a bad Content-Length or a repeated header") from e
    if chunked:
        raise HttpError(HTTPStatus.LENGTH_REQUIRED, "send the request body with a Content-Length")
    if not 0 <= size <= MAX_BODY_BYTES:
        raise HttpError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body may be at most {MAX_BODY_BYTES} bytes"
        )
    if expects and size:
        writer.write(b"HTTP/1.1 100 Continue" + CRLF + CRLF)
    try:
        body = await asyncio.wait_for(reader.readexactly(size), BODY_TIMEOUT_S) if size else b""
    except (asyncio.IncompleteReadError, asyncio.TimeoutError) as e:
        raise HttpError(HTTPStatus.BAD_REQUEST, "the body is shorter than its Content-Length") from e
    keep = version == "HTTP/1.1" and "close" not in connection
    return HttpRequest(method, path.split("?", 1)[0], headers, body, keep)


def _parse_head(head: bytes) -> tuple[str, str, str, Headers]:
    lines = head[: -len(CRLF + CRLF)].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(HTTPStatus.BAD_REQUEST, "not an HTTP/1.x request line")
    headers = Headers()
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpError(HTTPStatus.BAD_REQUEST, "a malformed header line")
        headers[name] = value.strip()
    return parts[0], parts[1], parts[2], headers


def _head(status: HTTPStatus, fields: list[tuple[str, str]], keep_alive: bool) -> bytes:
    fields = [*fields, ("Connection", "keep-alive" if keep_alive else "close"), ("Cache-Control", "no-cache")]
    lines = [f"HTTP/1.1 {status.value} {status.phrase}", *(f"{k}: {v}" for k, v in fields)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def send(writer: asyncio.StreamWriter, status: HTTPStatus, body: bytes, ctype: str, keep_alive: bool):
    head = _head(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))], keep_alive)
    writer.write(head + body)
    await writer.drain()


async def send_json(writer: asyncio.StreamWriter, status: HTTPStatus, obj, keep_alive: bool) -> None:
    await send(writer, status, json.dumps(obj).encode(), "application/json", keep_alive)


class ChunkedStream:
    """A response body sent piece by piece as it is made (chunked transfer coding)."""

    def __init__(self, writer: asyncio.StreamWriter):
        self.writer = writer

    @classmethod
    async def open(cls, writer: asyncio.StreamWriter, ctype: str, keep_alive: bool) -> ChunkedStream:
        writer.write(
            _head(HTTPStatus.OK, [("Content-Type", ctype), ("Transfer-Encoding", "chunked")], keep_alive)
        )
        await writer.drain()
        return cls(writer)

    async def write(self, data: bytes) -> None:
        """Raises ConnectionError once the client is gone."""
        if data:
            self.writer.write(b"%x\r\n%s\r\n" % (len(data), data))
            await self.writer.drain()

    async def end(self) -> None:
        self.writer.write(b"0\r\n\r\n")
        await self.writer.drain()
