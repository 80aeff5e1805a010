"""Who may open the Realtime websocket: the Origin rule and the API-key rule.

- Browsers send an Origin header. Only the server's own page and the origins the user listed
  (`--allow-origin`) may connect; any other site gets HTTP 403, so a page the user happens to visit
  cannot talk to their assistant or read the conversation (cross-site websocket hijacking). The own
  page counts only under a host name this server answers to: bound to loopback, that is a loopback
  name, which also defeats DNS rebinding (evil.example resolving to 127.0.0.1).
- With an API key configured (required beyond loopback), every client must present it: as
  `Authorization: Bearer KEY` (the `openai` SDK's way), or, from a browser, which cannot set headers on a
  websocket, as the subprotocol `openai-insecure-api-key.KEY` (OpenAI's convention). Keys are compared
  in constant time.
"""

from __future__ import annotations

import hmac
import http
from dataclasses import dataclass
from urllib.parse import urlsplit

from assistant.config import ServerConfig, is_loopback

REALTIME_SUBPROTOCOL = "realtime"  # what the server selects when a browser offers subprotocols
KEY_SUBPROTOCOL = "openai-insecure-api-key."  # + KEY: how a browser passes the key
BEARER = "bearer "


@dataclass
class Refusal:
    status: http.HTTPStatus
    message: str


class Gate:
    def __init__(self, cfg: ServerConfig):
        self.cfg = cfg

    def check(self, headers) -> Refusal | None:
        """None if this websocket handshake may go on, else why not. `headers`: the request's."""
        origin = headers.get("Origin")
        if origin is not None and not self.origin_allowed(origin, headers.get("Host")):
            return Refusal(
                http.HTTPStatus.FORBIDDEN,
                f"origin {origin} may not use this assistant (start the server with --allow-origin {origin})",
            )
        if self.cfg.api_key is not None and not self.key_presented(headers):
            return Refusal(
                http.HTTPStatus.UNAUTHORIZED,
                "missing or wrong API key: send 'Authorization: Bearer KEY' "
                f"(or, from a browser, the subprotocol '{KEY_SUBPROTOCOL}KEY')",
            )
        return None

    def origin_allowed(self, origin: str, host_header: str | None) -> bool:
        origin = origin.rstrip("/")
        if origin in self.cfg.allow_origins:
            return True
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or host_header is None or parts.netloc != host_header:
            return False  # another site, or an opaque origin ("null": a file or a sandboxed frame)
        # The page was served by this server under this host name. Bound to loopback, only loopback
        # names are ours; a public name pointing here is DNS rebinding.
        return not is_loopback(self.cfg.host) or is_loopback(parts.hostname or "")

    def key_presented(self, headers) -> bool:
        key = self.cfg.api_key.encode()
        auth = headers.get("Authorization") or ""
        if auth[: len(BEARER)].lower() == BEARER and hmac.compare_digest(auth[len(BEARER) :].encode(), key):
            return True
        offered = ",".join(headers.get_all("Sec-WebSocket-Protocol"))
        for proto in (p.strip() for p in offered.split(",")):
            if proto.startswith(KEY_SUBPROTOCOL) and hmac.compare_digest(
                proto[len(KEY_SUBPROTOCOL) :].encode(), key
            ):
                return True
        return False
