"""The test suite's assistant model: a tiny diffusion LM that memorised the exchanges the tests speak.

    checkpoint_dir()                       # the folder tests load (`--model`, DlmEngine.load)
    python -m testkit.voice_model --write  # retrain it and commit tests/models/tiny_voice (after a change)

It is trained by testkit/tool_chat.py's recipe on `rows()`: the spoken questions (VOICE_PAIRS, as Whisper
writes them), a follow-up that proves the conversation is kept, testkit.tiny_dlm.PAIRS and the tool calls.
Training takes minutes, so the trained weights are committed with the key of what they were trained on
(RECIPE_KEY_FILE). A test run uses them when the key matches and the replies come out exact on this CPU
(float sums differ between CPUs and the model memorises at the edge); otherwise it trains on from the
committed weights, or from scratch for a changed recipe, and caches the result by key.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

SHIPPED = Path(__file__).resolve().parents[1] / "tests" / "models" / "tiny_voice"
RECIPE_KEY_FILE = "recipe.json"
# Bump when the training code changes in a way the rows do not show (11: training's objectives).
RECIPE_VERSION = "11"
STEPS = 1200  # then MORE_STEPS more, up to ROUNDS in all, until every reply is exact
MORE_STEPS = 300
ROUNDS = 4
# Prompts as Whisper writes them (capitals, punctuation), so spoken questions reach memorised replies.
VOICE_PAIRS = [
    ("What is the capital of France?", "The capital of France is Paris, a city on the Seine."),
    ("Hello, how are you today?", "I am doing well, thank you. How can I help you?"),
    ("Tell me a joke.", "Why did the robot cross the road? To charge its battery."),
]
# The second question of a conversation, asked after the first was answered, and the reply memorised for
# it there: not the one the same question gets alone, so a test can tell that the conversation was kept.
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


def rows() -> list[tuple[list[dict], list[dict] | None, str]]:
    """Every (messages, tools, reply) the model memorises."""
    from testkit import tiny_dlm, tool_chat

    return [*tool_chat.chats(tiny_dlm.PAIRS + VOICE_PAIRS + heard_variants()), follow_up_row()]


def recipe_key() -> str:
    """A hash of what the model is trained on and how: a change to any of it means a new model. The rows
    are hashed as the chat template renders them, since that text is what the model sees."""
    from testkit import tool_chat

    texts = tool_chat.rendered(rows())
    recipe = [RECIPE_VERSION, STEPS, MORE_STEPS, ROUNDS, tool_chat.MODEL, tool_chat.VOCAB_SIZE, texts]
    return hashlib.sha1(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def _key_of(folder: Path) -> str | None:
    path = folder / RECIPE_KEY_FILE
    return json.loads(path.read_text())["key"] if path.is_file() else None


@functools.cache
def checkpoint_dir() -> Path:
    """The committed model when it is current and exact here; else one trained (on) here, cached by key."""
    from testkit import tool_chat
    from testkit.speech import cache_dir

    key = recipe_key()
    shipped_current = _key_of(SHIPPED) == key
    if shipped_current and not tool_chat.wrong_replies(SHIPPED, rows()):
        return SHIPPED
    out = cache_dir() / f"tiny_voice_{key}"
    if _key_of(out) == key:
        return out
    if not shipped_current:
        print(f"{SHIPPED} is stale: training anew (python -m testkit.voice_model --write)", file=sys.stderr)
    _train(out, key, start=SHIPPED if shipped_current else None)
    return out


def _train(out: Path, key: str, start: Path | None) -> None:
    """Train into `out` atomically (parallel test processes never see a half-written folder)."""
    from testkit import tool_chat

    tmp = out.with_name(out.name + f".{os.getpid()}.tmp")
    steps = MORE_STEPS if start is not None else STEPS
    wrong = tool_chat.train_test_model(tmp, rows(), steps, MORE_STEPS, ROUNDS, start=start)
    if wrong:  # the tests that need these replies fail with their own message; say why here too
        print(f"the tiny test model did not memorise {len(wrong)} replies: {wrong}", file=sys.stderr)
    (tmp / RECIPE_KEY_FILE).write_text(json.dumps({"key": key}) + "\n")
    if out.exists():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        os.replace(tmp, out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help=f"train from scratch into {SHIPPED}")
    args = ap.parse_args(argv)
    key = recipe_key()
    if args.write:
        shutil.rmtree(SHIPPED, ignore_errors=True)
        _train(SHIPPED, key, start=None)
        shutil.rmtree(SHIPPED / "tokenizer", ignore_errors=True)  # its files are copied beside the weights
    print(f"{SHIPPED}: key {_key_of(SHIPPED)}, current {key}")
    return 0 if _key_of(SHIPPED) == key else 1


if __name__ == "__main__":
    sys.exit(main())
