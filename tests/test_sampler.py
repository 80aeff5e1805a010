"""Samplers on tiny real models: streaming order, early stop, cancellation, cache exactness."""

from __future__ import annotations

import pytest
import torch

from dlm_core.cache import KVCache
from dlm_core.decoding import Committed
from dlm_core.sampler import SamplerConfig, generate, generate_autoregressive, model_forward
from testkit.tiny_dlm import (
    GEN_LEN,
    PAIRS,
    TINY_BLOCK,
    prompt_ids,
    random_model,
    tiny_tokenizer,
    trained_model,
)

torch.set_num_threads(1)

FAST = SamplerConfig(max_new_tokens=GEN_LEN, block_size=TINY_BLOCK)
REFERENCE = FAST.replace(strategy="reference")


def run(model, tokenizer, prompt, cfg) -> tuple[str, list[int], list[Committed]]:
    chunks = list(generate(model, tokenizer, prompt, cfg))
    ids = [t for c in chunks for t in c.token_ids]
    return "".join(c.text for c in chunks), ids, chunks


class CountingModel(torch.nn.Module):
    """Wraps a model and counts its forward passes."""

    def __init__(self, model):
        super().__init__()
        self.inner, self.cfg, self.lm_head, self.calls = model, model.cfg, model.lm_head, 0

    def forward(self, *args, **kw):
        self.calls += 1
        return self.inner(*args, **kw)


# ---- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"strategy": "greedy"},
        {"threshold": 1.5},
        {"max_new_tokens": 0},
        {"max_steps_per_block": 0},
        {"temperature": -1.0},
        {"cache": "both"},
        {"block_size": 0},
        {"steps": 0},
        {"repetition_penalty": 0.8},
    ],
)
def test_bad_config_raises_value_error(bad):
    with pytest.raises(ValueError):
        SamplerConfig(**bad)
    with pytest.raises(ValueError):
        SamplerConfig().replace(**bad)


def test_repetition_penalty_damps_only_seen_tokens():
    from dlm_core.sampler import penalize_repeats

    logits = torch.tensor([[2.0, -2.0, 1.0, 0.5]])
    penalize_repeats(logits, [0, 1, 1], 2.0)
    assert logits.tolist() == [[1.0, -4.0, 1.0, 0.5]]  # positive halved, negative doubled, rest kept


def test_autoregressive_decoder_matches_plain_greedy_and_answers():
    """The AR baseline's cached decoder gives what uncached greedy decoding gives, and the twin's answers."""
    model, tok = trained_model(autoregressive=True)
    for question, answer in PAIRS:
        prompt = prompt_ids(tok, question)
        chunks = list(generate_autoregressive(model, tok, prompt, GEN_LEN, repetition_penalty=1.0))
        ids = [t for c in chunks for t in c.token_ids]
        plain = []
        with torch.no_grad():
            while len(plain) < GEN_LEN:
                nxt = int(model(torch.tensor([prompt + plain]))[0, -1].argmax())
                if nxt in tok.special.stop_ids:
                    break
                plain.append(nxt)
        assert ids == plain and "".join(c.text for c in chunks) == tok.decode(ids) == answer
        assert chunks[-1].done and [c.nfe for c in chunks] == list(range(1, len(chunks) + 1))


def test_presets_and_replace():
    fastest, balanced, quality = (SamplerConfig.preset(n) for n in ("fastest", "balanced", "quality"))
    assert fastest.threshold < balanced.threshold < quality.threshold
    assert fastest.max_steps_per_block < balanced.max_steps_per_block < quality.max_steps_per_block
    assert SamplerConfig() == balanced
    assert balanced.replace(threshold=0.5).threshold == 0.5 and balanced.threshold == 0.9
    with pytest.raises(ValueError):
        SamplerConfig.preset("turbo")
    with pytest.raises(ValueError):
        balanced.replace(no_such_option=1)


def test_preset_names_come_from_the_one_table():
    from dlm_core.sampler import PRESET_NAMES, PRESETS, check_preset

    assert PRESET_NAMES == tuple(PRESETS) == ("fastest", "balanced", "quality")
    assert check_preset("quality") == "quality"
    with pytest.raises(ValueError, match="fastest"):
        check_preset("turbo")


