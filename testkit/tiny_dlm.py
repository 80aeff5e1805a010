"""Tiny real parts for diffusion-LM tests: a byte-level BPE tokenizer and small transformers.

`tiny_tokenizer()` trains a byte-level BPE on a few sentences and writes it, with a ChatML chat
template and special tokens, in the Hugging Face layout the real checkpoints use.
`trained_model(attention, shift)` trains a 2-layer model for a few seconds to memorise three
prompt -> reply pairs with a masked-diffusion loss (or a next-token loss for the causal AR twin),
so tests can assert that real text comes out. Both are cached per process.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from dlm_core.model import ModelConfig, Transformer
from dlm_core.tokenizer import DlmTokenizer

MASK, EOT, EOS, IM_START = "<|mask|>", "<|im_end|>", "<|endoftext|>", "<|im_start|>"
SPECIALS = [EOS, IM_START, EOT, MASK]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
PAIRS = [  # (user message, memorised reply)
    ("hello", "Hi there! How can I help you today?"),
    ("what is the capital of france", "The capital of France is Paris, a city on the Seine."),
    ("tell me a joke", "Why did the robot cross the road? To charge its battery."),
]
GEN_LEN = 48  # reply canvas the models are trained for (reply, end-of-turn, EOS padding)
TINY_BLOCK = 16  # block size of the block-causal tiny models
VOCAB_SIZE = 360  # BPE vocabulary incl. the 256 byte symbols and the special tokens


def _tmpdir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, True)
    return path


@functools.cache
def tiny_tokenizer_dir() -> Path:
    """A folder with tokenizer.json + tokenizer_config.json (ChatML, <|mask|>, <|im_end|>)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [f"user\n{q}\nassistant\n{a}" for q, a in PAIRS] * 4 + [
        "the quick brown fox jumps over a lazy dog"
    ]
    tok.train_from_iterator(corpus, trainer)
    out = _tmpdir("dlm_tok_")
    tok.save(str(out / "tokenizer.json"))
    config = {
        "eos_token": EOS,
        "pad_token": EOS,
        "mask_token": MASK,
        "eot_token": EOT,
        "chat_template": CHAT_TEMPLATE,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config))
    return out


def tiny_tokenizer() -> DlmTokenizer:
    return DlmTokenizer.from_dir(tiny_tokenizer_dir())


def tiny_config(vocab_size: int, attention: str = "bidirectional", shift: bool = False, **kw) -> ModelConfig:
    base = {
        "vocab_size": vocab_size,
        "dim": 64,
        "n_layers": 2,
        "n_heads": 4,
        "n_kv_heads": 2,
        "mlp_dim": 192,
        "max_seq_len": 256,
        "attention": attention,
        "block_size": TINY_BLOCK,
        "logits_shift": shift,
    }
    return ModelConfig(**{**base, **kw})


def random_model(attention: str = "bidirectional", shift: bool = False, seed: int = 0, **kw) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(tiny_config(tiny_tokenizer().vocab_size, attention, shift, **kw)).eval()


def prompt_ids(tokenizer: DlmTokenizer, question: str) -> list[int]:
    return tokenizer.chat_prompt([{"role": "user", "content": question}])


@dataclass
class Loaded:
    """Stands in for checkpoints.LoadedModel where a test builds its model in memory."""

    model: Transformer
    tokenizer: DlmTokenizer
    family: str = "dlm_voice"
    path: Path | None = None


