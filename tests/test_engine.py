"""The engine: replies, batching of concurrent sessions, cancellation, prompt cache across turns."""

from __future__ import annotations

import threading

import pytest
import torch

from dlm_core.engine import DlmEngine
from dlm_core.sampler import SamplerConfig, generate
from testkit.tiny_dlm import (
    GEN_LEN,
    PAIRS,
    TINY_BLOCK,
    Loaded,
    prompt_ids,
    random_model,
    tiny_tokenizer,
    trained_model,
)

torch.set_num_threads(1)

FAST = SamplerConfig(max_new_tokens=GEN_LEN, block_size=TINY_BLOCK)


@pytest.fixture(scope="module")
def block_engine():
    model, tok = trained_model("block_causal")
    engine = DlmEngine(Loaded(model, tok))
    yield engine
    engine.close()


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def collect(it) -> tuple[str, list[int], int]:
    chunks = list(it)
    return "".join(c.text for c in chunks), [t for c in chunks for t in c.token_ids], chunks[-1].nfe


def test_reply_streams_the_memorised_answer(block_engine):
    for question, answer in PAIRS:
        text, _, nfe = collect(block_engine.reply(user(question), FAST))
        assert text == answer
        assert nfe >= 1


def test_load_from_a_saved_checkpoint():
    from testkit.tiny_dlm import trained_checkpoint_dir

    engine = DlmEngine.load(str(trained_checkpoint_dir()))
    try:
        assert engine.family == "dlm_voice"
        text, _, _ = collect(engine.reply(user(PAIRS[2][0]), FAST))
        assert text == PAIRS[2][1]
    finally:
        engine.close()


def test_bad_input_raises_value_error(block_engine):
    with pytest.raises(ValueError):
        block_engine.reply([], FAST)
    with pytest.raises(ValueError):
        block_engine.reply([{"content": "no role"}], FAST)
    with pytest.raises(ValueError):
        block_engine.reply(user("hi"), FAST.replace(max_new_tokens=block_engine.context_len))
    with pytest.raises(ValueError):
        block_engine.reply(user("hi"), FAST.replace(block_size=TINY_BLOCK + 3))


def test_history_is_trimmed_to_the_context(block_engine):
    long_history = []
    for i in range(40):
        long_history += [
            {"role": "user", "content": f"old question number {i}"},
            {"role": "assistant", "content": f"old answer number {i}"},
        ]
    messages = [{"role": "system", "content": "be brief"}] + long_history + user(PAIRS[0][0])
    ids = block_engine.prompt_ids(messages, GEN_LEN)
    assert len(ids) + GEN_LEN <= block_engine.context_len
    assert ids[-len(prompt_ids(block_engine.tokenizer, PAIRS[0][0])) :] == prompt_ids(
        block_engine.tokenizer, PAIRS[0][0]
    )  # the newest turn survives
    assert block_engine.tokenizer.decode(ids).count("be brief") == 1  # and so does the system prompt
    text, ids, _ = collect(block_engine.reply(messages, FAST))
    # Trimming is invisible to the reply: it is the reply to the history that fits (the plain rule's).
    # (Not the memorised answer: the tiny model was trained on one-turn chats, not on 80 old turns.)
    dropped = _drops_one_by_one(block_engine.tokenizer, messages, block_engine.context_len - GEN_LEN)
    assert dropped > 0
    kept = messages[:1] + messages[1 + dropped :]
    assert block_engine.prompt_ids(messages, GEN_LEN) == block_engine.tokenizer.chat_prompt(kept)
    assert ids and (text, ids) == collect(block_engine.reply(kept, FAST))[:2], text


def _drops_one_by_one(tokenizer, messages, budget) -> int:
    """The plain rule: drop the oldest non-system message until the prompt fits (or one is left)."""
    msgs, dropped = list(messages), 0
    while len(tokenizer.chat_prompt(msgs)) > budget:
        droppable = [i for i, m in enumerate(msgs) if m["role"] != "system"]
        if len(droppable) <= 1:
            break
        del msgs[droppable[0]]
        dropped += 1
    return dropped


