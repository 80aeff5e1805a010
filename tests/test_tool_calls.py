"""Tool calls: the streaming parser, the chat templates with tools (ours, Qwen's, and the plain-text
fallback for templates without tools), and the engine threading tools through to the prompt."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest
import torch

from dlm_core.tokenizer import DlmTokenizer
from dlm_core.tool_calls import (
    DLM_VOICE_TEMPLATE,
    DLM_VOICE_TOOLS_HEADER,
    TOOLS_HEADER,
    BadToolCall,
    ToolCall,
    ToolCallParser,
    offered_call,
    parse_tool_calls,
    tool_line,
    tools_text,
)

WEIGHTS = Path(__file__).resolve().parents[1] / "dlm_core" / "weights"
# The bundled template before tools, kept here to prove the new one renders tool-free chats alike.
OLD_DLM_VOICE_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('unknown role ' + m['role']) }}{% endif %}<|{{ m['role'] }}|>"
    "{{ m['content'] | trim }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "set_timer",
            "description": "Start a countdown timer.",
            "parameters": {
                "type": "object",
                "properties": {"seconds": {"type": "integer"}},
                "required": ["seconds"],
            },
        },
    },
]
CALL = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
CHAT_WITH_CALL = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": "", "tool_calls": [CALL]},
    {"role": "tool", "content": '{"temp_c": 18, "sky": "clear"}'},
]
TOOL_FREE_CHATS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": " be brief \n"}, {"role": "user", "content": "  Hello there!  "}],
    [
        {"role": "system", "content": "You are a voice assistant."},
        {"role": "user", "content": "what time is it"},
        {"role": "assistant", "content": "It is ten past nine."},
        {"role": "system", "content": "a note in the middle"},
        {"role": "user", "content": "thanks <3 & bye"},
    ],
    [{"role": "assistant", "content": ""}, {"role": "user", "content": "ünïcode ✓"}],
]


def text_only_tokenizer(template: str, bos: str = "") -> DlmTokenizer:
    """Enough of a tokenizer to render text (chat_text never touches the vocabulary)."""
    return DlmTokenizer(None, None, template, bos_text=bos)


# ---- the parser ------------------------------------------------------------------------------

REPLIES = {  # reply text -> the events it must give
    'Let me check. <tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    "\nOne moment.": [
        "Let me check. ",
        ToolCall("get_weather", '{"city": "Paris"}'),
        "\nOne moment.",
    ],
    '<tool_call>{"name":"a","arguments":{}}</tool_call>\n\n<tool_call>{"name": "b", "parameters": {"x": 1}}'
    "</tool_call>\n": [ToolCall("a", "{}"), ToolCall("b", '{"x": 1}')],
    '  <tool_call>{"name": "t", "arguments": "{\\"s\\": 5}"}</tool_call>  done': [
        ToolCall("t", '{"s": 5}'),
        "  done",
    ],
    "plain text, a < b and c > d, no calls  ": ["plain text, a < b and c > d, no calls  "],
    "ends with a half tag <tool": ["ends with a half tag <tool"],
    '<tool_call>{"name": "x", "arguments": {"q": "<b>"}}</tool_call>': [ToolCall("x", '{"q": "<b>"}')],
    "stray </tool_call> closer": ["stray  closer"],
}


TAGS = ("<tool_call>", "</tool_call>")


def merged(events: list) -> list:
    """Consecutive text events joined: how they split depends on where pushes end."""
    out = []
    for e in events:
        if isinstance(e, str) and out and isinstance(out[-1], str):
            out[-1] += e
        else:
            out.append(e)
    return out


def run_split(text: str, cuts: list[int]) -> list:
    parser, events, last = ToolCallParser(), [], 0
    for cut in [*cuts, len(text)]:
        pushed = parser.push(text[last:cut])
        for e in pushed:  # a push never ends on what may still become a tag
            assert not isinstance(e, str) or not any(
                e.endswith(t[:n]) for t in TAGS for n in range(1, len(t))
            )
        events += pushed
        last = cut
    return events + parser.flush()


@pytest.mark.parametrize("text", list(REPLIES), ids=range(len(REPLIES)))
def test_parser_gives_the_same_events_however_the_text_is_split(text):
    expected = REPLIES[text]
    assert merged(parse_tool_calls(text)) == expected
    assert merged(run_split(text, list(range(1, len(text))))) == expected  # char by char
    rng = random.Random(1234)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(text)), rng.randint(1, min(8, len(text) - 1))))
        events = run_split(text, cuts)
        assert merged(events) == expected, cuts
        for e in events:  # markup never leaks
            assert not isinstance(e, str) or (e and "_call" not in e), (e, cuts)


def test_bad_calls_are_reported_not_spoken():
    cases = {
        '<tool_call>{"name": "x", "arguments": {oops}}</tool_call>': "not valid JSON",
        '<tool_call>{"arguments": {}}</tool_call>': 'no "name"',
        '<tool_call>{"name": "x", "arguments": [1, 2]}</tool_call>': "not a JSON object",
        '<tool_call>{"name": "x", "arguments": "not json"}</tool_call>': "does not hold JSON",
        "<tool_call>[1]</tool_call>": "not a JSON object",
        '<tool_call>{"name": "x", "arguments": {}': "ended inside",
        '<tool_call>{"name": "x", "arguments": {}} {"name": "y"}</tool_call>': "more than one",
    }
    for text, message in cases.items():
        (event,) = parse_tool_calls(text)
        assert isinstance(event, BadToolCall) and message in event.message, (text, event)
        assert event.raw.startswith("<tool_call>{") or event.raw == "<tool_call>[1]</tool_call>"
    events = parse_tool_calls('Hi <tool_call>{"name": "a"<tool_call>{"name": "b"}</tool_call> bye')
    assert events[0] == "Hi "
    assert isinstance(events[1], BadToolCall) and events[1].raw == '<tool_call>{"name": "a"'
    assert events[2:] == [ToolCall("b", "{}"), " bye"]


def test_stray_characters_after_the_calls_object_are_dropped():
    """A diffusion model may commit a stray '}}</' before the closing tag; the object is whole."""
    text = '<tool_call>{"name": "set_timer", "arguments": {"minutes": 1}}</}}</tool_call>'
    assert parse_tool_calls(text) == [ToolCall("set_timer", '{"minutes": 1}')]


def test_events_are_frozen_and_parser_is_reusable():
    call = ToolCall("a", "{}")
    with pytest.raises(dataclasses.FrozenInstanceError):
        call.name = "b"
    parser = ToolCallParser()
    assert parser.push("<tool_call>{") == [] and isinstance(parser.flush()[0], BadToolCall)
    assert parser.push("fresh") == ["fresh"] and parser.flush() == []


# ---- the bundled dlm_voice template ----------------------------------------------------------


def test_the_bundled_models_know_the_builtin_tools_and_the_judges_twin_keeps_its_template():
    """The data-v3 default and twin were trained with the known-tools template (the built-ins by heart,
    a client's functions listed) and are offered tools; the judge's data-v1 twin keeps its old template
    (its prompts, which the judge's calibration was fit on, do not change)."""
    from dlm_core.engine import DlmEngine
    from training.bpe import CHAT_TEMPLATE, KNOWN_TOOLS_CHAT_TEMPLATE

    assert CHAT_TEMPLATE == DLM_VOICE_TEMPLATE
    for name in ("default", "twin"):
        config = json.loads((WEIGHTS / name / "tokenizer_config.json").read_text())
        assert config["chat_template"] == KNOWN_TOOLS_CHAT_TEMPLATE, name
    judge = json.loads((WEIGHTS / "judge_twin" / "tokenizer_config.json").read_text())
    assert judge["chat_template"] == OLD_DLM_VOICE_TEMPLATE
    assert DlmEngine.load(str(WEIGHTS / "default")).knows_tools


def test_dlm_voice_template_renders_tool_free_chats_as_before():
    old, new = text_only_tokenizer(OLD_DLM_VOICE_TEMPLATE), text_only_tokenizer(DLM_VOICE_TEMPLATE)
    for chat in TOOL_FREE_CHATS:
        assert new.chat_text(chat) == old.chat_text(chat)
        assert new.chat_text(chat, tools=[]) == old.chat_text(chat)
    with pytest.raises(ValueError, match="unknown role"):
        new.chat_text([{"role": "robot", "content": "hi"}])


def test_dlm_voice_template_with_tools():
    tok = text_only_tokenizer(DLM_VOICE_TEMPLATE)
    assert tok.chat_text(CHAT_WITH_CALL, TOOLS) == (
        "<|system|>Be brief.\nYou can call these tools:\n"
        "get_weather(city: string, unit?: string celsius|fahrenheit) - Current weather for a city.\n"
        "set_timer(seconds: integer) - Start a countdown timer.<|eot_id|>"
        "<|user|>Weather in Paris?<|eot_id|>"
        '<|assistant|><tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
        '<|eot_id|><|user|><tool_response>{"temp_c": 18, "sky": "clear"}</tool_response><|eot_id|>'
        "<|assistant|>"
    )
    # The Python tool lines (the fallback's) are the template's; no system message: the tools alone.
    no_system = tok.chat_text(CHAT_WITH_CALL[1:2], TOOLS)
    assert no_system.startswith(f"<|system|>{tools_text(TOOLS, DLM_VOICE_TOOLS_HEADER)}<|eot_id|><|user|>")
    odd = {"name": "ping", "parameters": {"properties": {"x": {}, "y": {"type": ["string", "null"]}}}}
    assert tool_line({"function": odd}) == "ping(x?: any, y?: string|null)"
    assert tok.chat_text(CHAT_WITH_CALL[1:2], [{"type": "function", "function": odd}]).startswith(
        f"<|system|>{DLM_VOICE_TOOLS_HEADER}\nping(x?: any, y?: string|null)<|eot_id|>"
    )


def test_a_rendered_call_parses_back():
    tok = text_only_tokenizer(DLM_VOICE_TEMPLATE)
    as_string = {"function": {"name": "set_timer", "arguments": '{"seconds": 90}'}}
    chat = [*CHAT_WITH_CALL[1:2], {"role": "assistant", "content": "Sure.", "tool_calls": [CALL, as_string]}]
    turn = tok.chat_text(chat).split("<|assistant|>")[1].removesuffix("<|eot_id|>")
    assert parse_tool_calls(turn) == [
        "Sure.",
        ToolCall("get_weather", '{"city": "Paris"}'),
        ToolCall("set_timer", '{"seconds": 90}'),
    ]


def test_malformed_tools_raise_value_error():
    tok = text_only_tokenizer(DLM_VOICE_TEMPLATE)
    for bad in (
        {"name": "x"},
        [{"name": "x"}],
        [{"type": "function", "function": {"description": "no name"}}],
    ):
        with pytest.raises(ValueError, match="tool"):
            tok.chat_text(CHAT_WITH_CALL[1:2], bad)
    with pytest.raises(ValueError, match="tool call"):
        tok.chat_text([{"role": "assistant", "content": "", "tool_calls": [{"function": {}}]}])


# ---- other families' templates ---------------------------------------------------------------


def test_a_template_without_tools_gets_them_as_plain_text():
    pytest.importorskip("transformers")  # testkit.hf_families builds its references with it
    from testkit.hf_families import LLAMA3_TEMPLATE

    tok = text_only_tokenizer(LLAMA3_TEMPLATE, bos="<s>")
    assert not tok.handles_tools
    chat = [*CHAT_WITH_CALL, {"role": "tool", "content": "second result"}]
    head = "<|start_header_id|>{}<|end_header_id|>\n\n"
    assert tok.chat_text(chat, TOOLS) == (
        "<s>" + head.format("system") + "Be brief.\n" + TOOLS_HEADER + "\n"
        "get_weather(city: string, unit?: string celsius|fahrenheit) - Current weather for a city.\n"
        "set_timer(seconds: integer) - Start a countdown timer.<|eot_id|>"
        + head.format("user")
        + "Weather in Paris?<|eot_id|>"
        + head.format("assistant")
        + '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call><|eot_id|>'
        + head.format("user")
        + '<tool_response>{"temp_c": 18, "sky": "clear"}</tool_response>\n'
        "<tool_response>second result</tool_response><|eot_id|>" + head.format("assistant")
    )
    assert tok.chat_text(chat[1:2], TOOLS).startswith("<s>" + head.format("system") + TOOLS_HEADER + "\n")
    assert tok.chat_text(chat[1:2]) == "<s>" + head.format(
        "user"
    ) + "Weather in Paris?<|eot_id|>" + head.format("assistant")
    assert chat[2]["tool_calls"] == [CALL] and chat[0]["content"] == "Be brief."  # the input is not changed


QWEN_CHATS = [
    ([{"role": "user", "content": "Hi there"}], None),
    ([{"role": "user", "content": "Hi there"}], TOOLS),
    (CHAT_WITH_CALL, TOOLS),
    (
        [
            *CHAT_WITH_CALL[1:],
            {"role": "tool", "content": "second"},
            {"role": "assistant", "content": "It is clear.", "tool_calls": [CALL, CALL]},
            {"role": "user", "content": "thanks"},
        ],
        TOOLS,
    ),
]


@pytest.mark.parametrize("family", ["dream", "sdar"])
def test_qwen_templates_render_as_transformers_does(tmp_path, family):
    transformers = pytest.importorskip("transformers")
    from testkit.hf_families import FAMILY_TOKENS, write_tokenizer

    specials, config, _ = FAMILY_TOKENS[family]
    write_tokenizer(tmp_path, specials, config)
    ours = DlmTokenizer(None, None, config["chat_template"])
    assert ours.handles_tools
    theirs = transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(tmp_path / "tokenizer.json"), chat_template=config["chat_template"]
    )
    for messages, tools in QWEN_CHATS:
        expected = theirs.apply_chat_template(
            messages, tools=tools, tokenize=False, add_generation_prompt=True
        )
        assert ours.chat_text(messages, tools) == expected
    assert "<tools>\n" + json.dumps(TOOLS[0]) + "\n" in ours.chat_text(QWEN_CHATS[1][0], TOOLS)


# ---- the engine ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    pytest.importorskip("transformers")
    from dlm_core.checkpoints import load_checkpoint
    from dlm_core.engine import DlmEngine
    from testkit.hf_families import make_family_checkpoint

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tools")
    out = {f: DlmEngine(load_checkpoint(make_family_checkpoint(root, f)[0])) for f in ("sdar", "llada")}
    yield out
    for engine in out.values():
        engine.close()


@pytest.mark.parametrize("family", ["sdar", "llada"])
def test_engine_reply_offers_the_tools(engines, family):
    from dlm_core.sampler import SamplerConfig

    engine = engines[family]
    cfg = SamplerConfig.preset("fastest", max_new_tokens=8, block_size=4)
    prompt = engine.tokenizer.decode(engine.prompt_ids(CHAT_WITH_CALL, 8, TOOLS), skip_special=False)
    assert "get_weather" in prompt and "set_timer" in prompt and "<tool_response>" in prompt
    chunks = list(engine.reply(CHAT_WITH_CALL, cfg, tools=TOOLS))
    assert chunks and chunks[-1].nfe >= 1


def test_fit_drops_a_call_and_its_results_together(engines):
    engine = engines["sdar"]
    tok = engine.tokenizer
    chat = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [CALL]},
        {"role": "tool", "content": "sunny"},
        {"role": "tool", "content": "18 C"},
        {"role": "assistant", "content": "Sunny, 18 degrees."},
        {"role": "user", "content": "And tomorrow?"},
    ]
    orphan = len(tok.chat_prompt(chat[:1] + chat[3:], TOOLS))  # a result without its call: never
    context = engine.context_len
    try:
        engine.context_len = orphan + 8  # the plain rule would stop after dropping two messages
        assert len(tok.chat_prompt(chat[:1] + chat[2:], TOOLS)) > orphan
        assert engine.messages_to_drop(chat, 8, TOOLS) == 4  # the question, the call, both results
        assert engine.prompt_ids(chat, 8, TOOLS) == tok.chat_prompt(chat[:1] + chat[5:], TOOLS)
        engine.context_len = 40  # nothing fits: the last call and its result still stay together
        assert engine.messages_to_drop(chat[:5], 8, TOOLS) == 1
        assert engine.messages_to_drop(chat[:5], 8) == 1
    finally:
        engine.context_len = context


