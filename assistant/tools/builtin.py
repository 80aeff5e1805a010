"""The built-in tools as the LM sees them, and the per-conversation `Toolbox` that runs them.

Each tool is an OpenAI function definition (`BUILTIN_TOOLS`), called with a JSON arguments object and
answering a JSON object. Nothing a model writes can raise out of `Toolbox.run`: bad JSON, a missing,
unknown or mistyped argument, or a tool's own ValueError come back as {"error": "..."} for the LM to say
it could not do that. Descriptions are short because a 512-token model reads all six every turn.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from collections.abc import Callable
from datetime import datetime

from assistant.tools.arithmetic import calculate
from assistant.tools.clock import get_time, local_now
from assistant.tools.timers import Timers, cancel_timer, list_timers, set_timer
from assistant.tools.units import convert_units

log = logging.getLogger(__name__)

MAX_ARGUMENTS_CHARS = 2000  # a tool call's arguments JSON; every valid call is far shorter
MAX_NUMBER = 1e100  # larger arguments are mistakes, and would overflow floats inside the tools


def _function(name: str, description: str, properties: dict | None = None, required=()) -> dict:
    return {
        "type": "function",
        "name": name,
        "description": description,
        "parameters": {
            "type": "object",
            "properties": properties or {},
            "required": list(required),
            "additionalProperties": False,
        },
    }


def _param(kind: str, description: str = "") -> dict:
    """A parameter; where its name says it all, no description spends the model's context."""
    return {"type": kind, "description": description} if description else {"type": kind}


BUILTIN_TOOLS: list[dict] = [
    _function("get_time", "Current local time, date and weekday."),
    _function(
        "calculate",
        "Work out arithmetic.",
        {"expression": _param("string", "e.g. '9 * 8', '15% of 80', 'sqrt(2)'")},
        required=["expression"],
    ),
    _function(
        "convert_units",
        "Convert length, weight, volume, temperature, time, speed, area or data units.",
        {
            "value": _param("number"),
            "from_unit": _param("string", "e.g. 'miles'"),
            "to_unit": _param("string", "e.g. 'km'"),
        },
        required=["value", "from_unit", "to_unit"],
    ),
    _function(
        "set_timer",
        "Start a timer, or a reminder or alarm at a clock time.",
        {
            "seconds": _param("number"),
            "minutes": _param("number"),
            "hours": _param("number"),
            "at": _param("string", "Clock time HH:MM, 24-hour, instead of a duration"),
            "label": _param("string", "What it is for, e.g. 'pasta'"),
        },
    ),
    _function("list_timers", "List running timers and reminders."),
    _function(
        "cancel_timer",
        "Cancel a timer by id or label, or all of them.",
        {
            "id": _param("string", "e.g. 'timer_1'"),
            "label": _param("string"),
            "all": _param("boolean", "Cancel every timer"),
        },
    ),
]
_SCHEMAS = {tool["name"]: tool["parameters"] for tool in BUILTIN_TOOLS}


class Toolbox:
    """The built-in tools of one conversation: its timers, and the clock `get_time` reads."""

    def __init__(self, timers: Timers | None = None, now: Callable[[], datetime] = local_now):
        self.timers = timers if timers is not None else Timers(wall=now)
        self._now = now
        self._tools: dict[str, Callable[..., dict]] = {
            "get_time": lambda: get_time(self._now()),
            "calculate": calculate,
            "convert_units": convert_units,
            "set_timer": lambda **a: set_timer(self.timers, **a),
            "list_timers": lambda: list_timers(self.timers),
            "cancel_timer": lambda **a: cancel_timer(self.timers, **a),
        }

    def definitions(self) -> list[dict]:
        """The OpenAI function definitions, copied so a caller may edit them."""
        return copy.deepcopy(BUILTIN_TOOLS)

    def has(self, name: str) -> bool:
        return name in self._tools

    def run(self, name: str, arguments_json: str | None) -> str:
        """Call tool `name` with a JSON arguments object; the answer (or {"error": ...}) as JSON text."""
        try:
            if name not in self._tools:
                raise ValueError(f"there is no tool called {name!r}")
            arguments = check_arguments(name, _SCHEMAS[name], parse_arguments(arguments_json))
            result = self._tools[name](**arguments)
        except ValueError as err:  # json.JSONDecodeError is one too
            result = {"error": _sentence(str(err))}
        except Exception:  # a bug in a tool must not end the conversation
            log.exception("tool %s failed", name)
            result = {"error": f"The {name} tool failed."}
        return json.dumps(result, ensure_ascii=False)


def parse_arguments(arguments_json: str | None) -> dict:
    """The arguments object; an empty string or null means no arguments."""
    if arguments_json is None or not arguments_json.strip():
        return {}
    if len(arguments_json) > MAX_ARGUMENTS_CHARS:
        raise ValueError(f"the arguments are longer than {MAX_ARGUMENTS_CHARS} characters")
    try:
        arguments = json.loads(arguments_json)
    except (ValueError, RecursionError):
        raise ValueError("the arguments are not valid JSON") from None
    if arguments is None:
        return {}
    if not isinstance(arguments, dict):
        raise ValueError("the arguments must be a JSON object")
    return arguments


def check_arguments(name: str, schema: dict, arguments: dict) -> dict:
    """`arguments` checked against the tool's schema: no unknown keys, every required one, right types.

    A null optional argument counts as absent: small models often write every key they know."""
    properties = schema["properties"]
    for key in arguments:
        if key not in properties:
            takes = ", ".join(properties) or "no arguments"
            raise ValueError(f"the {name} tool has no parameter {key!r}; it takes {takes}")
    arguments = {k: v for k, v in arguments.items() if v is not None}
    for key in schema["required"]:
        if key not in arguments:
            raise ValueError(f"the {name} tool needs {key!r}")
    for key, value in arguments.items():
        kind = properties[key]["type"]
        if not _is_a(value, kind):
            raise ValueError(f"the {key!r} argument must be {_KIND_NAMES[kind]}, not {_json_kind(value)}")
    return arguments


_KIND_NAMES = {"number": "a number", "string": "a string", "boolean": "true or false"}


def _is_a(value, kind: str) -> bool:
    if kind == "number":  # bool is an int in Python, not a number in JSON
        return isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) <= MAX_NUMBER
    if kind == "string":
        return isinstance(value, str)
    return isinstance(value, bool)


def _json_kind(value) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, float) and not math.isfinite(value):
        return "a number that is not finite"
    if isinstance(value, (int, float)):
        return "a number" if abs(value) <= MAX_NUMBER else f"a number beyond {MAX_NUMBER:g}"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def _sentence(message: str) -> str:
    """An error as one spoken sentence: capitalised, with a full stop."""
    message = message[:1].upper() + message[1:]
    return message if message.endswith((".", "?", "!")) else message + "."
