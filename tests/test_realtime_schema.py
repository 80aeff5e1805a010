"""Properties of the Realtime client-event validation (assistant/realtime_schema.py), over arbitrary input.

Whatever a client sends, each function returns a value of its documented type or raises ProtocolError,
never another exception; nothing it is given is changed; a refusal's `param` points into what was
sent; and a session the server describes (`session_object`) reads back as the same settings. Inputs are
hypothesis-built JSON values (dicts, lists, strings, numbers including NaN and infinities, booleans,
null) whose keys mix the protocol's field names with other names, and valid session objects and
events mutated at a random place. Pure functions: no server, no models.
"""

from __future__ import annotations

import copy
import json
import math
import re

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from assistant.config import MODALITIES, DlmKnobs, SessionConfig
from assistant.realtime_schema import (
    ROLES,
    ProtocolError,
    apply_session_update,
    parse_append,
    parse_item,
    parse_message,
    parse_response_create,
    parse_truncate,
    session_object,
)
from dlm_core.presets import PRESET_NAMES
from turn_taking.vad import VadConfig

HUGE = 10**400  # json.loads reads any integer; this one is beyond every float
NOT_FINITE = [math.nan, math.inf, -math.inf, HUGE]
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------------------------------ strategies

FIELD_NAMES = [  # the protocol's own names, so generated objects reach deep into the validators
    "type", "model", "instructions", "output_modalities", "audio", "max_output_tokens", "dlm", "object",
    "id", "expires_at", "tools", "tool_choice", "tracing", "truncation", "include", "prompt", "input",
    "output", "format", "rate", "transcription", "turn_detection", "noise_reduction", "voice", "speed",
    "threshold", "prefix_padding_ms", "silence_duration_ms", "create_response", "interrupt_response",
    "idle_timeout_ms", "preset", "max_steps_per_block", "language", "item", "role", "content", "text",
    "status", "audio_end_ms", "content_index", "item_id", "response", "conversation", "metadata",
    "name", "description", "parameters", "properties", "required", "enum", "items", "call_id",
]  # fmt: skip
FIELD_VALUES = [
    "realtime", "audio/pcm", "pcm16", 24000, 16000, "server_vad", "semantic_vad", "message",
    "input_text", "output_text", "user", "assistant", "system", "fastest", "balanced", "auto", "none",
    "inf", "text", "audio", 0.5, 300, 500, 1.0, 0, -1, [], {}, ["audio"], ["text"],
    "function", "function_call_output", "object", "string", "number", "get_time", "required",
]  # fmt: skip
# Keys are plain names: a key with "." or "[" in it could not be told apart in a dotted `param` path.
keys = st.sampled_from(FIELD_NAMES) | st.from_regex(r"[a-z_]{1,10}", fullmatch=True)


def json_like(floats):
    scalars = (
        st.none()
        | st.booleans()
        | st.integers()
        | floats
        | st.text(max_size=12)
        | st.sampled_from(FIELD_VALUES)
    )
    nest = lambda kids: st.lists(kids, max_size=4) | st.dictionaries(keys, kids, max_size=5)  # noqa: E731
    return st.recursive(scalars, nest, max_leaves=24)


# Any JSON-like value, NaN and infinities included (Python objects a caller might pass).
json_values = json_like(st.floats(allow_nan=True, allow_infinity=True))
# What parse_message can hand on from the wire: it refuses NaN and Infinity, but any integer gets through.
wire_values = json_like(st.floats(allow_nan=False, allow_infinity=False) | st.just(HUGE))
json_objects = st.dictionaries(keys, wire_values, max_size=6)

VALID_SESSIONS = [
    session_object(SessionConfig(), "sess_1"),
    {
        "type": "realtime",
        "instructions": "Be brief.",
        "output_modalities": ["text"],
        "max_output_tokens": "inf",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "turn_detection": {"type": "server_vad", "threshold": 0.6, "silence_duration_ms": 400},
            },
            "output": {"voice": "alloy", "speed": 1.0},
        },
        "dlm": {"preset": "fastest", "threshold": 0.8, "max_steps_per_block": 4},
    },
    {"type": "realtime", "audio": {"input": {"turn_detection": None}}, "tools": [], "tool_choice": "auto"},
    {
        "type": "realtime",
        "tools": [
            {
                "type": "function",
                "name": "lookup_flight",
                "description": "Where a flight is.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "flight": {"type": "string"},
                        "day": {"type": "string", "enum": ["today", "tomorrow"]},
                    },
                    "required": ["flight"],
                },
            }
        ],
        "tool_choice": {"type": "function", "name": "lookup_flight"},
    },
]
VALID_EVENTS = [
    {"type": "input_audio_buffer.append", "audio": "AAABAAIA"},
    {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
    },
    {"type": "conversation.item.truncate", "item_id": "item_1", "content_index": 0, "audio_end_ms": 1500},
    {"type": "response.create", "response": {"output_modalities": ["text"], "instructions": "Be brief."}},
    {
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": "call_1", "output": '{"ok": true}'},
    },
]


