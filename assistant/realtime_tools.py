"""Function calling in the Realtime protocol: the client's tool definitions, tool_choice, and the outputs
it sends back, validated into plain values (or a `ProtocolError` naming the field).

    tools = parse_tools(session["tools"], "session.tools")  # -> ({type, name, description, parameters},)
    choice = parse_tool_choice(session["tool_choice"], "session.tool_choice", names)
    call_id, output = parse_function_output(item)                 # conversation.item.create
"""

from __future__ import annotations

import re
from typing import Any

from assistant.realtime_errors import ProtocolError, check_keys

MAX_TOOLS = 32  # more than a small model's context can describe
MAX_DESCRIPTION_CHARS = 1024
MAX_OUTPUT_CHARS = 16_384  # a tool's result the model is to phrase in a sentence or two
NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # OpenAI's rule for function names
TOOL_KEYS = {"type", "name", "description", "parameters"}
SCHEMA_TYPES = ("object", "string", "number", "integer", "boolean", "array", "null")
OUTPUT_ITEM_KEYS = {"id", "type", "object", "call_id", "output", "status"}


def parse_tools(value: Any, where: str) -> tuple[dict, ...]:
    if not isinstance(value, list):
        raise ProtocolError(f"{where} must be a list of function definitions", where)
    if len(value) > MAX_TOOLS:
        raise ProtocolError(f"{where} holds {len(value)} tools; at most {MAX_TOOLS} are served", where)
    tools, seen = [], set()
    for i, tool in enumerate(value):
        t = _tool(tool, f"{where}[{i}]")
        if t["name"] in seen:
            raise ProtocolError(f"two tools are named {t['name']!r}", f"{where}[{i}].name")
        seen.add(t["name"])
        tools.append(t)
    return tuple(tools)


def _tool(tool: Any, where: str) -> dict:
    check_keys(tool, TOOL_KEYS, where)
    if tool.get("type", "function") != "function":
        raise ProtocolError("only tools of type 'function' are supported", f"{where}.type", "unsupported")
    name = tool.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise ProtocolError(
            "a tool needs a name of 1-64 letters, digits, '_' or '-'", f"{where}.name", "invalid_value"
        )
    description = tool.get("description", "")
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION_CHARS:
        raise ProtocolError(
            f"description must be a string of at most {MAX_DESCRIPTION_CHARS} characters",
            f"{where}.description",
        )
    parameters = tool.get("parameters", {"type": "object", "properties": {}})
    _schema_object(parameters, f"{where}.parameters")
    return {"type": "function", "name": name, "description": description, "parameters": parameters}


def _schema_object(schema: Any, where: str) -> None:
    """The parameters of a function: a JSON-schema object whose properties are schemas themselves."""
    if not isinstance(schema, dict):
        raise ProtocolError("parameters must be a JSON schema object", where)
    if schema.get("type", "object") != "object":
        raise ProtocolError("parameters must be a schema of type 'object'", f"{where}.type")
    props = schema.get("properties", {})
    if not isinstance(props, dict):
        raise ProtocolError("properties must be an object of schemas", f"{where}.properties")
    for key, prop in props.items():
        _schema(prop, f"{where}.properties.{key}")
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise ProtocolError("required must be a list of property names", f"{where}.required")
    for r in required:
        if r not in props:
            raise ProtocolError(
                f"required names {r!r}, which is not among the properties", f"{where}.required"
            )


def _schema(schema: Any, where: str) -> None:
    if not isinstance(schema, dict):
        raise ProtocolError("a property must be a JSON schema object", where)
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    if kind is not None and not all(k in SCHEMA_TYPES for k in kinds):
        raise ProtocolError(f"type must be one of {list(SCHEMA_TYPES)}", f"{where}.type")
    if "enum" in schema and not isinstance(schema["enum"], list):
        raise ProtocolError("enum must be a list", f"{where}.enum")
    if "description" in schema and not isinstance(schema["description"], str):
        raise ProtocolError("description must be a string", f"{where}.description")
    if "object" in kinds and "properties" in schema:
        _schema_object(schema, where)
    if "array" in kinds and "items" in schema:
        _schema(schema["items"], f"{where}.items")


def parse_tool_choice(value: Any, where: str, names: set[str]) -> str | dict:
    """`names`: the functions the session offers (the client's and the built-in ones)."""
    if value in ("auto", "none", "required"):
        return value
    if isinstance(value, dict):
        check_keys(value, {"type", "name"}, where)
        if value.get("type", "function") == "function" and isinstance(value.get("name"), str):
            if value["name"] not in names:
                raise ProtocolError(f"no tool named {value['name']!r} is offered", f"{where}.name")
            return {"type": "function", "name": value["name"]}
    raise ProtocolError(
        f'{where} must be "auto", "none", "required" or {{"type": "function", "name"}}', where
    )


def parse_function_output(item: dict) -> tuple[str, str]:
    """A function_call_output item from the client -> (call_id, output)."""
    check_keys(item, OUTPUT_ITEM_KEYS, "item")
    call_id = item.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        raise ProtocolError("a function_call_output needs the call_id of the call it answers", "item.call_id")
    output = item.get("output")
    if not isinstance(output, str):
        raise ProtocolError("output must be a string (JSON text, for instance)", "item.output")
    if len(output) > MAX_OUTPUT_CHARS:
        raise ProtocolError(f"output is longer than {MAX_OUTPUT_CHARS} characters", "item.output")
    return call_id, output
