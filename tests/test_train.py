"""Training: the block-diffusion objective matches what the cached sampler shows the model, a tiny
run lowers the loss, and an interrupted run resumes to the same weights."""

from __future__ import annotations

import random

import pytest
import torch

from dlm_core.cache import KVCache
from dlm_core.model import Transformer
from dlm_core.tokenizer import DlmTokenizer
from training import bpe
from training.batches import make_batch
from training.data import Example, normalize, shorten
from training.objectives import batch_loss, held_out_loss, two_stream_hidden
from training.templates import exchanges
from training.tokenized import tokenize
from training.train import TrainConfig, export, train

TINY = {
    "dim": 32,
    "n_layers": 2,
    "n_heads": 2,
    "mlp_dim": 64,
    "batch_size": 8,
    "block_size": 4,
    "max_prompt": 24,
    "reply_len": 16,
    "lr": 3e-3,
    "warmup": 5,
    "eval_every": 1000,
    "ckpt_every": 1000,
    "log_every": 1000,
    "threads": 1,
}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """Template exchanges, a 300-token BPE trained on them, tokenized train/test splits."""
    pairs = exchanges(random.Random(0), per_topic=6)
    examples = [Example((("user", u),), r, "templates", f"t:{u}") for _, u, r in pairs]
    tok_dir = bpe.save_tokenizer(
        bpe.train_bpe([t for _, u, r in pairs for t in (u, r)], 300), tmp_path_factory.mktemp("tok")
    )
    tok = DlmTokenizer.from_dir(tok_dir)
    cfg = TrainConfig(**TINY)
    return tok, tokenize(examples[:-16], tok, cfg), tokenize(examples[-16:], tok, cfg), tok_dir


def test_tokenizer_special_tokens_and_chat_prompt(tiny_data):
    tok, train_split, _, _ = tiny_data
    s = tok.special
    assert len({s.mask, s.end_of_turn, s.pad}) == 3
    ids = tok.chat_prompt([{"role": "user", "content": "Hello there"}])
    assert tok.decode(ids, skip_special=False) == "<|user|>Hello there<|eot_id|><|assistant|>"
    assert all(r[-1] == s.end_of_turn for r in train_split.replies)
    with pytest.raises(ValueError):
        tok.chat_prompt([{"role": "robot", "content": "hi"}])


def test_normalize_makes_speakable_turns():
    assert normalize("  im so tired lol ") == "I'm so tired."
    assert normalize("what do u want") == "What do you want?"
    assert normalize("see www.example.com") is None
    assert normalize("eeeeeeh") is None
    assert shorten("One two three. Four five six seven.", 4) == "One two three."


def test_two_stream_matches_cached_inference():
    """The noisy stream's logits equal a cached forward: clean earlier blocks in the cache, the noisy
    block as the query. Training therefore optimises exactly what the fast sampler computes."""
    torch.manual_seed(0)
    block = 4
    model = Transformer(TrainConfig(**TINY).model_config(50)).eval()
    L, s0 = 14, 4  # s0: first position of the noisy stream, on a block boundary
    clean = torch.randint(3, 50, (1, L))
    noisy = clean.clone()
    noisy[0, 6:L:2] = 1  # some "masks" in the noisy copy
    valid = torch.ones(1, L, dtype=torch.bool)
    with torch.no_grad():
        two_stream = model.lm_head(two_stream_hidden(model, clean, noisy, valid, s0))
        for b_start in range(s0, L, block):
            b_end = min(L, b_start + block)
            cache = KVCache(model.cfg.n_layers)
            with cache.writing():
                model(clean[:, :b_start], cache=cache)
            cached = model(noisy[:, b_start:b_end], cache=cache)
            torch.testing.assert_close(two_stream[:, b_start - s0 : b_end - s0], cached, atol=1e-4, rtol=1e-4)


def test_pads_are_down_weighted(tiny_data):
    tok, split, _, _ = tiny_data
    cfg = TrainConfig(**TINY)
    model = Transformer(cfg.model_config(tok.vocab_size))
    batch = make_batch(split.prompts[:4], split.replies[:4], cfg, tok)
    t = torch.ones(4)  # everything masked
    gen = torch.Generator().manual_seed(0)
    full, n = batch_loss(model, batch, tok, cfg, gen, t=t, pad_weight=1.0)
    light, _ = batch_loss(model, batch, tok, cfg, torch.Generator().manual_seed(0), t=t, pad_weight=0.1)
    assert batch.is_pad.any() and float(light.detach()) < float(full.detach())
    assert int(n) == sum(len(r) for r in split.replies[:4])