def test_messages_to_drop_is_the_fewest_that_fit_found_in_few_tokenizations(block_engine):
    tok = block_engine.tokenizer
    calls = []
    counting = type("Counting", (), {"chat_prompt": lambda self, m: calls.append(1) or tok.chat_prompt(m)})
    history = [{"role": "system", "content": "be brief"}]
    for i in range(60):
        history.append({"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " * (1 + i % 4)})
        if i % 17 == 5:
            history.append({"role": "system", "content": "a note in the middle"})
    for max_new in (GEN_LEN, 150, 200, 230, 250):
        for n in (1, 2, 5, 20, len(history)):
            messages = history[-n:]
            expected = _drops_one_by_one(tok, messages, block_engine.context_len - max_new)
            block_engine.tokenizer, calls[:] = counting(), []
            try:
                assert block_engine.messages_to_drop(messages, max_new) == expected, (max_new, n)
            finally:
                block_engine.tokenizer = tok
            assert len(calls) <= 2 + max(1, len(messages)).bit_length(), (len(calls), len(messages))
    with pytest.raises(ValueError):
        block_engine.messages_to_drop([], GEN_LEN)
    with pytest.raises(ValueError):
        block_engine.messages_to_drop(user("hi"), block_engine.context_len)


@pytest.mark.parametrize(
    "attention,strategy",
    [("block_causal", "fast"), ("bidirectional", "fast"), ("bidirectional", "reference")],
)
def test_concurrent_sessions_are_batched_and_get_their_own_replies(attention, strategy):
    # A random model with threshold 1.0 commits one token per step: many steps to overlap.
    model, tok = random_model(attention, seed=11), tiny_tokenizer()
    cfg = FAST.replace(strategy=strategy, threshold=1.0, early_stop=False, max_new_tokens=2 * TINY_BLOCK)
    questions = ["first session asks this", "and the second one asks something much longer than that"]
    alone = [collect(generate(model, tok, prompt_ids(tok, q), cfg))[1] for q in questions]
    engine = DlmEngine(Loaded(model, tok))
    try:
        barrier = threading.Barrier(len(questions))
        results: dict[int, tuple] = {}

        def worker(i):
            barrier.wait()
            results[i] = collect(engine.reply(user(questions[i]), cfg, session_id=f"s{i}"))

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(questions))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert len(results) == len(questions)
        for i in range(len(questions)):
            assert results[i][1] == alone[i]
        total_nfe = sum(r[2] for r in results.values())
        assert engine.forward_calls < total_nfe
        assert max(engine.batch_sizes) == len(questions)
    finally:
        engine.close()


def test_closing_a_reply_cancels_it_and_leaves_others_running():
    model, tok = random_model("block_causal", seed=2), tiny_tokenizer()
    cfg = FAST.replace(threshold=1.0, early_stop=False)
    engine = DlmEngine(Loaded(model, tok))
    try:
        it = engine.reply(user("cancel me"), cfg)
        next(it)
        calls = engine.forward_calls
        it.close()
        with pytest.raises(StopIteration):
            next(it)
        _, ids, nfe = collect(engine.reply(user("another session"), cfg.replace(max_new_tokens=TINY_BLOCK)))
        assert engine.forward_calls == calls + nfe  # the cancelled reply ran no further passes
        assert len(ids) <= TINY_BLOCK
    finally:
        engine.close()


def test_prompt_cache_is_kept_across_turns_and_exact(block_engine):
    model, tok = block_engine.model, block_engine.tokenizer
    first = user(PAIRS[0][0])
    text, _, _ = collect(block_engine.reply(first, FAST, session_id="conv"))
    cached = block_engine.session_cached_tokens("conv")
    assert cached >= TINY_BLOCK and cached % TINY_BLOCK == 0
    second = first + [{"role": "assistant", "content": text}] + user(PAIRS[1][0])
    with_cache = collect(block_engine.reply(second, FAST, session_id="conv"))
    without = collect(generate(model, tok, block_engine.prompt_ids(second, GEN_LEN), FAST))
    assert with_cache[:2] == without[:2]
    assert block_engine.session_cached_tokens("conv") > cached
    block_engine.drop_session("conv")
    assert block_engine.session_cached_tokens("conv") == 0


@pytest.mark.parametrize(
    "attention,shift", [("causal", True), ("block_causal", True), ("bidirectional", False)]
)
def test_session_cache_gives_the_same_tokens_as_a_fresh_prompt(attention, shift):
    model, tok = random_model(attention, shift=shift, seed=4), tiny_tokenizer()
    cfg = FAST.replace(threshold=1.0, early_stop=False, max_new_tokens=TINY_BLOCK)
    engine = DlmEngine(Loaded(model, tok))
    try:
        history = user("the first turn of a long conversation")
        for turn in range(3):
            with_cache = collect(engine.reply(history, cfg, session_id="s"))
            fresh = collect(generate(model, tok, engine.prompt_ids(history, cfg.max_new_tokens), cfg))
            assert with_cache[1] == fresh[1], turn
            history = history + [{"role": "assistant", "content": with_cache[0]}] + user(f"turn {turn}")
        kept = engine.session_cached_tokens("s")
        assert (kept > 0) == (attention != "bidirectional")  # bidirectional prompts are recomputed
    finally:
        engine.close()