def test_prompt_too_long_or_empty_raises():
    model, tok = random_model(), tiny_tokenizer()
    with pytest.raises(ValueError):
        generate(model, tok, [], FAST)
    with pytest.raises(ValueError):
        generate(model, tok, [1] * model.cfg.max_seq_len, FAST)
    with pytest.raises(ValueError):  # sampler blocks must sit on a block-causal model's grid
        generate(random_model("block_causal"), tok, [1, 2], FAST.replace(block_size=TINY_BLOCK + 1))


# ---- real text from the trained tiny models -----------------------------------------------------


@pytest.mark.parametrize(
    "attention,shift", [("block_causal", False), ("bidirectional", False), ("bidirectional", True)]
)
def test_fast_and_reference_both_give_the_memorised_replies(attention, shift):
    model, tok = trained_model(attention, shift)
    for question, answer in PAIRS:
        prompt = prompt_ids(tok, question)
        fast, _, fast_chunks = run(model, tok, prompt, FAST)
        ref, _, ref_chunks = run(model, tok, prompt, REFERENCE)
        assert fast == answer
        assert ref == answer
        assert fast_chunks[-1].nfe < ref_chunks[-1].nfe


def test_streaming_order_matches_final_decode_and_never_shows_end_of_turn():
    model, tok = trained_model("block_causal")
    stops = tok.special.stop_ids
    for cfg in (FAST, REFERENCE, FAST.replace(threshold=1.0)):  # threshold 1.0: one token per step
        text, ids, chunks = run(model, tok, prompt_ids(tok, PAIRS[1][0]), cfg)
        assert text == tok.decode(ids) == PAIRS[1][1]
        assert not stops & set(ids)
        assert [c.nfe for c in chunks] == sorted(c.nfe for c in chunks)
        assert chunks[-1].done and not any(c.done for c in chunks[:-1])
        assert sum(1 for c in chunks if c.text) > 1 or cfg is FAST  # text arrives in pieces


def test_early_stop_ends_at_end_of_turn_with_fewer_forward_passes():
    model, tok = trained_model("block_causal")
    prompt = prompt_ids(tok, PAIRS[0][0])
    text, ids, chunks = run(model, tok, prompt, FAST)
    full_text, _, full_chunks = run(model, tok, prompt, FAST.replace(early_stop=False))
    assert text == full_text == PAIRS[0][1]
    assert chunks[-1].nfe < full_chunks[-1].nfe
    # The reply is shorter than the canvas, so early stop skipped whole blocks.
    assert len(ids) + 1 < GEN_LEN - TINY_BLOCK


def test_closing_the_generator_stops_forward_passes():
    inner, tok = trained_model("bidirectional")
    model = CountingModel(inner)
    gen = generate(model, tok, prompt_ids(tok, PAIRS[2][0]), REFERENCE)
    first = next(gen)
    assert first.nfe == model.calls == 1
    gen.close()
    with pytest.raises(StopIteration):
        next(gen)
    assert model.calls == 1


# ---- cache exactness ----------------------------------------------------------------------------


@pytest.mark.parametrize("attention", ["block_causal", "causal"])
def test_cached_logits_equal_uncached_for_causal_families(attention):
    model = random_model(attention)
    torch.manual_seed(1)
    seq = torch.randint(0, model.cfg.vocab_size, (1, 3 * TINY_BLOCK + 5))
    full = model(seq)  # [1, L, V]
    split = 2 * TINY_BLOCK  # whole blocks go to the cache
    cache = KVCache(model.cfg.n_layers)
    fwd = model_forward(model)
    pos = torch.arange(seq.shape[1])[None]
    fwd(seq[:, :split], pos[:, :split], cache, torch.arange(split), (0, 1))
    assert cache.length == split
    rest = fwd(seq[:, split:], pos[:, split:], cache, None, (0, seq.shape[1] - split))
    assert cache.length == split  # reading does not grow it
    torch.testing.assert_close(rest, full[:, split:], atol=1e-5, rtol=1e-5)


