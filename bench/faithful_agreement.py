"""Our speed options measured against faithful decoding, per family, on the same prompts.

    python -m bench.faithful_agreement [--json] [--prompts N] [--max-new-tokens 64]

For each family (LLaDA, Dream, SDAR, Fast-dLLM v2, BD3LM) it builds the tiny seeded checkpoint the
golden tests use (testkit/hf_families.py, `decisive` so threshold rules have something to do),
decodes the same prompts with the family's faithful decoder and with each of our options, and
reports per option: `exact` (share of replies identical to faithful up to the first end-of-turn),
`agreement` (mean normalised edit similarity of the reply ids, 1 - Levenshtein / longer length),
`tokens_per_nfe` (reply tokens up to end-of-turn per forward pass) and `ms_per_reply` on this CPU.

The weights are random: the figures show how far each option moves the decoding away from the
authors' on the same logits, not what it does to answer quality on a trained model.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bench.dlm_speed import edit_similarity
from dlm_core.checkpoints import load_checkpoint
from dlm_core.sampler import FAST_DLLM, FAST_DLLM_DREAM, SamplerConfig, generate
from testkit.hf_families import make_family_checkpoint

DECISIVE = {"llada": 8.0, "dream": 8.0, "sdar": 12.0, "fast_dllm_v2": 14.0, "bd3lm": 14.0}
# option name -> how it changes the config; "faithful" is the family's default itself
FAST = {"strategy": "fast", "decoding": None}
OPTIONS = {
    "faithful": {},
    "fast (balanced preset)": {**FAST},
    "fast, no repetition penalty": {**FAST, "repetition_penalty": 1.0},
    "fast, no early stop": {**FAST, "early_stop": False},
    "fast, no step cap": {**FAST, "max_steps_per_block": 10_000},
    "fast, threshold only": {
        **FAST,
        "repetition_penalty": 1.0,
        "early_stop": False,
        "max_steps_per_block": 10_000,
    },
}
EXTRA = {  # the authors' own faster variants, where they publish one
    "llada": {
        "Fast-dLLM (dual cache, 0.9)": FAST_DLLM,
        "Fast-dLLM (prefix cache)": {**FAST_DLLM, "cache": "prefix"},
    },
    "dream": {"Fast-dLLM (dual cache, 0.9)": FAST_DLLM_DREAM},
    "fast_dllm_v2": {"its block cache": {"use_block_cache": True}},
}


def prompts(n: int) -> list[list[int]]:
    lengths = [11, 40, 64, 77, 23, 50, 96, 33]
    out = []
    for i in range(n):
        gen = torch.Generator().manual_seed(2000 + i)
        out.append(torch.randint(0, 250, (lengths[i % len(lengths)],), generator=gen).tolist())
    return out


def decode(lm, prompt: list[int], cfg: SamplerConfig) -> tuple[list[int], int, float]:
    """(reply ids up to end-of-turn, forward passes, seconds)."""
    start = time.perf_counter()
    ids, nfe = [], 0
    for chunk in generate(lm.model, lm.tokenizer, prompt, cfg):
        ids += chunk.token_ids
        nfe = chunk.nfe
    return ids, nfe, time.perf_counter() - start


def measure_family(family: str, root: Path, n_prompts: int, max_new: int) -> dict:
    folder, _, _ = make_family_checkpoint(root, family, decisive=DECISIVE[family])
    lm = load_checkpoint(folder)
    base = SamplerConfig.for_family(family, max_new_tokens=max_new)
    runs = {}
    for name, change in {**OPTIONS, **EXTRA.get(family, {})}.items():
        cfg = base.replace(**change)
        runs[name] = [decode(lm, p, cfg) for p in prompts(n_prompts)]
    faithful = runs["faithful"]
    out = {}
    for name, results in runs.items():
        out[name] = {
            "exact": sum(r[0] == f[0] for r, f in zip(results, faithful)) / len(results),
            "agreement": round(
                statistics.mean(edit_similarity(r[0], f[0]) for r, f in zip(results, faithful)), 3
            ),
            "tokens_per_nfe": round(sum(len(r[0]) for r in results) / sum(r[1] for r in results), 2),
            "ms_per_reply": round(1000 * statistics.mean(r[2] for r in results), 1),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print one JSON line at the end")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)
    table = {}
    with tempfile.TemporaryDirectory() as tmp:
        for family in DECISIVE:
            table[family] = measure_family(family, Path(tmp), args.prompts, args.max_new_tokens)
            print(f"\n{family}")
            print(f"  {'option':32s} {'exact':>6s} {'agree':>6s} {'tok/nfe':>8s} {'ms':>7s}")
            for name, row in table[family].items():
                print(
                    f"  {name:32s} {row['exact']:6.2f} {row['agreement']:6.3f} "
                    f"{row['tokens_per_nfe']:8.2f} {row['ms_per_reply']:7.1f}"
                )
    if args.json:
        print(json.dumps(table))


if __name__ == "__main__":
    main()