@pytest.mark.parametrize("objective", ["diffusion", "ar"])
def test_tiny_run_learns_and_resumes(tiny_data, tmp_path, objective):
    tok, train_split, test_split, _ = tiny_data
    data = (tok, train_split, test_split)
    cfg = TrainConfig(out=str(tmp_path / "a"), objective=objective, steps=40, **TINY)
    model0 = train(TrainConfig(out=str(tmp_path / "zero"), objective=objective, steps=0, **TINY), data=data)
    before = held_out_loss(model0, train_split, tok, cfg, rows=64)
    model = train(cfg, log=lambda m: None, data=data)
    after = held_out_loss(model, train_split, tok, cfg, rows=64)
    assert after < before - 0.5, (before, after)

    # Interrupted at step 15 and restarted: same weights as the uninterrupted run.
    cfg_b = TrainConfig(out=str(tmp_path / "b"), objective=objective, steps=40, **TINY)
    train(cfg_b, log=lambda m: None, data=data, stop_at=15)
    logs = []
    resumed = train(cfg_b, log=logs.append, data=data)
    assert any("resumed" in m for m in logs)
    for (name, p), q in zip(model.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(p, q, msg=name)


def test_export_loads_through_checkpoints(tiny_data, tmp_path):
    from dlm_core.checkpoints import load_checkpoint

    tok, train_split, test_split, tok_dir = tiny_data
    cfg = TrainConfig(out=str(tmp_path / "run"), steps=2, tokenizer_dir=str(tok_dir), **TINY)
    model = train(cfg, log=lambda m: None, data=(tok, train_split, test_split))
    dest = export(tmp_path / "run", tmp_path / "out", card="# card\n")
    loaded = load_checkpoint(dest)
    assert loaded.family == "dlm_voice" and loaded.model.cfg.attention == "block_causal"
    assert (dest / "README.md").read_text() == "# card\n"
    x = torch.tensor([tok.chat_prompt([{"role": "user", "content": "Hi"}])])
    with torch.no_grad():
        expected = model.to(torch.bfloat16).float()(x)  # export stores 16-bit weights
        torch.testing.assert_close(loaded.model(x), expected, atol=1e-4, rtol=1e-4)


def test_best_held_out_weights_are_kept_and_exported(tiny_data, tmp_path):
    """A run keeps the weights of its best evaluation; export ships those, not the last ones."""
    tok, train_split, test_split, tok_dir = tiny_data
    cfg = TrainConfig(
        out=str(tmp_path / "run"), steps=12, tokenizer_dir=str(tok_dir), **TINY | {"eval_every": 4}
    )
    logs = []
    train(cfg, log=logs.append, data=(tok, train_split, test_split))
    state = torch.load(tmp_path / "run" / "ckpt.pt", weights_only=False)
    best = torch.load(tmp_path / "run" / "best.pt")
    helds = [h["held_out"] for h in state["history"]]
    assert [h["step"] for h in state["history"]] == [4, 8, 12]
    assert (
        best["held_out"] == min(helds) and best["step"] == state["history"][helds.index(min(helds))]["step"]
    )
    # Make the last weights differ from the best ones, then check which ones export writes.
    state["model"] = {k: v + 1.0 if v.is_floating_point() else v for k, v in state["model"].items()}
    torch.save(state, tmp_path / "run" / "ckpt.pt")
    from dlm_core.checkpoints import load_checkpoint

    shipped = load_checkpoint(export(tmp_path / "run", tmp_path / "out")).model.state_dict()
    for name, value in best["model"].items():
        torch.testing.assert_close(shipped[name].float(), value.to(torch.bfloat16).float(), msg=name)


def test_time_limit_stops_with_a_checkpoint(tiny_data, tmp_path):
    tok, train_split, test_split, _ = tiny_data
    cfg = TrainConfig(out=str(tmp_path / "run"), steps=1000, **TINY)
    logs = []
    train(cfg, log=logs.append, data=(tok, train_split, test_split), time_limit_s=0.0)
    state = torch.load(tmp_path / "run" / "ckpt.pt", weights_only=False)
    assert state["step"] == 1 and any("time limit" in m for m in logs)
    assert (tmp_path / "run" / "best.pt").is_file()  # evaluated on the way out


def test_data_cache_round_trip(tiny_data):
    from training.tokenized import _pack, _unpack

    tok, train_split, _, _ = tiny_data
    back = _unpack(_pack(train_split, tok.vocab_size))
    assert back.prompts == train_split.prompts and back.replies == train_split.replies
    assert back.sources == train_split.sources and back.texts == train_split.texts
