"""Training: the block-diffusion objective matches what the cached sampler shows the model, a tiny
run lowers the loss, and an interrupted run resumes to the same weights."""

from __future__ import annotations

import json
import random

import pytest
import torch

from dlm_core.cache import KVCache
from dlm_core.model import Transformer
from dlm_core.tokenizer import DlmTokenizer
from training import bpe
from training.batches import make_batch
from training.config import TrainConfig
from training.data import normalize, shorten
from training.examples import Example
from training.objectives import batch_loss, block_predictors, held_out_loss, two_stream_hidden
from training.templates import exchanges
from training.tokenized import tokenize
from training.train import export, train

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
        two_stream = model.lm_head(two_stream_hidden(model, clean, noisy, valid, s0)[1])
        for b_start in range(s0, L, block):
            b_end = min(L, b_start + block)
            cache = KVCache(model.cfg.n_layers)
            with cache.writing():
                model(clean[:, :b_start], cache=cache)
            cached = model(noisy[:, b_start:b_end], cache=cache)
            torch.testing.assert_close(two_stream[:, b_start - s0 : b_end - s0], cached, atol=1e-4, rtol=1e-4)


def test_shifted_predictors_match_what_the_sampler_reads():
    """A shifted model (output i predicts token i + 1) is trained on the outputs the sampler reads: a
    block's first position from the last committed token (a clean forward), the others from the noisy
    block's previous position behind the cache."""
    torch.manual_seed(0)
    block = 4
    model = Transformer(TrainConfig(**TINY, objective="diffusion", logits_shift=True).model_config(50)).eval()
    L, s0 = 14, 4
    clean = torch.randint(3, 50, (1, L))
    noisy = clean.clone()
    noisy[0, 5:L:2] = 1
    valid = torch.ones(1, L, dtype=torch.bool)
    with torch.no_grad():
        trained = model.lm_head(block_predictors(model, clean, noisy, valid, s0))  # [1, L - s0, V]
        for b_start in range(s0, L, block):
            b_end = min(L, b_start + block)
            committed = model(clean[:, :b_start])[:, -1]  # the last committed token's output
            torch.testing.assert_close(trained[:, b_start - s0], committed, atol=1e-4, rtol=1e-4)
            cache = KVCache(model.cfg.n_layers)
            with cache.writing():
                model(clean[:, :b_start], cache=cache)
            inside = model(noisy[:, b_start:b_end], cache=cache)[:, :-1]  # predicts b_start+1 .. b_end-1
            torch.testing.assert_close(
                trained[:, b_start - s0 + 1 : b_end - s0], inside, atol=1e-4, rtol=1e-4
            )
    with pytest.raises(ValueError, match="block_causal"):
        TrainConfig(**TINY | {"attention": "bidirectional", "logits_shift": True})


