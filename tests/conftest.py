"""Shared fixtures for the assistant tests: one set of real models per test process, and a live server.

The LM is `DLM_TEST_MODEL` when set (e.g. the shipped default), else the tiny block-causal diffusion model
of testkit/voice_model.py (committed in tests/models/tiny_voice, trained anew only when its recipe
changes). Whisper and piper are the bundled models; the speech tests hear is committed in tests/speech/.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import warnings
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from testkit.speech_corpus import STRICT_ENV  # noqa: E402 (the repository root is on the path now)
from testkit.voice_model import FOLLOW_UP, VOICE_PAIRS, checkpoint_dir  # noqa: E402, F401 (for the tests)

# Tests speak only the committed clips of tests/speech/ (testkit/speech_corpus.py): the same audio on every
# machine and run. Set in the environment, so the benchmarks and CLIs the tests start hear them too.
os.environ[STRICT_ENV] = "committed"

# Property tests draw the same examples on every run and machine (hypothesis picks them from the test's
# name, not at random), and keep no database of earlier failures that would change what the next run tries.
settings.register_profile("same_every_run", derandomize=True, database=None)
settings.load_profile("same_every_run")


def lm_spec() -> str:
    return os.environ.get("DLM_TEST_MODEL") or str(checkpoint_dir())


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
