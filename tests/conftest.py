"""Shared fixtures for the assistant tests: one set of real models per test process, and a live server.

The LM is `DLM_TEST_MODEL` when set (e.g. the shipped default), else a tiny block-causal diffusion model
trained here (testkit/tiny_dlm.py) and saved once as a checkpoint folder in the speech cache, so every
test process after the first loads it in well under a second. Whisper and piper are the bundled models.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TINY_CKPT_VERSION = "9"  # bump when the recipe, VOICE_PAIRS, FOLLOW_UP or testkit.tool_chat change
TINY_STEPS = 1200  # then TINY_MORE_STEPS more, up to TINY_ROUNDS in all, until every reply is exact
TINY_MORE_STEPS = 300
TINY_ROUNDS = 4
# Prompts as Whisper writes them (capitals, punctuation), so spoken questions reach memorised replies.
VOICE_PAIRS = [
    ("What is the capital of France?", "The capital of France is Paris, a city on the Seine."),
    ("Hello, how are you today?", "I am doing well, thank you. How can I help you?"),
    ("Tell me a joke.", "Why did the robot cross the road? To charge its battery."),
]

# The second question of a conversation, asked after the first was answered, and the reply memorised for
# it there: not the one the same question gets alone, so a test can tell that the conversation was kept
# (the tiny model answers only what it memorised; an untrained two-turn prompt got an empty reply).
FOLLOW_UP = (VOICE_PAIRS[0], VOICE_PAIRS[1][0], "Still well, thank you. Paris is lovely in spring.")


def follow_up_row() -> tuple[list[dict], None, str]:
    """FOLLOW_UP as a (messages, tools, reply) training row."""
    (question, answer), second, reply = FOLLOW_UP
    messages = [
        {"role": "user", "content": question},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": second},
    ]
    return messages, None, reply


def heard_variants() -> list[tuple[str, str]]:
    """Whisper punctuates the same words differently from one call to the next ("Hello, how are you
    today?" or "Hello? How are you today?"), and the tiny model only knows the prompts it memorised."""
    out = []
    for question, reply in VOICE_PAIRS:
        head, sep, tail = question.partition(", ")
        if sep:
            out += [(f"{head}{mark} {tail[0].upper()}{tail[1:]}", reply) for mark in ("?", ".", "!")]
    return out


def tiny_checkpoint_dir() -> Path:
    """A checkpoint folder of the tiny trained model (trained on first use, then cached on disk)."""
    from testkit.speech import cache_dir

    out = cache_dir() / f"tiny_dlm_ckpt_v{TINY_CKPT_VERSION}"
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out

    from testkit import tiny_dlm as fx
    from testkit import tool_chat

    tmp = out.with_name(out.name + f".{os.getpid()}.tmp")
    rows = [*tool_chat.chats(fx.PAIRS + VOICE_PAIRS + heard_variants()), follow_up_row()]
    wrong = tool_chat.train_test_model(tmp, rows, TINY_STEPS, TINY_MORE_STEPS, TINY_ROUNDS)
    if wrong:  # the tests that need these replies fail with their own message; say why here too
        print(f"the tiny test model did not memorise {len(wrong)} replies: {wrong}", file=sys.stderr)
    if not out.exists():
        os.replace(tmp, out)
    return out


def lm_spec() -> str:
    return os.environ.get("DLM_TEST_MODEL") or str(tiny_checkpoint_dir())


# Replies of the tiny model are only meaningful without a system prompt (it was trained on bare chats).
TEST_INSTRUCTIONS = "" if not os.environ.get("DLM_TEST_MODEL") else None


class WeakerCheck(UserWarning):
    """A test checked less than it does with the tiny test model (another model's reply is only known to
    be words, not which words). Shown in pytest's warnings summary, so a run with DLM_TEST_MODEL says
    what it did not check; the checks that need the tiny model alone are skipped with a reason instead."""


def weaker_check(what: str) -> None:
    """Say, in pytest's summary, that `what` was not checked against the tiny model's memorised reply."""
    model = os.environ.get("DLM_TEST_MODEL") or os.environ.get("DLM_WEB_SERVER") or "another model"
    warnings.warn(WeakerCheck(f"{what}: not checked against a memorised reply ({model})"), stacklevel=2)


@pytest.fixture(scope="session")
def model_spec() -> str:
    return lm_spec()


@pytest.fixture(scope="session")
def engines(model_spec):
    from assistant.config import ModelsConfig
    from assistant.engines import Engines

    e = Engines.load(ModelsConfig(model=model_spec))
    yield e
    e.close()


# The tiny model memorised its replies without tools in the prompt: tests of anything but tools turn the
# built-in tools off for it (TINY_FLAGS on a command line).
TINY_FLAGS = (
    ["--instructions", TEST_INSTRUCTIONS, "--no-builtin-tools"] if TEST_INSTRUCTIONS is not None else []
)


def session_config(**kw):
    from assistant.config import SessionConfig

    if TEST_INSTRUCTIONS is not None:
        kw.setdefault("instructions", TEST_INSTRUCTIONS)
        kw.setdefault("builtin_tools", False)
    return SessionConfig(**kw)


class ServerThread:
    """An AssistantServer on its own event loop in a background thread (tests run their own loops)."""

    def __init__(self, engines, cfg=None, session=None):
        from assistant.config import ServerConfig
        from assistant.server import AssistantServer

        self.loop = asyncio.new_event_loop()
        self.server = AssistantServer(engines, cfg or ServerConfig(port=0), session or session_config())
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(30)
        self.port = self.server.port

    def close(self):
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="session")
def server(engines):
    s = ServerThread(engines)
    yield s
    s.close()