def test_batched_cache_left_pads_rows_and_hands_columns_back():
    """The engine's round trip: row caches of different lengths batched into one (left padding, invalid
    keys), a batched forward that writes, and each row's chosen new columns appended back."""
    model = random_model("block_causal")
    torch.manual_seed(2)
    seqs = [torch.randint(0, model.cfg.vocab_size, (1, n)) for n in (TINY_BLOCK, 2 * TINY_BLOCK)]
    rows = [KVCache(model.cfg.n_layers) for _ in seqs]
    for cache, seq in zip(rows, seqs):
        with cache.writing():
            model(seq, cache=cache)
    rows.append(None)  # a row without a cache: all padding
    merged = KVCache.batched(rows, model.cfg.n_layers)
    T = 2 * TINY_BLOCK
    assert merged.length == T and merged.k[0].shape[0] == 3
    assert merged.valid.sum(1).tolist() == [TINY_BLOCK, T, 0]  # left-padded with invalid keys
    torch.testing.assert_close(merged.k[1][0:1, :, TINY_BLOCK:], rows[0].k[1])
    new = torch.randint(0, model.cfg.vocab_size, (3, 4))
    positions = torch.tensor([[TINY_BLOCK + i for i in range(4)], [T + i for i in range(4)], list(range(4))])
    with merged.writing():
        model(new, positions, cache=merged)
    rows[0].append_row(merged, 0, T + torch.tensor([0, 2]))
    assert rows[0].length == TINY_BLOCK + 2
    assert rows[0].positions[0, -2:].tolist() == [TINY_BLOCK, TINY_BLOCK + 2]
    torch.testing.assert_close(rows[0].k[0][:, :, -1], merged.k[0][0:1, :, T + 2])


@pytest.mark.parametrize(
    "attention,shift", [("block_causal", False), ("causal", False), ("block_causal", True), ("causal", True)]
)
def test_cached_sampler_matches_uncached_sampler_for_causal_families(attention, shift):
    model, tok = random_model(attention, shift=shift, seed=3), tiny_tokenizer()
    prompt = prompt_ids(tok, "an unseen question for a random model")
    cfg = FAST.replace(threshold=0.0 + 0.05, max_steps_per_block=TINY_BLOCK, early_stop=False)
    _, cached, c_chunks = run(model, tok, prompt, cfg)
    _, uncached, u_chunks = run(model, tok, prompt, cfg.replace(cache="none"))
    assert cached == uncached
    assert c_chunks[-1].nfe == u_chunks[-1].nfe


def test_dual_and_prefix_cache_run_on_bidirectional_models():
    model, tok = trained_model("bidirectional")
    prompt = prompt_ids(tok, PAIRS[2][0])
    for mode in ("dual", "prefix", "none"):
        text, _, _ = run(model, tok, prompt, FAST.replace(cache=mode))
        assert text == PAIRS[2][1], mode
    with pytest.raises(ValueError):
        generate(random_model("block_causal"), tok, prompt, FAST.replace(cache="dual"))


def test_sampling_with_temperature_is_seeded():
    model, tok = random_model("block_causal", seed=5), tiny_tokenizer()
    prompt = prompt_ids(tok, "hello")
    cfg = FAST.replace(temperature=1.0, seed=7, early_stop=False, max_new_tokens=TINY_BLOCK)
    assert run(model, tok, prompt, cfg)[1] == run(model, tok, prompt, cfg)[1]


@pytest.mark.parametrize(
    "attention,shift", [("block_causal", False), ("block_causal", True), ("causal", True)]
)
def test_fast_at_one_token_per_step_reproduces_the_reference(attention, shift):
    # Reference with steps == max_new_tokens commits one token per step, the most confident one in
    # its block; fast with threshold 1.0 and an ample step cap does the same through its exact cache.
    model, tok = random_model(attention, shift=shift, seed=8), tiny_tokenizer()
    prompt = prompt_ids(tok, "a prompt whose length does not sit on the block grid")
    ref_cfg = REFERENCE.replace(early_stop=False)
    fast_cfg = FAST.replace(threshold=1.0, max_steps_per_block=TINY_BLOCK, early_stop=False)
    _, ref_ids, ref_chunks = run(model, tok, prompt, ref_cfg)
    _, fast_ids, fast_chunks = run(model, tok, prompt, fast_cfg)
    assert fast_ids == ref_ids
    assert fast_chunks[-1].nfe == ref_chunks[-1].nfe == GEN_LEN
