"""Train the whole-utterance end-of-turn model of turn_taking.utterance_end (a few CPU minutes, one thread).

    python -m training.utterance_end [--out DIR] [--steps 2000] [--seed 0]   # needs the `train` extra

The data: every turn of our training conversations (training.sentence_ends.weighted_texts, data v2's
turns, with their weights) and the casual chat corpus's turns (chitchat-dataset's training split, weight
1: people's own phrasing, with the clauses, lists and fillers that data v2's written requests lack), cut
into sentences at . ! ? and lower-cased without punctuation (turn_taking.sentence_ends.words). A row is
a turn's sentences read one after the other, up to MAX_ROW_WORDS words; each word is labelled 1 where its
sentence ends and 0 elsewhere, so one row trains every cut of its sentences at once (causal attention:
the label at a word sees only the words before it). In FILLER_SHARE of the sentences a filler ("um",
"uh", "er") is put before a random word, labelled unfinished (the corpora rarely write them; Whisper
writes them now and then).

Two models from one recipe, as the table of turn_taking.sentence_ends is kept twice (counted whole,
and with the evaluation sentences taken out again):
  shipped      every sentence (turn_taking/tables/utterance_end);
  evaluation   `--leave-out-evaluation`: every sentence whose words are those of an end-of-turn
               evaluation sentence (training.turn_sentences and training.turn_pauses, train and held-out)
               dropped from its turn, so that bench.turn_eval measures phrasings the model never saw
               whole (EVALUATION_MODEL, which bench.turn_eval reads).
Leaving them out of the shipped model teaches it that a frequent short turn never ends a sentence: 28 of
the set's sentences occur whole in the data ("thanks" 288 times, "okay" 268), and with them dropped
"Thanks!" scored 0.05 and "Okay." 0.01. config.json lists how often each occurs.

Reproducible from the seed (the row order, the fillers and the initial weights); the weights are
written in float16 with the tokenizer they were trained with (the data-v1 one of
dlm_core/weights/judge_twin) and a config.json that records the recipe and the held-out figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dlm_core.checkpoints import JUDGE_TWIN
from dlm_core.model import ModelConfig
from dlm_core.tokenizer import DlmTokenizer
from training import turn_pauses
from training.config import Schedule
from training.sentence_ends import weighted_texts
from training.turn_sentences import SENTENCES
from turn_taking.sentence_ends import SENTENCE_SPLIT, key, words
from turn_taking.utterance_end import (
    BUNDLED,
    CONFIG_FILE,
    FORMAT,
    MAX_TOKENS,
    WEIGHTS_FILE,
    EndModel,
    WordIds,
)

MAX_ROW_WORDS = 40  # a row holds whole sentences up to this many words (a longer sentence is cut)
FILLERS = ("um", "uh", "er")
FILLER_SHARE = 0.05  # sentences that get a filler before one of their words
HELD_OUT_PERCENT = 2  # turns (by a hash of their text) kept out of training to watch the loss and AUC
NO_LABEL = -1.0
EVALUATION_MODEL = Path(__file__).resolve().parent / "weights" / "utterance_end_evaluation"


@dataclass
class Recipe:
    """What the shipped weights were trained with; config.json records it."""

    seed: int = 0
    steps: int = 2000
    batch_rows: int = 64
    lr: float = 2e-3  # AdamW, linear warm-up then cosine decay to a tenth
    warmup: int = 100
    weight_decay: float = 0.05
    chitchat: bool = True  # the casual chat corpus joins data v2's turns
    leave_out_evaluation: bool = False  # drop the evaluation sentences (the model bench.turn_eval reads)
    dim: int = 96  # 0.66M parameters: 0.19 s a step of 64 random rows on one thread (128 x 4 layers: 0.52)
    n_layers: int = 3
    n_heads: int = 4
    mlp_dim: int = 288
    eval_every: int = 500


def evaluation_keys() -> set[str]:
    """Every sentence of the end-of-turn evaluation sets, as sentence_ends.key writes it."""
    texts = [s for s, _ in SENTENCES] + [p.text for p in turn_pauses.TRAIN + turn_pauses.HELD_OUT]
    texts += turn_pauses.FINISHED_SHORT_TRAIN + turn_pauses.FINISHED_SHORT_HELD_OUT
    return {key(t) for t in texts}


def chitchat_texts() -> list[tuple[str, int]]:
    """The casual chat corpus's turns in its training split, weight 1."""
    from training.data import chitchat_examples, is_test

    out = {}
    for ex in chitchat_examples():
        if not is_test(ex.group):
            for text in (*(m[1] for m in ex.messages), ex.reply):
                out[text] = 1
    return list(out.items())


