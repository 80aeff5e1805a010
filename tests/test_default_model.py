"""The shipped default diffusion model and its AR twin load offline and reply with substance."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import torch

from dlm_core.checkpoints import load_checkpoint, resolve_model
from dlm_core.sampler import SamplerConfig, generate

WEIGHTS = Path(__file__).resolve().parent.parent / "dlm_core" / "weights"
MAX_SHIPPED_BYTES = 60 * 1024 * 1024
EVERYDAY = [
    "Hi! How is your day going?",
    "Can you recommend a good movie for tonight?",
    "Tell me a joke",
    "What's the weather like?",
    "Thank you so much",
    "What should I eat for dinner?",
]


@pytest.fixture(scope="module")
def default_model():
    torch.set_num_threads(1)
    return load_checkpoint(resolve_model(None))


def reply(loaded, text: str) -> str:
    ids = loaded.tokenizer.chat_prompt([{"role": "user", "content": text}])
    cfg = SamplerConfig.preset("balanced", max_new_tokens=32)
    return "".join(c.text for c in generate(loaded.model, loaded.tokenizer, ids, cfg)).strip()


def word_loop(text: str) -> bool:
    """A word three times in a row, one word filling most of a reply, or a sentence said twice."""
    words = re.findall(r"[a-z']+", text.lower())
    if any(words[i] == words[i + 1] == words[i + 2] for i in range(len(words) - 2)):
        return True
    sentences = [" ".join(re.findall(r"[a-z']+", s)) for s in re.split(r"[.!?,]+", text.lower())]
    sentences = [s for s in sentences if s]
    if len(sentences) != len(set(sentences)):
        return True
    most = Counter(words).most_common(1)
    return bool(most) and len(words) >= 6 and most[0][1] > 0.4 * len(words)


def test_default_is_our_block_diffusion_model(default_model):
    assert default_model.family == "dlm_voice"
    cfg = default_model.model.cfg
    assert cfg.attention == "block_causal" and cfg.logits_shift  # started from its AR twin (data v3)
    assert (WEIGHTS / "default" / "README.md").is_file()


@pytest.fixture(scope="module")
def everyday_replies(default_model):
    return [reply(default_model, p) for p in EVERYDAY]


def test_everyday_replies_have_substance(everyday_replies):
    for prompt, text in zip(EVERYDAY, everyday_replies):
        assert len(text.split()) >= 2, (prompt, text)  # no collapse onto end-of-reply
        assert len(text.split()) <= 40, (prompt, text)
        assert text.lower().strip(" .!?") != prompt.lower().strip(" .!?"), (prompt, text)  # no echo
    assert len(set(everyday_replies)) >= len(EVERYDAY) - 1, everyday_replies  # not one reply for all


def test_loop_detector():
    assert word_loop("people often recommend recommend recommend it")
    assert word_loop("I don't know. I don't know, I don't know.")
    assert not word_loop("I'm doing well, thanks for asking. How about you?")


def test_everyday_replies_have_no_word_loops(everyday_replies):
    loops = [(p, t) for p, t in zip(EVERYDAY, everyday_replies) if word_loop(t)]
    assert not loops, loops


def test_twin_is_causal_and_replies():
    twin = load_checkpoint(WEIGHTS / "twin")
    cfg = twin.model.cfg
    assert cfg.attention == "causal" and cfg.logits_shift
    ids = twin.tokenizer.chat_prompt([{"role": "user", "content": "Hello, how are you?"}])
    out = []
    with torch.no_grad():
        for _ in range(24):
            nxt = int(twin.model(torch.tensor([ids + out]))[0, -1].argmax())
            if nxt in twin.tokenizer.special.stop_ids:
                break
            out.append(nxt)
    text = twin.tokenizer.decode(out)
    assert len(text.split()) >= 2 and not word_loop(text), text


def test_shipped_weights_stay_small():
    """Everything under dlm_core/weights: the default, its twin and the turn judge's data-v1 twin."""
    total = sum(f.stat().st_size for f in WEIGHTS.glob("*/*") if f.is_file())
    assert total <= MAX_SHIPPED_BYTES, total


def test_movie_request_names_a_film(everyday_replies):
    """The issue's second everyday prompt gets an actual recommendation, not small talk."""
    from training.templates import MOVIES

    text = everyday_replies[EVERYDAY.index("Can you recommend a good movie for tonight?")]
    assert any(re.search(rf"\b{re.escape(m)}\b", text) for m in MOVIES), text
