"""One reply's tools: which the prompt offers, how `tool_choice` shapes the reply, and what a call does.

    tools = ToolTurn(cfg, toolbox, conversation)    # tools.definitions: None when nothing is offered
    messages = await tools.handle(reply, call, emit)  # the messages to go on from, or None: the reply ends

A built-in tool (time, arithmetic, units, timers) runs here, in-process, and both the call and its output
join the conversation as completed items, so a Realtime client sees what happened; the LM then goes on
from the new messages. A client's function (session.tools) ends the response: the client runs it and
answers with a function_call_output item and response.create. A client function shadows a built-in of
the same name. A call to a name not offered means the one offered function whose parameters take its
arguments, if there is exactly one (dlm_core.tool_calls.offered_call); else the reply ends there.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from assistant import frames as F
from assistant.config import SessionConfig
from assistant.conversation import CALL, OUTPUT, Conversation, Item
from assistant.tools.builtin import Toolbox
from assistant.turns import new_id
from dlm_core.tool_calls import CALL_OPEN, offered_call

log = logging.getLogger(__name__)
FORCED_CALL = CALL_OPEN + '{"name": '  # how a forced call starts (the parser takes any spacing)


def forced_prefix(choice: str | dict) -> str:
    """How a reply starts when `tool_choice` forces a call: the opening of any call ("required"), or of a
    call to one named function up to its arguments ({"name": ...}); "" when the model may choose."""
    if isinstance(choice, dict):
        return f'{FORCED_CALL}{json.dumps(choice["name"])}, "arguments": '
    return f'{FORCED_CALL}"' if choice == "required" else ""


def choice_of_prefix(prefix: str) -> str | dict:
    """`forced_prefix` read back: the `tool_choice` a reply starting with `prefix` was asked for (a
    remote LM is sent the choice, not the prefix)."""
    if not prefix:
        return "auto"
    if prefix == forced_prefix("required"):
        return "required"
    name = json.loads(prefix[len(FORCED_CALL) : prefix.rindex(", ")])
    return {"name": name}


def template_tool(tool: dict) -> dict:
    """A Realtime function definition (flat) -> the shape chat templates render (nested "function")."""
    fn = {"name": tool["name"], "description": tool.get("description", "")}
    fn["parameters"] = tool.get("parameters") or {"type": "object", "properties": {}}
    return {"type": "function", "function": fn}


class ToolTurn:
    def __init__(
        self,
        cfg: SessionConfig,
        toolbox: Toolbox | None,
        conversation: Conversation,
        ran: Callable[[], None] | None = None,
    ):
        self.conversation, self.toolbox, self.instructions = conversation, toolbox, cfg.instructions
        self.ran = ran  # called after each built-in tool ran (the session watches its timers)
        self.client = {t["name"]: t for t in cfg.tools}
        builtin = toolbox.definitions() if toolbox is not None else []
        offered = [*cfg.tools, *(t for t in builtin if t["name"] not in self.client)]
        choice = cfg.tool_choice
        if isinstance(choice, dict):  # one named function, and the reply must call it
            offered = [t for t in offered if t["name"] == choice["name"]]
        self.prefix = forced_prefix(choice) if offered else ""
        if choice == "none":
            offered = []
        self.definitions = [template_tool(t) for t in offered] or None

    async def handle(self, reply, call, emit: Callable[[F.Frame], Awaitable[None]]) -> list[dict] | None:
        """The model called `call`: report it, run it if it is built-in. Returns the messages the LM
        goes on from, or None when the reply ends here."""
        meant = offered_call(call, self.definitions)
        if meant is None:
            log.warning("the model called %r, which is not offered; the reply ends there", call.name)
            return None
        if meant.name != call.name:
            log.info("the model called %r: %r takes its arguments, and is called", call.name, meant.name)
            call = meant
        await reply.gate.opened()  # a held (speculative) reply runs nothing until its turn is confirmed
        call_id = new_id("call")
        item = Item(
            new_id("item"),
            "assistant",
            "",
            type=CALL,
            call_id=call_id,
            name=call.name,
            arguments=call.arguments,
        )
        self.conversation.add(item)
        reply.calls.append(item.realtime())
        index = reply.next_index()
        await emit(
            F.FunctionCall(
                reply.turn_id,
                response_id=reply.response_id,
                item_id=item.id,
                output_index=index,
                call_id=item.call_id,
                name=call.name,
                arguments=call.arguments,
            )
        )
        if call.name in self.client or self.toolbox is None:
            return None
        output = self.toolbox.run(call.name, call.arguments)
        if self.ran is not None:
            self.ran()
        result = self.conversation.add(
            Item(new_id("item"), "tool", output, type=OUTPUT, call_id=item.call_id)
        )
        await emit(F.FunctionOutput(reply.turn_id, result.id, item.id, item.call_id, output))
        return self.conversation.messages(self.instructions)