def turn_sentences(text: str, evaluation: set[str], drop: bool) -> tuple[list[list[str]], list[str]]:
    """A turn's sentences as word lists (with drop, those of the evaluation sets left out); and which of
    its sentences are evaluation sentences."""
    out, found = [], []
    for sentence in SENTENCE_SPLIT.split(text):
        ws = words(sentence)
        if ws and " ".join(ws) in evaluation:
            found.append(" ".join(ws))
            if drop:
                continue
        if ws:
            out.append(ws)
    return out, found


def with_filler(ws: list[str], rng: random.Random) -> tuple[list[str], list[float]]:
    """A sentence's words and labels (1 at its last word), with a filler before a random word in
    FILLER_SHARE of them."""
    labels = [0.0] * (len(ws) - 1) + [1.0]
    if rng.random() < FILLER_SHARE:
        at = rng.randrange(len(ws))
        return ws[:at] + [rng.choice(FILLERS)] + ws[at:], labels[:at] + [0.0] + labels[at:]
    return list(ws), labels


def rows_of_turn(sentences: list[list[str]], rng: random.Random) -> list[tuple[list[str], list[float]]]:
    """Whole sentences packed into rows of at most MAX_ROW_WORDS words."""
    rows, ws, labels = [], [], []
    for sentence in sentences:
        s_words, s_labels = with_filler(sentence[:MAX_ROW_WORDS], rng)
        if ws and len(ws) + len(s_words) > MAX_ROW_WORDS:
            rows.append((ws, labels))
            ws, labels = [], []
        ws, labels = ws + s_words, labels + s_labels
    if ws:
        rows.append((ws, labels))
    return rows


@dataclass
class Rows:
    ids: list[list[int]]  # each row's tokens, the start token first
    labels: list[list[float]]  # per token: 1 / 0 at a word's last token, NO_LABEL elsewhere
    weights: list[float]  # the turn's weight


def encode(rows: list[tuple[list[str], list[float], int]], word_ids: WordIds) -> Rows:
    out = Rows([], [], [])
    for ws, labels, weight in rows:
        ids, ends = word_ids.encode(ws, MAX_TOKENS)
        per_token = [NO_LABEL] * len(ids)
        for end, label in zip(ends, labels):
            if end >= 0:
                per_token[end] = label
        out.ids.append(ids)
        out.labels.append(per_token)
        out.weights.append(float(weight))
    return out


def build_rows(recipe: Recipe, word_ids: WordIds) -> tuple[Rows, Rows, dict]:
    """(train, held-out) rows and counts for the card."""
    rng = random.Random(recipe.seed)
    texts = weighted_texts() + (chitchat_texts() if recipe.chitchat else [])
    evaluation = evaluation_keys()
    split: dict[str, list] = {"train": [], "held": []}
    dropped: Counter = Counter()
    for text, weight in texts:
        if weight <= 0:
            continue
        sentences, found = turn_sentences(text, evaluation, recipe.leave_out_evaluation)
        dropped.update(found)
        held = int(hashlib.md5(text.encode()).hexdigest()[:8], 16) % 100 < HELD_OUT_PERCENT
        for ws, labels in rows_of_turn(sentences, rng):
            split["held" if held else "train"].append((ws, labels, weight))
    stats = {
        "turns": len(texts),
        "rows": {k: len(v) for k, v in split.items()},
        "words": {k: sum(len(r[0]) for r in v) for k, v in split.items()},
        "evaluation_sentences_found": dict(sorted(dropped.items())),
        "evaluation_sentences_dropped": sum(dropped.values()) if recipe.leave_out_evaluation else 0,
    }
    return encode(split["train"], word_ids), encode(split["held"], word_ids), stats


