"""The training data as token ids: the tokenizer, the tokenized train/held-out splits and their cache.

`prepare_data(cfg)` trains (or reuses) the tokenizer and tokenizes the examples of training/data.py
once per run folder; the result is cached in `out/data.pt` as flat int16 tensors, small enough to
travel to a GPU machine beside the repository.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from dlm_core.tokenizer import DlmTokenizer
from training.bpe import KNOWN_TOOLS_CHAT_TEMPLATE, save_tokenizer, train_bpe
from training.config import TrainConfig
from training.data import load_examples

# Bump when what the cache holds changes: an older cache is then rebuilt instead of misread.
# 3: rows carry their source's name (2 carried its oversampling weight). 4: the tool-use source, whose
# prompts list the tools offered.
DATA_CACHE_FORMAT = 4
# The end of tokenizer.json (its last merges) identifies the tokenizer in the cache key; the whole
# file would make every key as large as the tokenizer.
TOKENIZER_KEY_CHARS = 2000
INT16_VOCAB_LIMIT = 2**15  # token ids must fit the cache's int16 tensors


@dataclass
class TokenizedSplit:
    prompts: list[list[int]]
    replies: list[list[int]]  # reply ids followed by <|eot_id|>
    sources: list[str] = field(default_factory=list)  # each row's source (training.examples.SOURCES)
    texts: list[tuple[list[dict], str]] = field(default_factory=list)  # (messages, reply) for samples


def build_tokenizer(cfg: TrainConfig, train_examples) -> Path:
    if cfg.tokenizer_dir:
        return Path(cfg.tokenizer_dir)
    out = Path(cfg.out) / "tokenizer"
    if not (out / "tokenizer.json").is_file():
        texts = (t for ex in train_examples for t in ex.texts())
        save_tokenizer(train_bpe(texts, cfg.vocab_size), out, KNOWN_TOOLS_CHAT_TEMPLATE)
    return out


def tokenize(examples, tok: DlmTokenizer, cfg: TrainConfig) -> TokenizedSplit:
    split = TokenizedSplit([], [], [], [])
    eot = tok.special.end_of_turn
    for ex in examples:
        reply = tok.encode(ex.reply) + [eot]
        if len(reply) > cfg.reply_len:
            continue
        messages, tools = ex.chat(), ex.tool_list()
        prompt = tok.chat_prompt(messages, tools)
        # Drop the oldest turns of a long chat; a tool conversation is kept whole or not at all, since
        # what is left after a cut (a call without its request) would teach nothing sensible.
        while len(prompt) > cfg.max_prompt and len(messages) > 1 and not tools:
            messages = messages[1:]
            prompt = tok.chat_prompt(messages)
        if len(prompt) > cfg.max_prompt:
            continue
        split.prompts.append(prompt)
        split.replies.append(reply)
        split.sources.append(ex.source)
        split.texts.append((messages, ex.reply))
    return split


def prepare_data(cfg: TrainConfig) -> tuple[DlmTokenizer, Path, TokenizedSplit, TokenizedSplit]:
    """Tokenizer and tokenized splits, cached in the run folder."""
    out = Path(cfg.out)
    cache = out / "data.pt"
    train_ex = test_ex = None
    if cfg.tokenizer_dir is None and not (out / "tokenizer" / "tokenizer.json").is_file():
        train_ex, test_ex = load_examples(cfg.seed, cfg.data_scale)
    tok_dir = build_tokenizer(cfg, train_ex)
    tok = DlmTokenizer.from_dir(tok_dir)
    key = {
        "seed": cfg.seed,
        "data_scale": cfg.data_scale,
        "max_prompt": cfg.max_prompt,
        "reply_len": cfg.reply_len,
        "format": DATA_CACHE_FORMAT,
        "tokenizer": (Path(tok_dir) / "tokenizer.json").read_text()[-TOKENIZER_KEY_CHARS:],
    }
    if cache.is_file():
        saved = torch.load(cache, weights_only=False)  # plain dicts, lists and int tensors only
        if saved["key"] == key:
            return tok, tok_dir, _unpack(saved["train"]), _unpack(saved["test"])
    if train_ex is None:
        train_ex, test_ex = load_examples(cfg.seed, cfg.data_scale)
    train, test = tokenize(train_ex, tok, cfg), tokenize(test_ex, tok, cfg)
    train.texts = []  # only held-out texts are read (sample prompts); keeps the cache small
    torch.save(
        {"key": key, "train": _pack(train, tok.vocab_size), "test": _pack(test, tok.vocab_size)}, cache
    )
    return tok, tok_dir, train, test


def _pack(split: TokenizedSplit, vocab_size: int) -> dict:
    """Token rows as one flat int16 tensor plus lengths: a third of the size of pickled lists, so the
    data can travel to a GPU machine beside the repository."""
    assert vocab_size <= INT16_VOCAB_LIMIT, vocab_size

    def flat(rows):
        return torch.tensor([t for r in rows for t in r], dtype=torch.int16), torch.tensor(
            [len(r) for r in rows]
        )

    return asdict(split) | {"prompts": flat(split.prompts), "replies": flat(split.replies)}


def _unpack(saved: dict) -> TokenizedSplit:

    def rows(pair):
        values, lengths = pair[0].tolist(), pair[1].tolist()
        ends = list(itertools.accumulate(lengths))
        return [values[e - n : e] for e, n in zip(ends, lengths)]

    return TokenizedSplit(**saved | {"prompts": rows(saved["prompts"]), "replies": rows(saved["replies"])})
