"""The one error type of the Realtime protocol layer: a client event we refuse, naming the field.

It becomes an `error` event ({"type": "error", "error": {code, message, param, event_id}}) and the
connection stays up.
"""

from __future__ import annotations

from typing import Any


class ProtocolError(ValueError):
    """A client event we refuse; becomes an `error` event."""

    def __init__(self, message: str, param: str | None = None, code: str = "invalid_value"):
        super().__init__(message)
        self.param, self.code = param, code


def check_keys(obj: Any, allowed: set[str], where: str) -> dict:
    if not isinstance(obj, dict):
        raise ProtocolError(f"{where} must be an object", where)
    for key in obj:
        if key not in allowed:
            raise ProtocolError(
                f"unknown or unsupported field {where}.{key}", f"{where}.{key}", "unknown_parameter"
            )
    return obj