def _examples(tokenizer: DlmTokenizer, prompted) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, reply text) -> (prompt ids, reply ids + end of turn, padded to GEN_LEN)."""
    sp = tokenizer.special
    out = []
    for prompt, a in prompted:
        reply = tokenizer.encode(a) + [sp.end_of_turn]
        assert len(reply) <= GEN_LEN, (a, len(reply))
        out.append((prompt, reply + [sp.eos] * (GEN_LEN - len(reply))))
    return out


def _batch(examples, rows: int):
    """Right-padded [rows, L] tokens, key_valid and reply-region masks, cycling the examples."""
    seqs = [examples[i % len(examples)] for i in range(rows)]
    length = max(len(p) + len(r) for p, r in seqs)
    tokens = torch.zeros(rows, length, dtype=torch.long)
    valid = torch.zeros(rows, length, dtype=torch.bool)
    reply = torch.zeros(rows, length, dtype=torch.bool)
    for i, (p, r) in enumerate(seqs):
        tokens[i, : len(p) + len(r)] = torch.tensor(p + r)
        valid[i, : len(p) + len(r)] = True
        reply[i, len(p) : len(p) + len(r)] = True
    return tokens, valid, reply


def _diffusion_targets(
    tokens, reply, attention: str, block: int, mask_id: int, gen: torch.Generator, pad_id: int | None = None
):
    """Mask a random share t of the reply (one block per row for block-causal models; with `pad_id`,
    a block holding some of the reply's words, not padding alone)."""
    rows, length = tokens.shape
    region = reply.clone()
    if attention == "block_causal":
        # Earlier blocks stay clean, as they are when the sampler decodes this block.
        pos = torch.arange(length)
        words = reply if pad_id is None else reply & (tokens != pad_id)
        for i in range(rows):
            blocks = (pos[words[i]] // block).unique()
            b = blocks[torch.randint(len(blocks), (1,), generator=gen)]
            region[i] &= pos // block == b
    t = torch.rand(rows, 1, generator=gen).clamp_min(0.05)
    masked = region & (torch.rand(rows, length, generator=gen) < t)
    noisy = torch.where(masked, torch.full_like(tokens, mask_id), tokens)
    return noisy, masked, t


def _diffusion_loss(model, tokens, valid, reply, attention: str, shift: bool, mask_id: int, gen, pad_id):
    """One step's masked-diffusion loss: cross-entropy on the masked reply tokens, weighted 1/t."""
    noisy, masked, t = _diffusion_targets(
        tokens, reply, attention, model.cfg.block_size, mask_id, gen, pad_id
    )
    logits = model(noisy, key_valid=valid)
    if shift:  # output i predicts token i+1
        logits, masked, target, weight = logits[:, :-1], masked[:, 1:], tokens[:, 1:], 1 / t
    else:
        target, weight = tokens, 1 / t
    per_tok = F.cross_entropy(logits[masked], target[masked], reduction="none")
    return (per_tok * weight.expand_as(masked)[masked]).sum() / reply.sum()


def train_tiny(
    attention: str = "block_causal",
    shift: bool = False,
    steps: int = 300,
    seed: int = 0,
    autoregressive: bool = False,
    pairs=None,
    tokenizer: DlmTokenizer | None = None,
    prompted: list[tuple[list[int], str]] | None = None,
    word_blocks: bool = False,
    init: Transformer | None = None,
    **config,
) -> tuple[Transformer, DlmTokenizer, float]:
    """Train a tiny model to memorise `pairs` (default PAIRS), or `prompted` (prompt ids, reply) rows
    made with `tokenizer`'s own chat template. `config`: ModelConfig overrides (e.g. max_seq_len).
    word_blocks: train only blocks that hold some of a reply's words (padding-only blocks are easy, and
    long replies then get their later blocks trained as often as their first). init: go on training
    this model instead of a new one.
    Returns (model in eval mode, tokenizer, seconds)."""
    torch.manual_seed(seed)
    tokenizer = tokenizer or tiny_tokenizer()
    sp = tokenizer.special
    if autoregressive:
        attention, shift = "causal", True
    model = (
        init
        if init is not None
        else Transformer(tiny_config(tokenizer.vocab_size, attention, shift, **config))
    )
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    if prompted is None:
        prompted = [(prompt_ids(tokenizer, q), a) for q, a in (PAIRS if pairs is None else pairs)]
    examples = _examples(tokenizer, prompted)
    tokens, valid, reply = _batch(examples, rows=max(12, len(examples)))  # every example in every step
    started = time.perf_counter()
    model.train()
    for step in range(steps):
        if autoregressive:
            logits = model(tokens, key_valid=valid)[:, :-1]
            target, where = tokens[:, 1:], reply[:, 1:]
            loss = F.cross_entropy(logits[where], target[where])
        else:
            pad = sp.eos if word_blocks else None
            loss = _diffusion_loss(model, tokens, valid, reply, attention, shift, sp.mask, gen, pad)
        for group in opt.param_groups:  # short warmup then cosine decay
            group["lr"] = (
                3e-3 * min(1.0, (step + 1) / 20) * 0.5 * (1 + torch.cos(torch.tensor(step / steps * 3.1416)))
            )
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model, tokenizer, time.perf_counter() - started


def trained_model(attention: str = "block_causal", shift: bool = False, autoregressive: bool = False):
    """(model, tokenizer), trained once per process for each distinct setting."""
    return _trained(attention, shift, autoregressive)


@functools.cache
def _trained(attention: str, shift: bool, autoregressive: bool):
    """Trained once per machine: the weights are cached on disk under a key of everything they come from
    (this file, the tokenizer, the setting), so the edit-test loop trains only after a change."""
    from testkit.speech import cache_dir, write_atomically

    torch.set_num_threads(1)
    tokenizer = tiny_tokenizer()
    source = Path(__file__).read_bytes() + (tiny_tokenizer_dir() / "tokenizer.json").read_bytes()
    key = hashlib.sha1(source + repr((attention, shift, autoregressive)).encode()).hexdigest()[:16]
    path = cache_dir() / f"tiny_trained_{key}.pt"
    if path.is_file():
        if autoregressive:
            attention, shift = "causal", True
        model = Transformer(tiny_config(tokenizer.vocab_size, attention, shift))
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval(), tokenizer
    model, tokenizer, _ = train_tiny(attention, shift, autoregressive=autoregressive)
    write_atomically(path, lambda tmp: torch.save(model.state_dict(), tmp))
    return model, tokenizer


@functools.cache
def trained_checkpoint_dir(attention: str = "block_causal") -> Path:
    """The trained tiny model saved in our "dlm_voice" layout, for `DlmEngine.load(path)` / `--model`."""
    from dlm_core.checkpoints import save_checkpoint

    model, _ = trained_model(attention)
    out = _tmpdir("dlm_ckpt_") / "tiny"
    save_checkpoint(
        model, tiny_tokenizer_dir(), out, card="Tiny test model: memorises testkit.tiny_dlm.PAIRS."
    )
    return out
