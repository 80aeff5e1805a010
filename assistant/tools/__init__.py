"""The assistant's built-in tools, run in-process: clock, calculator, unit converter, timers.

`Toolbox` (one per conversation) is the way in: its `definitions()` go to the LM as OpenAI function
definitions, and `run(name, arguments_json)` answers a call with JSON text, never raising. The session
drives timers itself: `toolbox.timers.next_deadline()`, then `pop_due()` and `announcement(timer)`.
"""

from assistant.tools.builtin import BUILTIN_TOOLS, Toolbox
from assistant.tools.timers import Timer, Timers, announcement

__all__ = ["BUILTIN_TOOLS", "Timer", "Timers", "Toolbox", "announcement"]