def test_a_garbled_tag_still_opens_a_call_and_is_never_spoken():
    """A small model may fumble the tag ("<tool_callname ..."): what follows is a call, not speech."""
    from dlm_core.tool_calls import BadToolCall, ToolCallParser

    text = 'Sure. <tool_callnamename": "set_timer", "arguments": {"seconds": 3}}'
    for cut in range(len(text) + 1):
        p = ToolCallParser()
        events = p.push(text[:cut]) + p.push(text[cut:]) + p.flush()
        spoken = "".join(e for e in events if isinstance(e, str))
        assert spoken.strip() == "Sure." and isinstance(events[-1], BadToolCall), (cut, events)


def _fn(name: str, required: list[str], optional: list[str] = ()) -> dict:
    properties = {k: {"type": "string"} for k in [*required, *optional]}
    parameters = {"type": "object", "properties": properties, "required": required}
    return {"type": "function", "function": {"name": name, "description": "", "parameters": parameters}}


def test_a_misnamed_call_means_the_one_offered_function_its_arguments_fit():
    from assistant.tools.builtin import BUILTIN_TOOLS

    builtins = [{"type": "function", "function": t} for t in BUILTIN_TOOLS]
    offered = [
        _fn("text_contact", ["to", "message"]),
        _fn("find_nearby", ["category"], ["open_now"]),
        *builtins,
    ]
    right = ToolCall("text_contact", '{"to": "Mum", "message": "hi"}')
    assert offered_call(right, offered) is right
    assert offered_call(ToolCall("check_text", right.arguments), offered) == right
    assert offered_call(ToolCall("nearby", '{"category": "ATM", "open_now": true}'), offered) == ToolCall(
        "find_nearby", '{"category": "ATM", "open_now": true}'
    )
    # Arguments no offered function takes, or that several take ({} fits every one without required
    # parameters: get_time, list_timers, ...): no function is meant.
    assert offered_call(ToolCall("check_text", '{"to": "Mum"}'), offered) is None
    assert offered_call(ToolCall("order_coffee", '{"drink": "latte"}'), offered) is None
    assert offered_call(ToolCall("what_time", "{}"), offered) is None
    assert offered_call(right, None) is None