def _places(obj) -> list[tuple]:
    """(container, key) for every value inside obj, at any depth."""
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    out = []
    for k, v in items:
        out.append((obj, k))
        out.extend(_places(v))
    return out


@st.composite
def mutated(draw, valid: list, values):
    """A valid object with one to three places replaced by a drawn value, deleted, or given a new key."""
    obj = copy.deepcopy(draw(st.sampled_from(valid)))
    for _ in range(draw(st.integers(1, 3))):
        places = _places(obj)
        if not places:
            break
        container, key = draw(st.sampled_from(places))
        action = draw(st.sampled_from(("replace", "delete", "add")))
        # Drawn values are copied: hypothesis may hand out the same object again (the {} and [] of
        # FIELD_VALUES), and changing one in place would change later examples too.
        if action == "replace":
            container[key] = copy.deepcopy(draw(values))
        elif action == "delete":
            del container[key]
        elif isinstance(container[key], dict):
            container[key][draw(keys)] = copy.deepcopy(draw(values))
    return obj


@st.composite
def session_configs(draw) -> SessionConfig:
    """Any valid settings a session can have."""
    vad = draw(
        st.none()
        | st.builds(
            VadConfig,
            threshold=st.floats(0.05, 0.95),
            prefix_padding_ms=st.integers(0, 2000),
            silence_duration_ms=st.integers(0, 3000),
        )
    )
    knobs = st.builds(
        DlmKnobs,
        preset=st.sampled_from(PRESET_NAMES),
        threshold=st.none() | st.floats(0.0, 1.0),
        max_steps_per_block=st.none() | st.integers(1, 64),
    )
    return SessionConfig(
        instructions=draw(st.text(max_size=40)),
        output_modalities=(draw(st.sampled_from(MODALITIES)),),
        turn_detection=vad,
        create_response=draw(st.booleans()),
        interrupt_response=draw(st.booleans()),
        max_output_tokens=draw(st.integers(1, 512)),
        dlm=draw(knobs),
    )


# ------------------------------------------------------------------------------------------ checks

MISSING_OK = {
    "audio",
    "item",
    "item.content",
    "item.content[].text",
    "item.content[].type",
    "audio_end_ms",
    "item.call_id",
    "item.output",
    "session.tools[].name",
    "response.tools[].name",
}


def assert_param_points_into(sent, param: str | None) -> None:
    """`param` names a place in what was sent: every step of its path but the last exists there, and
    the last does too unless it names a required field that is missing (MISSING_OK)."""
    if param is None:
        return
    steps = re.findall(r"[a-z_]+|\[\d+\]", param)
    assert "".join(s if s.startswith("[") else "." + s for s in steps).lstrip(".") == param, param
    node = sent
    for i, step in enumerate(steps):
        last = i == len(steps) - 1
        if step.startswith("["):
            assert isinstance(node, list) and int(step[1:-1]) < len(node), (param, sent)
            node = node[int(step[1:-1])]
        elif isinstance(node, dict) and step in node:
            node = node[step]
        else:
            assert last, (param, sent)
            assert re.sub(r"\[\d+\]", "[]", param) in MISSING_OK, (param, sent)


def finite(x) -> bool:
    try:
        return math.isfinite(x)
    except OverflowError:  # an integer beyond every float
        return False


def frozen(value) -> str:
    """A comparable snapshot of a JSON value (NaN != NaN, so compare the text)."""
    return json.dumps(value, sort_keys=True)


def refused_or(fn, *args):
    """fn(*args), or the ProtocolError it raised; any other exception fails the test."""
    try:
        return fn(*args)
    except ProtocolError as e:
        assert str(e), "a refusal says why"
        return e


# ------------------------------------------------------------------------------------------ properties


@PROPERTY
@given(st.text() | st.binary() | json_values.map(json.dumps))
def test_parse_message_returns_an_object_or_refuses(message):
    got = refused_or(parse_message, message)
    assert isinstance(got, (dict, ProtocolError)), got
    if isinstance(got, ProtocolError):
        assert got.param is None and got.code == "invalid_json", got.code


@PROPERTY
@given(st.integers(1, 200_000), st.sampled_from(["[", '{"a":']))
def test_deeply_nested_json_is_refused_not_crashed(depth, opener):
    """A hostile client nests arrays as deep as a 24 MiB message allows."""
    closer = "]" if opener == "[" else "}"
    got = refused_or(parse_message, '{"type": "x", "v": ' + opener * depth + "1" + closer * depth + "}")
    assert isinstance(got, (dict, ProtocolError)), got


@PROPERTY
@given(st.integers(1, 20_000))
def test_huge_numbers_are_refused_not_crashed(digits):
    got = refused_or(parse_message, '{"type": "x", "n": ' + "9" * digits + "}")
    assert isinstance(got, (dict, ProtocolError)), got


