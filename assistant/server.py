"""One port for everything: the browser page, the Realtime websocket API, health and metrics.

    GET /                 web/index.html (and the page's other files, from the `web` package)
    GET /healthz          {"ok": true, "sessions": n, "models": {...}}
    GET /metrics          {"turns": [recent dlm.turn_metrics], "summary": {...}}
    WS  /v1/realtime      the OpenAI Realtime protocol (realtime.py), one Session per connection

Models are loaded once (Engines) and shared; each connection has its own conversation state. Who may
connect is `access.Gate`'s decision (Origin and API key); how many at once is decided here: at most
`max_sessions` in all and `max_sessions_per_client` per client address (`serve --max-sessions N
--max-sessions-per-client N`), the rest refused with an `error` event (not slowed down). A websocket
message may be at most MAX_MESSAGE_BYTES; a bigger one closes that connection with 1009 (message too big).
"""

from __future__ import annotations

import http
import importlib.resources
import json
import logging
import mimetypes

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from assistant.access import REALTIME_SUBPROTOCOL, Gate
from assistant.config import ServerConfig, SessionConfig
from assistant.engines import Engines
from assistant.metrics import Metrics
from assistant.realtime import RealtimeConnection
from assistant.realtime_events import error_event

log = logging.getLogger(__name__)

REALTIME_PATH = "/v1/realtime"
WEB_PACKAGE = "web"
INDEX = "index.html"
MAX_MESSAGE_BYTES = 24 * 1024 * 1024  # a 15 MiB append, base64-encoded, fits
CLOSE_TRY_AGAIN_LATER = 1013  # websocket close code for a refused session


def _static(path: str) -> tuple[bytes, str] | None:
    """A file of the web package, or None. Only plain names inside the package are served."""
    name = path.lstrip("/") or INDEX
    if "/" in name or name.startswith(".") or name.endswith(".py"):
        return None
    try:
        res = importlib.resources.files(WEB_PACKAGE).joinpath(name)
        if not res.is_file():
            return None
        body = res.read_bytes()
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        return None
    ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if ctype.startswith("text/") or ctype in ("application/javascript", "application/json"):
        ctype += "; charset=utf-8"
    return body, ctype


def _response(status: http.HTTPStatus, body: bytes, ctype: str) -> Response:
    headers = Headers(
        [("Content-Type", ctype), ("Content-Length", str(len(body))), ("Cache-Control", "no-cache")]
    )
    return Response(status.value, status.phrase, headers, body)


def _json(status: http.HTTPStatus, obj) -> Response:
    return _response(status, json.dumps(obj).encode(), "application/json")


def _select_subprotocol(connection: ServerConnection, offered) -> str | None:
    """A browser that offers subprotocols (to pass its key) must get one back; others need none."""
    return REALTIME_SUBPROTOCOL if REALTIME_SUBPROTOCOL in offered else None


class AssistantServer:
    """Holds the shared engines, the live sessions and the metrics."""

    def __init__(
        self, engines: Engines, cfg: ServerConfig | None = None, session: SessionConfig | None = None
    ):
        self.engines, self.cfg = engines, cfg or ServerConfig()
        self.session_cfg = session or SessionConfig()
        self.metrics = Metrics(self.cfg.metrics_turns)
        self.gate = Gate(self.cfg)
        self.sessions = 0
        self.per_client: dict[str, int] = {}  # open sessions per client address
        self.port: int | None = None
        self._server = None

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == REALTIME_PATH:
            refused = self.gate.check(request.headers)
            if refused is None:
                return None  # the websocket handshake goes on
            log.warning("refused a websocket: %s", refused.message)
            return _response(refused.status, refused.message.encode() + b"\n", "text/plain; charset=utf-8")
        if path == "/healthz":
            return _json(
                http.HTTPStatus.OK, {"ok": True, "sessions": self.sessions, "models": self.engines.describe()}
            )
        if path == "/metrics":
            return _json(
                http.HTTPStatus.OK, {"turns": list(self.metrics.turns), "summary": self.metrics.summary()}
            )
        found = _static(path)
        if found is None:
            return _response(http.HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")
        return _response(http.HTTPStatus.OK, *found)

    async def handler(self, ws: ServerConnection) -> None:
        client = str(ws.remote_address[0]) if ws.remote_address else "?"
        refused = self._over_capacity(client)
        if refused is not None:
            await ws.send(json.dumps(error_event(*refused)))
            await ws.close(CLOSE_TRY_AGAIN_LATER, refused[0])
            return
        self.sessions += 1
        self.per_client[client] = self.per_client.get(client, 0) + 1
        conn = RealtimeConnection(
            ws,
            self.engines,
            self.session_cfg,
            on_turn=self.metrics.add,
            idle_timeout_s=self.cfg.idle_timeout_s,
            speculation=self.metrics.speculation,
        )
        try:
            await conn.run()
        except Exception:
            log.exception("session failed")
        finally:
            self.sessions -= 1
            self.per_client[client] -= 1
            if not self.per_client[client]:
                del self.per_client[client]

    def _over_capacity(self, client: str) -> tuple[str, str] | None:
        """(code, message) when one more session would be too many, else None."""
        if self.sessions >= self.cfg.max_sessions:
            return "too_many_sessions", f"the server serves {self.cfg.max_sessions} sessions at once"
        if self.per_client.get(client, 0) >= self.cfg.max_sessions_per_client:
            n = self.cfg.max_sessions_per_client
            return "too_many_sessions_for_client", f"one client may hold {n} sessions at once"
        return None

    async def start(self) -> AssistantServer:
        self._server = await serve(
            self.handler,
            self.cfg.host,
            self.cfg.port,
            process_request=self.process_request,
            max_size=MAX_MESSAGE_BYTES,
            compression=None,
            select_subprotocol=_select_subprotocol,
            server_header=None,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://{self.cfg.host}:{self.port}/"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