def test_a_diffusion_run_starts_from_ar_weights(tiny_data, tmp_path):
    tok, train_split, test_split, _ = tiny_data
    data = (tok, train_split, test_split)
    ar = TrainConfig(out=str(tmp_path / "ar"), objective="ar", steps=20, **TINY)
    ar_model = train(ar, log=lambda m: None, data=data)
    cfg = TrainConfig(
        out=str(tmp_path / "dlm"),
        steps=0,
        logits_shift=True,
        init_from=str(tmp_path / "ar" / "ckpt.pt"),
        **TINY,
    )
    adapted = train(cfg, log=lambda m: None, data=data)
    for (name, a), b in zip(ar_model.state_dict().items(), adapted.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    assert adapted.cfg.logits_shift and adapted.cfg.attention == "block_causal"


def test_pads_are_down_weighted(tiny_data):
    tok, split, _, _ = tiny_data
    cfg = TrainConfig(**TINY)
    model = Transformer(cfg.model_config(tok.vocab_size))
    batch = make_batch(split.prompts[:4], split.replies[:4], cfg.reply_len, tok)
    t = torch.ones(4)  # everything masked
    gen = torch.Generator().manual_seed(0)
    full, n = batch_loss(model, batch, tok, cfg, gen, t=t, pad_weight=1.0)
    light, _ = batch_loss(model, batch, tok, cfg, torch.Generator().manual_seed(0), t=t, pad_weight=0.1)
    assert batch.is_pad.any() and float(light.detach()) < float(full.detach())
    assert int(n) == sum(len(r) for r in split.replies[:4])


def test_uniform_weighting_drops_the_one_over_t_factor(tiny_data):
    tok, split, _, _ = tiny_data
    cfg = TrainConfig(**TINY)
    model = Transformer(cfg.model_config(tok.vocab_size))
    batch = make_batch(split.prompts[:4], split.replies[:4], cfg.reply_len, tok)

    def loss(t, weighting):
        gen = torch.Generator().manual_seed(0)
        return float(
            batch_loss(model, batch, tok, cfg, gen, t=t, pad_weight=1.0, weighting=weighting)[0].detach()
        )

    everything = torch.ones(4)  # t = 1: every position masked, 1/t = 1: only the rescaling differs
    canvas = float((batch.is_reply | batch.is_pad).sum()) / float(batch.is_reply.sum())
    assert loss(everything, "uniform") * canvas == pytest.approx(loss(everything, "elbo"), rel=1e-4)
    # t = 0.3 everywhere: the ELBO weighs each masked token 1/0.3; uniform scales the masked ~30% of the
    # canvas up to the reply's length, so the two differ by about the canvas ratio again.
    third = torch.full((4,), 0.3)
    assert loss(third, "elbo") / loss(third, "uniform") == pytest.approx(canvas, rel=0.35)
    with pytest.raises(ValueError, match="loss_weighting"):
        TrainConfig(**TINY | {"loss_weighting": "1/t"})


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
    last = load_checkpoint(export(tmp_path / "run", tmp_path / "last", weights="last")).model.state_dict()
    for name, value in state["model"].items():
        torch.testing.assert_close(last[name].float(), value.to(torch.bfloat16).float(), msg=name)
    with pytest.raises(ValueError, match="best"):
        export(tmp_path / "run", tmp_path / "bad", weights="newest")


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


# ---- tool-use data (training/tool_data.py) ------------------------------------------------------

CALL_KINDS = ("builtin_call", "client_call")


def _kind(ex) -> str:
    return ex.group.split(":")[1]


def _call(message: dict) -> tuple[str, dict]:
    fn = message["tool_calls"][0]["function"]
    return fn["name"], fn["arguments"]


@pytest.fixture(scope="module")
def tool_data():
    from training.tool_data import tool_examples

    return tool_examples(0)


def test_tool_examples_are_deterministic_per_seed():
    from training.tool_data import COUNTS, HELD_OUT_DIVISOR, tool_examples

    a, b, c = (tool_examples(seed, scale=0.04) for seed in (3, 3, 4))
    assert a == b and a != c
    assert len(a[0]) == sum(round(0.04 * n) for n in COUNTS.values())
    assert len(a[1]) == sum(round(0.04 * n / HELD_OUT_DIVISOR) for n in COUNTS.values())


def test_more_training_rows_leave_the_held_out_rows_as_they_were():
    """TrainConfig.data_scale draws more training rows; the held-out rows a run is scored on stay."""
    from training.data import assistant_examples
    from training.tool_data import tool_examples

    small, large = tool_examples(3, scale=0.04), tool_examples(3, scale=0.08, held_scale=0.04)
    assert large[1] == small[1] and len(large[0]) > len(small[0])
    (train_1, held_1), (train_2, held_2) = assistant_examples(5), assistant_examples(5, scale=1.5)
    assert held_2 == held_1
    assert train_2[: len(train_1)] == train_1 and len(train_2) > len(train_1)


def test_a_data_scale_below_one_is_refused():
    """Fewer rows would change the held-out ones, so the scale only adds."""
    with pytest.raises(ValueError, match="data_scale"):
        TrainConfig(data_scale=0.5)


def test_tool_examples_render_with_the_dlm_voice_template_and_fit_the_context(tool_data):
    from training.examples import TOOLS
    from training.tool_data import CONTEXT_TOKENS, budget_tokenizer

    tok = budget_tokenizer()  # the bundled vocabulary, dlm_voice template
    train, held = tool_data
    for ex in held + train[::7]:
        assert ex.source == TOOLS and ex.tools
        text = tok.chat_text(ex.chat(), ex.tool_list())
        assert text.startswith("<|system|>") and text.endswith("<|assistant|>"), text[-200:]
        assert all(f"\n{t['function']['name']}(" in text for t in ex.tools)
        n = len(tok.chat_prompt(ex.chat(), ex.tool_list())) + len(tok.encode(ex.reply)) + 1
        assert n <= CONTEXT_TOKENS, (n, text)


def test_tool_calls_parse_back_to_an_offered_tool_with_valid_arguments(tool_data):
    from dlm_core.tool_calls import ToolCall, call_text, parse_tool_calls

    kinds = {"integer": int, "number": (int, float), "string": str, "boolean": bool}
    for ex in tool_data[0] + tool_data[1]:
        offered = {t["function"]["name"]: t["function"]["parameters"] for t in ex.tools}
        calls = [_call(m) for m in ex.chat() if m.get("tool_calls")]
        events = parse_tool_calls(ex.reply)
        if _kind(ex) in CALL_KINDS:
            assert len(events) == 1 and isinstance(events[0], ToolCall), ex.reply
            calls.append((events[0].name, json.loads(events[0].arguments)))
            assert ex.reply == call_text({"name": calls[-1][0], "arguments": calls[-1][1]})
        else:
            assert all(isinstance(e, str) for e in events) and ex.reply.strip(), ex.reply
        for name, args in calls:
            schema = offered[name]
            assert set(schema["required"]) <= set(args) <= set(schema["properties"]), (name, args)
            for key, value in args.items():
                spec = schema["properties"][key]
                assert isinstance(value, kinds[spec["type"]]), (name, key, value)
                assert spec["type"] == "boolean" or not isinstance(value, bool), (name, key, value)
                assert value in spec.get("enum", [value]), (name, key, value)


def test_held_out_tool_examples_use_unseen_functions_and_wordings(tool_data):
    from training.tool_data import BUILTIN_NAMES

    def offered(examples):
        return {t["function"]["name"] for ex in examples for t in ex.tools} - set(BUILTIN_NAMES)

    def builtin_requests(examples):
        return {
            ex.chat()[-1]["content"].lower().rstrip(".?!") for ex in examples if _kind(ex) == "builtin_call"
        }

    train, held = tool_data
    assert offered(held) and not offered(held) & offered(train)
    assert not builtin_requests(held) & builtin_requests(train)
    counts = {k: sum(_kind(ex) == k for ex in held) for k in {_kind(ex) for ex in train}}
    assert min(counts.values()) > 0, counts


def test_simulated_builtin_results_match_the_real_tools(tool_data):
    """Each follow-up's tool result is what assistant.tools would answer (exactly where the state it
    needs can be rebuilt: arithmetic, units, the clock, a new timer, errors; else in shape)."""
    from datetime import datetime, timedelta

    from assistant.tools.builtin import BUILTIN_TOOLS, Toolbox, check_arguments
    from assistant.tools.timers import Timers

    schemas = {t["name"]: t["parameters"] for t in BUILTIN_TOOLS}
    seen = set()
    for ex in [ex for ex in tool_data[0] + tool_data[1] if _kind(ex) == "builtin_result"]:
        messages = ex.chat()
        name, args = _call(messages[-2])
        check_arguments(name, schemas[name], args)
        result = json.loads(messages[-1]["content"])
        seen.add((name, "error" in result))
        if "error" in result or name in ("calculate", "convert_units"):  # a new conversation's toolbox
            assert json.loads(Toolbox().run(name, json.dumps(args))) == result, (name, args)
        elif name == "get_time":
            now = datetime.fromisoformat(result["iso"])
            real = json.loads(Toolbox(now=lambda now=now: now).run(name, "{}"))
            assert real | {"timezone": result["timezone"]} == result
        elif name == "set_timer":
            now = datetime.fromisoformat(result["fires_at"]) - timedelta(seconds=result["seconds"])
            box = Toolbox(Timers(wall=lambda now=now: now), now=lambda now=now: now)
            real = json.loads(box.run(name, json.dumps(args)))
            assert real | {"id": result["id"]} == result, (args, real, result)
        elif name == "list_timers":
            assert set(result) == {"timers", "text"} and result["text"].startswith("You have")
            rows = result["timers"]
            assert all(set(r) == {"id", "label", "seconds_left", "fires_at"} for r in rows)
        else:
            assert set(result) == {"cancelled", "text"} and result["text"].startswith("Cancelled ")
    errors = {"calculate", "convert_units", "set_timer", "cancel_timer"}
    assert seen == {(n, False) for n in schemas} | {(n, True) for n in errors}, seen


def test_tool_examples_tokenize_with_their_tools(tool_data, tmp_path):
    from training.examples import REPEATS, SOURCES, TOOLS

    train, _ = tool_data
    sample = train[::200]
    tok_dir = bpe.save_tokenizer(bpe.train_bpe((t for ex in sample for t in ex.texts()), 600), tmp_path)
    tok = DlmTokenizer.from_dir(tok_dir)
    cfg = TrainConfig(**TINY | {"max_prompt": 1024, "reply_len": 160})
    split = tokenize(sample, tok, cfg)
    assert len(split.prompts) == len(sample) and set(split.sources) == {TOOLS} and TOOLS in SOURCES
    assert REPEATS[TOOLS] >= 1
    for ex, prompt in zip(sample, split.prompts):
        assert prompt == tok.chat_prompt(ex.chat(), ex.tool_list())
    assert any("<tool_call>" in t for ex in sample for t in ex.texts())
    batch = make_batch(split.prompts[:4], split.replies[:4], cfg.reply_len, tok)
    assert batch.tokens.shape[1] == batch.reply_start + cfg.reply_len


# ---- data v2: the known built-ins, facts, intents and the evaluation set ------------------------


def test_the_known_tools_template_leaves_out_only_the_builtins():
    from dlm_core.tool_calls import DLM_VOICE_TEMPLATE
    from training.tool_data import BUILTIN_TOOLS

    known, plain = (
        DlmTokenizer(None, None, bpe.KNOWN_TOOLS_CHAT_TEMPLATE),
        DlmTokenizer(None, None, DLM_VOICE_TEMPLATE),
    )
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Timer for 5 minutes"}]
    assert known.handles_tools  # so the server offers the built-ins, which the template then hides
    assert known.chat_text(chat, BUILTIN_TOOLS) == known.chat_text(chat) == plain.chat_text(chat)
    own_timer = {  # a client's function of a built-in's name but another job is listed as usual
        "type": "function",
        "function": {"name": "set_timer", "description": "Oven timer.", "parameters": {"properties": {}}},
    }
    order = {"type": "function", "function": {"name": "track_order", "description": "Track an order."}}
    text = known.chat_text(chat, [order, own_timer, *BUILTIN_TOOLS])
    assert text == plain.chat_text(chat, [order, own_timer])
    assert "track_order() - Track an order." in text and "set_timer() - Oven timer." in text
    assert "get_time" not in text and "calculate" not in text


def test_a_trained_tokenizer_writes_the_known_tools_template(tmp_path):
    from training.tokenized import build_tokenizer

    cfg = TrainConfig(**TINY | {"out": str(tmp_path), "vocab_size": 300})
    examples = [Example((("user", "Hi there"),), "Hello! How can I help?", "intents", "g")] * 20
    tok = DlmTokenizer.from_dir(build_tokenizer(cfg, examples))
    assert tok.chat_template == bpe.KNOWN_TOOLS_CHAT_TEMPLATE


def test_a_trained_tokenizer_writes_one_token_per_digit(tmp_path):
    """Numbers are copied digit by digit: however often "1627" occurs, it never becomes one token."""
    texts = ["What's 1627 divided by 54? About 30.13.", "Order 583306 arrives at 08:15."] * 50
    tok = DlmTokenizer.from_dir(bpe.save_tokenizer(bpe.train_bpe(texts, 400), tmp_path))
    ids = tok.encode("Order 1627 at 08:15")
    pieces = [tok.decode([i]) for i in ids]
    assert [p for p in pieces if any(c.isdigit() for c in p)] == list("16270815"), pieces
    assert tok.decode(ids) == "Order 1627 at 08:15"


def test_training_functions_are_also_offered_under_coined_names(tool_data):
    """Half the time a training function has a name made up for the example, never a held-out one, so
    the model learns to copy the name it is offered; the call uses that name."""
    from training.tool_catalog import HELD_OUT, TRAIN
    from training.tool_clients import COINED_SHARE, camel

    known = {m for t in TRAIN for n in t.names for m in (n, camel(n))}
    held = {m for t in HELD_OUT for n in t.names for m in (n, camel(n))}
    train, _ = tool_data
    calls = [ex for ex in train if _kind(ex) == "client_call"]
    names = [json.loads(ex.reply.split("<tool_call>")[1].split("</tool_call>")[0])["name"] for ex in calls]
    coined = [n for n in names if n not in known]
    assert abs(len(coined) / len(names) - COINED_SHARE) < 0.05, len(coined) / len(names)
    assert len(set(coined)) > 300 and not set(coined) & held
    for ex, name in zip(calls, names):
        assert name in {t["function"]["name"] for t in ex.tools}


def test_held_out_facts_are_only_taught_and_held_out_wordings_never_trained():
    from training.facts import HELD_FACT, HELD_WORDING, RELATIONS, TRAIN, fact_exchanges

    train = fact_exchanges(random.Random(0), TRAIN)
    held = fact_exchanges(random.Random(0), HELD_FACT)
    relations = {r.name: r for r in RELATIONS}
    assert held and {q.relation for q in held} == {r.name for r in RELATIONS if r.teach}
    for q in held:  # its subject is trained only in the teach form, whose statement says the answer
        rel, subject = relations[q.relation], q.group.split(":", 2)[2]
        teach = {w.format(x=subject).lower() for w in rel.teach}
        taught = [t for t in train if t.group == q.group]
        assert taught and all(t.user.lower().rstrip("?") in teach and q.answer in t.reply for t in taught)
    asked = {q.user.lower().rstrip("?.") for q in train}
    worded = fact_exchanges(random.Random(0), HELD_WORDING)
    assert len(worded) > 100 and not {q.user.lower().rstrip("?.") for q in worded} & asked


def test_intents_answer_deterministically_and_hold_out_wordings():
    from training.intents import INTENTS, intent_exchanges

    rows = intent_exchanges(random.Random(1), per_intent=40)
    replies = {}
    for q in rows:
        assert replies.setdefault(q.user, q.reply) == q.reply, q  # one reply per request
        assert not q.expect or any(w.lower() in q.reply.lower() for w in q.expect), q  # its own check
    held = intent_exchanges(random.Random(1), held=True, per_intent=10)
    assert {q.intent for q in held} == {i.name for i in INTENTS}
    assert not {q.user.lower() for q in held} & {q.user.lower() for q in rows}


def test_the_evaluation_set_is_large_and_its_checks_can_fail():
    from training.eval_set import eval_items
    from training.tool_words import Ask

    items = eval_items()
    assert len(items) >= 100 and {i.split for i in items} == {"wording", "fact", "issue"}
    eiffel = next(i for i in items if i.user == "Where is the Eiffel Tower?")
    assert eiffel.judge("It's in Paris, France.")[0]
    assert not eiffel.judge("It's in Rome.")[0]
    assert not eiffel.judge('<tool_call>{"name": "get_time", "arguments": {}}</tool_call>')[0]
    nine = next(i for i in items if i.user == "What is nine divided by three?")
    call = '<tool_call>{"name": "calculate", "arguments": {"expression": "%s"}}</tool_call>'
    assert nine.judge(call % "9/3", "Nine divided by three is three.")[0]  # same value, words count
    assert not nine.judge(call % "9*3", "It's 27.")[0]
    assert not nine.judge(call % "9/3", "It's 4.")[0]
    assert not nine.judge("It's 3.")[0]  # the tool does the sums, not the model's memory
    plants = next(i for i in items if "water the plants" in i.user)
    timer = (
        '<tool_call>{"name": "set_timer", "arguments": {"at": "%s", "label": "water the plants"}}</tool_call>'
    )
    assert plants.judge(timer % "06:00", "Reminder set for 6:00 AM: water the plants.")[0]
    assert not plants.judge(timer % "07:00", "Reminder set for 7:00 AM: water the plants.")[0]
    live = next(i for i in items if i.check.kind == "declines")
    assert live.judge("Sorry, I can't check that.")[0] and not live.judge("It's sunny.")[0]
    assert isinstance(nine.check.asks[0], Ask)
    from training.eval_set import contains

    assert contains("Congratulations!", ["congrat"]) and contains("Slow deep breaths.", ["breath"])
    assert not contains("That is his.", ["hi"]) and not contains("It's 30.", ["3"])


def test_the_usefulness_harness_scores_what_it_is_given():
    from dlm_core.tool_calls import ToolCall
    from training import usefulness
    from training.eval_set import eval_items

    items = [i for i in eval_items() if i.split == "issue"]
    right = {  # what a useful model would say to the six requests
        "Can you help me plan my morning?": "Start with breakfast, then your first task.",
        "How long should I boil an egg?": "About 7 minutes.",
        "Remind me to water the plants at six.": '<tool_call>{"name": "set_timer", "arguments": '
        '{"at": "18:00", "label": "water the plants"}}</tool_call>',
        "What is nine divided by three?": '<tool_call>{"name": "calculate", "arguments": '
        '{"expression": "9 / 3"}}</tool_call>',
        "Where is the Eiffel Tower?": "It's in Paris.",
        "I can't sleep.": "Try slow deep breaths.",
    }

    class Canned(usefulness.Speaker):
        def __init__(self, answers):
            super().__init__(None, None, "balanced")
            self.answers = answers

        def reply(self, messages, tools=usefulness.BUILTIN_TOOLS):
            if messages[-1]["role"] == "tool":  # after the result: say it
                return json.loads(messages[-1]["content"])["text"]
            return self.answers.get(messages[-1]["content"], "Hello!")

    good = [usefulness.run_item(Canned(right), item) for item in items]
    bad = [usefulness.run_item(Canned({}), item) for item in items]
    assert usefulness.score(good, items)["useful"] == 1.0 and usefulness.score(bad, items)["useful"] == 0.0
    call = ToolCall("track_order", '{"order_id": "A1"}')

    def fn(name, param):
        schema = {"type": "object", "properties": {param: {"type": "string"}}, "required": [param]}
        return {"type": "function", "function": {"name": name, "description": "", "parameters": schema}}

    offered = [fn("track_order", "order_id"), fn("play_song", "query")]
    cases = {
        "unseen": [([{"role": "user", "content": "Track A1"}], offered, call)],
        "no_call": [([{"role": "user", "content": "Hi"}], offered, None)],
    }
    canned = Canned(
        {"Track A1": '<tool_call>{"name": "track_order", "arguments": {"order_id": "A1"}}</tool_call>'}
    )
    assert usefulness.call_accuracy(canned, cases) == {"unseen": [1.0, 1, 1.0], "no_call": [1.0, 1, 1.0]}
    assert usefulness.call_accuracy(Canned({"Hi": canned.answers["Track A1"]}), cases) == {
        "unseen": [0.0, 1, 0.0],
        "no_call": [0.0, 1, 0.0],
    }
    # A name of its own with the arguments of the one function that takes them: right as the server runs
    # it (dlm_core.tool_calls.offered_call), not named right by the model.
    misnamed = Canned(
        {"Track A1": '<tool_call>{"name": "order", "arguments": {"order_id": "A1"}}</tool_call>'}
    )
    assert usefulness.call_accuracy(misnamed, cases)["unseen"] == [1.0, 1, 0.0]