@PROPERTY
@given(session_configs(), json_values | mutated(VALID_SESSIONS, json_values))
def test_session_update_gives_new_settings_or_refuses_and_changes_nothing(cfg, sent):
    before_cfg, before_sent = copy.deepcopy(cfg), frozen(sent)
    got = refused_or(apply_session_update, cfg, sent)
    assert cfg == before_cfg, "the session's settings were changed in place"
    assert frozen(sent) == before_sent, "the client's event was changed"
    if isinstance(got, ProtocolError):
        assert_param_points_into({"session": sent}, got.param)
    else:
        assert isinstance(got, SessionConfig) and isinstance(sent, dict), (got, sent)


@PROPERTY
@given(session_configs())
def test_the_session_the_server_describes_reads_back_unchanged(cfg):
    assert apply_session_update(cfg, session_object(cfg, "sess_1")) == cfg


@PROPERTY
@given(
    session_configs(),
    st.sampled_from(["threshold", "prefix_padding_ms", "silence_duration_ms"]),
    st.sampled_from(NOT_FINITE) | st.floats(allow_nan=True, allow_infinity=True) | st.integers(),
)
@example(SessionConfig(), "prefix_padding_ms", math.inf)  # the VAD raises OverflowError on speech
@example(SessionConfig(), "silence_duration_ms", math.nan)  # the turn never ends
@example(SessionConfig(), "prefix_padding_ms", HUGE)  # beyond any float: OverflowError in the VAD
def test_voice_activity_settings_accepted_are_finite(cfg, name, value):
    """JSON as Python reads it has NaN, Infinity and unbounded integers; the VAD's arithmetic needs
    finite floats."""
    sent = {"audio": {"input": {"turn_detection": {"type": "server_vad", name: value}}}}
    got = refused_or(apply_session_update, cfg, sent)
    if isinstance(got, SessionConfig):
        assert finite(getattr(got.turn_detection, name)), (name, value)


@PROPERTY
@given(json_objects | mutated(VALID_EVENTS, wire_values))
def test_append_gives_float_samples_or_refuses(ev):
    got = refused_or(parse_append, ev)
    if isinstance(got, ProtocolError):
        assert_param_points_into(ev, got.param)
    else:
        assert isinstance(got, np.ndarray) and got.dtype == np.float32 and got.ndim == 1, got


@PROPERTY
@given(st.binary(max_size=64))
def test_append_decodes_any_even_pcm16(raw):
    import base64

    got = refused_or(parse_append, {"audio": base64.b64encode(raw).decode()})
    if len(raw) % 2:
        assert isinstance(got, ProtocolError) and got.param == "audio"
    else:
        assert got.shape == (len(raw) // 2,) and np.all(np.abs(got) <= 1.0), got


@PROPERTY
@given(json_objects | mutated(VALID_EVENTS, wire_values))
def test_item_gives_text_and_role_or_refuses(ev):
    before = frozen(ev)
    got = refused_or(parse_item, ev)
    assert frozen(ev) == before
    if isinstance(got, ProtocolError):
        assert_param_points_into(ev, got.param)
    elif len(got) == 3:  # a function's output
        kind, call_id, output = got
        assert kind == "function_call_output" and call_id and isinstance(output, str), got
    else:
        text, role = got
        assert isinstance(text, str) and role in ROLES, got


@PROPERTY
@given(json_objects | mutated(VALID_EVENTS, wire_values))
@example({"type": "conversation.item.truncate", "item_id": "item_1", "audio_end_ms": HUGE})
def test_truncate_gives_a_finite_time_or_refuses(ev):
    got = refused_or(parse_truncate, ev)
    if isinstance(got, ProtocolError):
        assert_param_points_into(ev, got.param)
    else:
        _, ms = got
        assert isinstance(ms, float) and finite(ms) and ms >= 0, got


@PROPERTY
@given(json_objects | mutated(VALID_EVENTS, wire_values))
def test_response_create_gives_modalities_and_overrides_or_refuses(ev):
    before = frozen(ev)
    got = refused_or(lambda e: parse_response_create(e, SessionConfig()), ev)
    assert frozen(ev) == before
    if isinstance(got, ProtocolError):
        assert_param_points_into(ev, got.param)
        return
    modalities, overrides = got
    assert modalities is None or (len(modalities) == 1 and modalities[0] in MODALITIES), got
    assert overrides is None or (isinstance(overrides, dict) and overrides), got
    if overrides:  # what a response may override is what a session may hold
        assert SessionConfig().replace(**overrides)


def test_the_valid_examples_are_valid():
    """The mutation strategies start from accepted objects; otherwise they would test only refusals."""
    for sent in VALID_SESSIONS:
        assert isinstance(apply_session_update(SessionConfig(), sent), SessionConfig), sent
    assert parse_append(VALID_EVENTS[0]).shape == (3,)
    assert parse_item(VALID_EVENTS[1]) == ("Hi", "user")
    assert parse_truncate(VALID_EVENTS[2]) == ("item_1", 1500.0)
    assert parse_response_create(VALID_EVENTS[3], SessionConfig()) == (
        ("text",),
        {"instructions": "Be brief."},
    )
    assert parse_item(VALID_EVENTS[4]) == ("function_call_output", "call_1", '{"ok": true}')
