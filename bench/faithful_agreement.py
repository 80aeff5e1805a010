"""Our speed options measured against faithful decoding, per family, on the same prompts.

    python -m bench.faithful_agreement [--json] [--prompts N] [--max-new-tokens 64]

For each family (LLaDA, Dream, SDAR, Fast-dLLM v2, BD3LM) it builds the tiny seeded checkpoint the
golden tests use (testkit/hf_families.py, `decisive` so threshold rules have something to do),
decodes the same prompts with the family's faithful decoder and with each of our options, and
reports per option: `exact` (share of replies identical to faithful up to the first end-of-turn),
`agreement` (mean normalised edit similarity of the reply ids, 1 - Levenshtein / longer length),
`tokens_per_nfe` (reply tokens up to end-of-turn per forward pass), `ended` (share of replies that
reached an end-of-turn before the canvas was full), `ms_per_reply` on this CPU (one thread) and
`speedup`, faithful's mean ms over the option's. Each prompt is decoded by every option in turn, after
one untimed warm-up of each, so a busy machine slows all options alike and the ratios stay fair.

`second_turn` (block-causal families, whose prompt cache is exact): the fast preset's reply to a
second turn (first prompt + its reply + a follow-up) decoded with the cache kept from the first turn
and with a fresh one, on the same prompts: `same` (share of identical replies, which must be 1),
forward passes and ms of each, and `reused` (mean prompt tokens whose keys/values the kept cache
supplies: their common prefix, cut to the model's block grid).

The default run (8 prompts, 64 new tokens) takes about 30 s on one CPU thread (31 s measured,
including the checkpoints it builds); `--prompts 1 --max-new-tokens 32` about 10 s (the canvas must
stay a multiple of LLaDA's 32-token block). The weights are random: the figures show how far each
option moves the decoding away from the authors' on the same logits, not what it does to answer
quality on a trained model.
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
from dlm_core.cache import KVCache, PromptCache
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
PROMPT_LENGTHS = [11, 40, 64, 77, 23, 50, 96, 33]
FOLLOW_UP_LENGTH = 12  # the second turn's new user tokens


def random_ids(n: int, seed: int) -> list[int]:
    return torch.randint(0, 250, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def prompts(n: int) -> list[list[int]]:
    return [random_ids(PROMPT_LENGTHS[i % len(PROMPT_LENGTHS)], 2000 + i) for i in range(n)]


def decode(lm, prompt: list[int], cfg: SamplerConfig, cache=None) -> tuple[list[int], int, float]:
    """(reply ids up to end-of-turn, forward passes, seconds)."""
    start = time.perf_counter()
    ids, nfe = [], 0
    for chunk in generate(lm.model, lm.tokenizer, prompt, cfg, prompt_cache=cache):
        ids += chunk.token_ids
        nfe = chunk.nfe
    return ids, nfe, time.perf_counter() - start


def run_side_by_side(lm, cfgs: dict[str, SamplerConfig], inputs: list[list[int]]) -> dict[str, list]:
    """Every prompt decoded by every option in turn (after one untimed warm-up each)."""
    for cfg in cfgs.values():
        decode(lm, inputs[0], cfg)
    runs = {name: [] for name in cfgs}
    for prompt in inputs:
        for name, cfg in cfgs.items():
            runs[name].append(decode(lm, prompt, cfg))
    return runs


def summarise(runs: dict[str, list], max_new: int) -> dict[str, dict]:
    faithful = runs["faithful"]
    faithful_s = statistics.mean(r[2] for r in faithful)
    out = {}
    for name, results in runs.items():
        pairs = list(zip(results, faithful))
        mean_s = statistics.mean(r[2] for r in results)
        out[name] = {
            "exact": sum(r[0] == f[0] for r, f in pairs) / len(results),
            "agreement": round(statistics.mean(edit_similarity(r[0], f[0]) for r, f in pairs), 3),
            "tokens_per_nfe": round(sum(len(r[0]) for r in results) / sum(r[1] for r in results), 2),
            "ended": sum(len(r[0]) < max_new for r in results) / len(results),
            "ms_per_reply": round(1000 * mean_s, 1),
            "speedup": round(faithful_s / mean_s, 2),
        }
    return out


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def second_turn(lm, cfg: SamplerConfig, inputs: list[list[int]]) -> dict | None:
    """The fast preset's second turn with the first turn's prompt cache kept, and with a fresh one."""
    mcfg = lm.model.cfg
    if mcfg.attention == "bidirectional":
        return None  # the cache is not kept there: a bidirectional prompt is recomputed each turn
    kept, fresh, reused, lengths = [], [], [], []
    for i, prompt in enumerate(inputs):
        cache = PromptCache(KVCache(mcfg.n_layers))
        reply, _, _ = decode(lm, prompt, cfg, cache)
        turn2 = prompt + reply + random_ids(FOLLOW_UP_LENGTH, 3000 + i)
        held = min(common_prefix(cache.ids, turn2), len(turn2) - int(mcfg.logits_shift))
        reused.append(held // mcfg.block_size * mcfg.block_size)  # what DecodeState.start keeps
        lengths.append(len(turn2))
        fresh.append(decode(lm, turn2, cfg, PromptCache(KVCache(mcfg.n_layers))))
        kept.append(decode(lm, turn2, cfg, cache))
    return {
        "same": sum(k[0] == f[0] for k, f in zip(kept, fresh)) / len(kept),
        "reused": round(statistics.mean(reused), 1),
        "prompt_tokens": round(statistics.mean(lengths), 1),
        "nfe_kept": round(statistics.mean(k[1] for k in kept), 2),
        "nfe_fresh": round(statistics.mean(f[1] for f in fresh), 2),
        "ms_kept": round(1000 * statistics.mean(k[2] for k in kept), 1),
        "ms_fresh": round(1000 * statistics.mean(f[2] for f in fresh), 1),
        "speedup": round(sum(f[2] for f in fresh) / sum(k[2] for k in kept), 2),
    }


def measure_family(family: str, root: Path, n_prompts: int, max_new: int) -> dict:
    folder, _, _ = make_family_checkpoint(root, family, decisive=DECISIVE[family])
    lm = load_checkpoint(folder)
    base = SamplerConfig.for_family(family, max_new_tokens=max_new)
    cfgs = {name: base.replace(**change) for name, change in {**OPTIONS, **EXTRA.get(family, {})}.items()}
    inputs = prompts(n_prompts)
    options = summarise(run_side_by_side(lm, cfgs, inputs), max_new)
    return {"options": options, "second_turn": second_turn(lm, cfgs["fast (balanced preset)"], inputs)}


def print_family(family: str, result: dict) -> None:
    print(f"\n{family}")
    print(
        f"  {'option':30s} {'exact':>5s} {'agree':>6s} {'tok/fwd':>7s} {'ended':>5s} {'ms':>7s} {'speed':>6s}"
    )
    for name, row in result["options"].items():
        print(
            f"  {name:30s} {row['exact']:5.2f} {row['agreement']:6.3f} {row['tokens_per_nfe']:7.2f} "
            f"{row['ended']:5.2f} {row['ms_per_reply']:7.1f} {row['speedup']:5.2f}x"
        )
    turn = result["second_turn"]
    if turn is not None:
        print(
            f"  second turn, fast preset, kept cache vs fresh: same {turn['same']:.2f}, "
            f"{turn['reused']:.0f} of {turn['prompt_tokens']:.0f} prompt tokens reused, "
            f"fwd {turn['nfe_kept']:.2f} vs {turn['nfe_fresh']:.2f}, "
            f"ms {turn['ms_kept']:.1f} vs {turn['ms_fresh']:.1f} ({turn['speedup']:.2f}x)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print one JSON line at the end")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    families = {}
    with tempfile.TemporaryDirectory() as tmp:
        for family in DECISIVE:
            families[family] = measure_family(family, Path(tmp), args.prompts, args.max_new_tokens)
            print_family(family, families[family])
    wall_s = round(time.perf_counter() - start, 1)
    print(f"\nwall time {wall_s} s ({args.prompts} prompts, {args.max_new_tokens} new tokens)")
    if args.json:
        result = {"prompts": args.prompts, "max_new_tokens": args.max_new_tokens, "wall_s": wall_s}
        print(json.dumps({**result, "families": families}))


if __name__ == "__main__":
    main()
