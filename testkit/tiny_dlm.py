"""Tiny real parts for diffusion-LM tests: a byte-level BPE tokenizer and small transformers.

`tiny_tokenizer()` trains a byte-level BPE on a few sentences and writes it, with a ChatML chat
template and special tokens, in the Hugging Face layout the real checkpoints use.
`trained_model(attention, shift)` trains a 2-layer model for a few seconds to memorise three
prompt -> reply pairs with training's own objectives (the masked-diffusion loss, or the next-token loss
for the causal AR twin), so tests can assert that real text comes out. Both are cached per process.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import random
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from dlm_core.model import ModelConfig, Transformer
from dlm_core.tokenizer import DlmTokenizer
from training.batches import make_batch
from training.config import Schedule, TrainConfig
from training.objectives import ar_loss, diffusion_loss, draw_noise
from training.train import ADAM_BETAS, GRAD_CLIP_NORM

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
LR, WARMUP = 3e-3, 20  # a few hundred steps on three rows: a high peak, a short warmup, decay to 0
PAD_WEIGHT, WEIGHTING = TrainConfig.pad_weight, TrainConfig.loss_weighting  # training's defaults
_TRAINING = Path(__file__).resolve().parents[1] / "training"
# What a trained tiny model comes from: a change to any of these trains it anew (`_trained`'s cache key).
RECIPE_FILES = (Path(__file__), *(_TRAINING / f for f in ("objectives.py", "batches.py", "config.py")))


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


def _rows(tokenizer: DlmTokenizer, prompted, rows: int) -> tuple[list[list[int]], list[list[int]]]:
    """(prompt ids, reply text) -> prompts and replies (reply ids + end of turn) as training's batches
    take them, cycled to `rows` rows."""
    prompts, replies = [], []
    for i in range(rows):
        prompt, text = prompted[i % len(prompted)]
        reply = tokenizer.encode(text) + [tokenizer.special.end_of_turn]
        assert len(reply) <= GEN_LEN, (text, len(reply))
        prompts.append(prompt)
        replies.append(reply)
    return prompts, replies


def _loss(model, batch, tokenizer: DlmTokenizer, autoregressive: bool, gen: torch.Generator) -> torch.Tensor:
    """Nats per reply token under training's objective: the AR loss, or the diffusion loss at noise
    levels drawn as training draws them."""
    if autoregressive:
        loss_sum, n = ar_loss(model, batch)
    else:
        t = draw_noise(batch.tokens.shape[0], gen)
        loss_sum, n = diffusion_loss(
            model, batch, tokenizer, t, pad_weight=PAD_WEIGHT, generator=gen, weighting=WEIGHTING
        )
    return loss_sum / n


def train_tiny(
    attention: str = "block_causal",
    shift: bool = False,
    steps: int = 300,
    seed: int = 0,
    autoregressive: bool = False,
    pairs=None,
    tokenizer: DlmTokenizer | None = None,
    prompted: list[tuple[list[int], str]] | None = None,
    init: Transformer | None = None,
    **config,
) -> tuple[Transformer, DlmTokenizer, float]:
    """Train a tiny model to memorise `pairs` (default PAIRS), or `prompted` (prompt ids, reply) rows
    made with `tokenizer`'s own chat template, with training's objectives, batch layout and schedule
    (training.objectives, training.batches.make_batch, training.config.Schedule). `config`: ModelConfig
    overrides (e.g. max_seq_len). init: go on training this model instead of a new one.
    Returns (model in eval mode, tokenizer, seconds)."""
    torch.manual_seed(seed)
    tokenizer = tokenizer or tiny_tokenizer()
    if autoregressive:
        attention, shift = "causal", True
    model = (
        init
        if init is not None
        else Transformer(tiny_config(tokenizer.vocab_size, attention, shift, **config))
    )
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=ADAM_BETAS, weight_decay=0.0)
    schedule = Schedule(lr=LR, steps=steps, warmup=WARMUP, min_lr_ratio=0.0)
    gen, rng = torch.Generator().manual_seed(seed), random.Random(seed)
    if prompted is None:
        prompted = [(prompt_ids(tokenizer, q), a) for q, a in (PAIRS if pairs is None else pairs)]
    prompts, replies = _rows(tokenizer, prompted, rows=max(12, len(prompted)))  # every row, every step
    started = time.perf_counter()
    model.train()
    for step in range(steps):
        align = 0 if autoregressive else rng.randrange(model.cfg.block_size)  # as training.batches does
        batch = make_batch(prompts, replies, GEN_LEN, tokenizer, align)
        loss = _loss(model, batch, tokenizer, autoregressive, gen)
        for group in opt.param_groups:
            group["lr"] = schedule.lr_at(step)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP_NORM)
        opt.step()
    model.eval()
    return model, tokenizer, time.perf_counter() - started


def trained_model(attention: str = "block_causal", shift: bool = False, autoregressive: bool = False):
    """(model, tokenizer), trained once per process for each distinct setting."""
    return _trained(attention, shift, autoregressive)


@functools.cache
def _trained(attention: str, shift: bool, autoregressive: bool):
    """Trained once per machine: the weights are cached on disk under a key of everything they come from
    (RECIPE_FILES, the tokenizer, the setting), so the edit-test loop trains only after a change."""
    from testkit.speech import cache_dir, write_atomically

    torch.set_num_threads(1)
    tokenizer = tiny_tokenizer()
    files = (*RECIPE_FILES, tiny_tokenizer_dir() / "tokenizer.json")
    source = b"".join(p.read_bytes() for p in files)
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