def batch(rows: Rows, index: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """tokens [B, S], key_valid [B, S], labels [B, S] (NO_LABEL where none), weights [B]."""
    width = max(len(rows.ids[i]) for i in index)
    tokens = torch.zeros(len(index), width, dtype=torch.long)
    labels = torch.full((len(index), width), NO_LABEL)
    valid = torch.zeros(len(index), width, dtype=torch.bool)
    for r, i in enumerate(index):
        n = len(rows.ids[i])
        tokens[r, :n] = torch.tensor(rows.ids[i])
        labels[r, :n] = torch.tensor(rows.labels[i])
        valid[r, :n] = True
    return tokens, valid, labels, torch.tensor([rows.weights[i] for i in index])


def loss_of(model: EndModel, tokens, valid, labels, weights) -> torch.Tensor:
    logits = model(tokens, key_valid=valid)  # [B, S]
    has = labels != NO_LABEL
    w = weights[:, None].expand_as(labels)[has]
    per = F.binary_cross_entropy_with_logits(logits[has], labels[has], reduction="none")
    return (per * w).sum() / w.sum()


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """The probability that a random positive outranks a random negative (ties count half)."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1  # average 1-based rank of each tie group
    ranks[order] = np.repeat(avg, counts)
    pos = labels == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / max(1, n_pos * n_neg))


@torch.inference_mode()
def held_out_scores(model: EndModel, rows: Rows, batch_rows: int = 256) -> dict:
    model.eval()
    scores, labels, losses = [], [], []
    for start in range(0, len(rows.ids), batch_rows):
        tokens, valid, lab, w = batch(rows, list(range(start, min(start + batch_rows, len(rows.ids)))))
        losses.append(float(loss_of(model, tokens, valid, lab, w)))
        has = lab != NO_LABEL
        scores.append(torch.sigmoid(model(tokens, key_valid=valid))[has].numpy())
        labels.append(lab[has].numpy())
    model.train()
    s, y = np.concatenate(scores), np.concatenate(labels)
    return {"loss": round(float(np.mean(losses)), 4), "roc_auc": round(roc_auc(s, y), 4)}


def learning_rate(step: int, recipe: Recipe) -> float:
    """The LM runs' schedule: linear warmup, then cosine decay to a tenth of the peak."""
    return Schedule(lr=recipe.lr, steps=recipe.steps, warmup=recipe.warmup, min_lr_ratio=0.1).lr_at(step)


def new_model(recipe: Recipe, vocab_size: int) -> EndModel:
    cfg = ModelConfig(
        vocab_size=vocab_size,
        dim=recipe.dim,
        n_layers=recipe.n_layers,
        n_heads=recipe.n_heads,
        mlp_dim=recipe.mlp_dim,
        max_seq_len=MAX_TOKENS,
        attention="causal",
        tie_embeddings=True,
    )
    torch.manual_seed(recipe.seed)
    return EndModel(cfg)


def train(recipe: Recipe, train_rows: Rows, held: Rows, vocab_size: int) -> tuple[EndModel, list]:
    """AdamW for recipe.steps steps; returns the weights of the best held-out loss and the log."""
    model = new_model(recipe, vocab_size)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    order = random.Random(recipe.seed + 1)
    best, best_state, log = math.inf, None, []
    t0 = time.time()
    for step in range(recipe.steps):
        for g in opt.param_groups:
            g["lr"] = learning_rate(step, recipe)
        index = [order.randrange(len(train_rows.ids)) for _ in range(recipe.batch_rows)]
        loss = loss_of(model, *batch(train_rows, index))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step + 1) % recipe.eval_every == 0 or step + 1 == recipe.steps:
            scores = held_out_scores(model, held)
            log.append({"step": step + 1, "train_loss": round(float(loss.detach()), 4), **scores})
            print(f"step {step + 1}: {log[-1]} ({time.time() - t0:.0f} s)", flush=True)
            if scores["loss"] < best:
                best, best_state = scores["loss"], {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return model.eval(), log


def export(model: EndModel, out: Path, recipe: Recipe, stats: dict, log: list) -> None:
    """float16 weights (the head tied to the embedding is not written twice), the tokenizer, the card."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.half().contiguous() for k, v in model.state_dict().items() if k != "body.lm_head.weight"}
    save_file(state, str(out / WEIGHTS_FILE))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(JUDGE_TWIN / name, out / name)
    best = min(log, key=lambda r: r["loss"])
    meta = {
        "format": FORMAT,
        "model": model.body.cfg.to_dict(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "recipe": asdict(recipe),
        "data": stats,
        "held_out": best,
        "made_by": f"python -m training.utterance_end --steps {recipe.steps} --seed {recipe.seed}"
        + (" --leave-out-evaluation" if recipe.leave_out_evaluation else ""),
    }
    (out / CONFIG_FILE).write_text(json.dumps(meta, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(BUNDLED))
    ap.add_argument("--steps", type=int, default=Recipe.steps)
    ap.add_argument("--seed", type=int, default=Recipe.seed)
    ap.add_argument("--no-chitchat", action="store_true", help="data v2's turns only")
    ap.add_argument(
        "--leave-out-evaluation",
        action="store_true",
        help=f"drop the evaluation sentences (the model bench.turn_eval reads; --out {EVALUATION_MODEL})",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    recipe = Recipe(
        seed=args.seed,
        steps=args.steps,
        chitchat=not args.no_chitchat,
        leave_out_evaluation=args.leave_out_evaluation,
    )
    word_ids = WordIds(DlmTokenizer.from_dir(JUDGE_TWIN))
    train_rows, held, stats = build_rows(recipe, word_ids)
    print(f"data: {stats}", flush=True)
    model, log = train(recipe, train_rows, held, word_ids.tokenizer.vocab_size)
    export(model, Path(args.out), recipe, stats, log)
    print(f"-> {args.out}: held-out {min(log, key=lambda r: r['loss'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
