"""Reference vs fast diffusion sampling, side by side on the same model and prompts.

    python -m bench.dlm_speed --json [--quick] [--model PATH|tiny] [--device cpu|cuda]

Prints a human table, then ONE final JSON line. Measures, per sampler, over all prompts:
tokens_per_s (reply tokens up to end-of-turn / wall time), nfe_per_reply (forward passes),
ms_per_reply, ms_to_first_text (first non-empty committed text). `agreement` is the mean
normalised edit similarity of the fast reply's token ids to the reference reply's
(1 - Levenshtein / longer length; 1.0 = identical). `tokens_per_nfe` is for the fast sampler.
When `dlm_core/weights/twin` exists (an AR model: causal attention, one token per forward with a
KV cache) its figures are reported too.

`--model tiny` trains the test suite's tiny model (testkit/tiny_dlm.py) on the spot: three
memorised prompt -> reply pairs. It shows the machinery works, not what a real model achieves.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field

import torch

from dlm_core.checkpoints import BUNDLED_TWIN as TWIN_DIR
from dlm_core.sampler import PRESETS, SamplerConfig, generate, generate_autoregressive

PROMPTS = [  # short voice-assistant turns
    "hi, how are you today?",
    "what's a good name for a cat?",
    "can you tell me a joke?",
    "what should i cook for dinner tonight?",
    "how do i make a cup of tea?",
    "what time is it in tokyo when it's noon in london?",
    "give me one tip to sleep better.",
    "what's the capital of france?",
]
QUICK_PROMPTS = 3
MAX_NEW_TOKENS = 40  # a spoken reply rarely needs more; the bundled model's canvas is 40


@dataclass
class Stats:
    tokens: int = 0
    nfe: int = 0
    seconds: float = 0.0
    first_text_ms: list[float] = field(default_factory=list)
    replies: list[list[int]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    def add(self, seconds: float, ids: list[int], text: str, nfe: int, first_text_s: float | None) -> None:
        """Account one reply."""
        self.seconds += seconds
        self.tokens += len(ids)
        self.nfe += nfe
        self.replies.append(ids)
        self.texts.append(text)
        if first_text_s is not None:
            self.first_text_ms.append(1000 * first_text_s)

    def summary(self) -> dict:
        n = max(1, len(self.replies))
        return {
            "tokens_per_s": round(self.tokens / self.seconds, 1) if self.seconds else 0.0,
            "nfe_per_reply": round(self.nfe / n, 2),
            "ms_per_reply": round(1000 * self.seconds / n, 1),
            "ms_to_first_text": round(statistics.mean(self.first_text_ms), 1) if self.first_text_ms else None,
        }


def run_stream(stream, prompts) -> Stats:
    """Time one decoder over all prompts; `stream(prompt)` yields `Committed` chunks."""
    stats = Stats()
    for prompt in prompts:
        started = time.perf_counter()
        first, ids, text, nfe = None, [], "", 0
        for chunk in stream(prompt):
            if chunk.text and first is None:
                first = time.perf_counter() - started
            ids += chunk.token_ids
            text += chunk.text
            nfe = chunk.nfe
        stats.add(time.perf_counter() - started, ids, text, nfe, first)
    return stats


def run_diffusion(model, tok, prompts, cfg: SamplerConfig) -> Stats:
    return run_stream(lambda prompt: generate(model, tok, prompt, cfg), prompts)


def run_autoregressive(model, tok, prompts, max_new_tokens: int) -> Stats:
    """Greedy AR decoding: one token per forward pass, with a KV cache."""
    return run_stream(lambda prompt: generate_autoregressive(model, tok, prompt, max_new_tokens), prompts)


def edit_similarity(a: list[int], b: list[int]) -> float:
    if not a and not b:
        return 1.0
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return 1.0 - prev[-1] / max(len(a), len(b))


def load_models(spec: str | None, device: str, dtype: torch.dtype, tiny_steps: int):
    """(name, model, tokenizer, prompts as ids, twin (model, tok) or None, max_new_tokens)."""
    if spec == "tiny":
        from testkit.tiny_dlm import GEN_LEN, PAIRS, prompt_ids, train_tiny

        model, tok, _ = train_tiny("block_causal", steps=tiny_steps)
        twin, _, _ = train_tiny(autoregressive=True, steps=250)
        prompts = [prompt_ids(tok, q) for q, _ in PAIRS]
        return (
            "tiny (trained in the bench)",
            model.to(device, dtype),
            tok,
            prompts,
            (twin.to(device, dtype), tok),
            GEN_LEN,
        )
    from dlm_core.checkpoints import load_checkpoint, resolve_model

    path = resolve_model(spec)
    loaded = load_checkpoint(path, device=device, dtype=dtype)
    tok = loaded.tokenizer
    prompts = [tok.chat_prompt([{"role": "user", "content": p}]) for p in PROMPTS]
    twin = None
    if TWIN_DIR.joinpath("config.json").is_file():
        t = load_checkpoint(TWIN_DIR, device=device, dtype=dtype)
        twin = (t.model, t.tokenizer)
    return str(path), loaded.model, tok, prompts, twin, MAX_NEW_TOKENS


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="end with one JSON line (always printed last)")
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_PROMPTS} prompts only")
    ap.add_argument(
        "--model",
        default=None,
        help="checkpoint folder or hub id (default: the bundled "
        "model); 'tiny' trains the tests' tiny model on the spot",
    )
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--tiny-steps", type=int, default=400, help="training steps of --model tiny")
    ap.add_argument("--presets", action="store_true", help="also run each fast preset")
    ap.add_argument("--max-new-tokens", type=int, default=None)
    return ap.parse_args(argv)


def agreement(a: Stats, b: Stats) -> float:
    return statistics.mean(edit_similarity(x, y) for x, y in zip(a.replies, b.replies))


def run_presets(model, tok, prompts, max_new: int, ref: Stats) -> dict:
    """Each fast preset on the same prompts, with its agreement against the reference sampler."""
    out = {}
    for preset in PRESETS:
        s = run_diffusion(model, tok, prompts, SamplerConfig.preset(preset, max_new_tokens=max_new))
        out[preset] = {
            **s.summary(),
            "tokens_per_nfe": round(s.tokens / max(1, s.nfe), 2),
            "agreement": round(agreement(s, ref), 3),
        }
    return out


def summarize(name, model, args, prompts, *, max_new, ref, fast, ar, twin, presets) -> dict:
    """The machine-readable result (the JSON line)."""
    result = {
        "model": name,
        "params": model.num_params(),
        "attention": model.cfg.attention,
        "device": args.device,
        "dtype": args.dtype,
        "prompts": len(prompts),
        "max_new_tokens": max_new,
        "reference": ref.summary(),
        "fast": fast.summary(),
        "speedup_vs_reference": round(ref.seconds / fast.seconds, 2) if fast.seconds else None,
        "tokens_per_nfe": round(fast.tokens / fast.nfe, 2) if fast.nfe else 0.0,
        "agreement": round(agreement(fast, ref), 3),
        "agreement_measure": "mean normalised token edit similarity, fast vs reference (1.0 = identical)",
        "exact_match": round(statistics.mean(f == r for f, r in zip(fast.replies, ref.replies)), 3),
    }
    if presets:
        result["presets"] = presets
    if ar is not None:
        result["ar_twin"] = {
            **ar.summary(),
            "params": twin[0].num_params(),
            "speedup_of_fast_vs_ar": round(ar.seconds / fast.seconds, 2) if fast.seconds else None,
        }
    return result


def print_table(result: dict, rows: list[tuple[str, Stats]], presets: dict) -> None:
    print(
        f"model {result['model']}  params {result['params']:,}  {result['attention']}  "
        f"device {result['device']}  prompts {result['prompts']}  max_new_tokens {result['max_new_tokens']}"
    )
    print(
        f"{'sampler':<10} {'tok/s':>8} {'NFE/reply':>10} {'ms/reply':>9} {'ms first text':>14} {'tok/NFE':>8}"
    )
    for label, s in rows:
        d = s.summary()
        print(
            f"{label:<10} {d['tokens_per_s']:>8} {d['nfe_per_reply']:>10} {d['ms_per_reply']:>9} "
            f"{d['ms_to_first_text']!s:>14} {round(s.tokens / max(1, s.nfe), 2):>8}"
        )
    for preset, d in presets.items():
        print(
            f"{'fast ' + preset:<16} {d['tokens_per_s']:>8} tok/s {d['nfe_per_reply']:>6} NFE/reply "
            f"{d['ms_per_reply']:>7} ms/reply {d['tokens_per_nfe']:>5} tok/NFE agreement {d['agreement']}"
        )
    print(f"speedup fast vs reference {result['speedup_vs_reference']}x, agreement {result['agreement']}")
    for label, s in rows:
        print(f"  {label}: {s.texts[0]!r}")


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2
    try:
        name, model, tok, prompts, twin, max_new = load_models(
            args.model, args.device, getattr(torch, args.dtype), args.tiny_steps
        )
    except FileNotFoundError as e:
        print(f"error: {e}\n(for a self-contained measurement pass --model tiny)", file=sys.stderr)
        return 2
    max_new = args.max_new_tokens or max_new
    if args.quick:
        prompts = prompts[:QUICK_PROMPTS]
    fast_cfg = SamplerConfig(max_new_tokens=max_new)
    run_diffusion(model, tok, prompts[:1], fast_cfg)  # warm-up (allocator, kernels)
    ref = run_diffusion(model, tok, prompts, fast_cfg.replace(strategy="reference"))
    fast = run_diffusion(model, tok, prompts, fast_cfg)
    ar = run_autoregressive(twin[0], twin[1], prompts, max_new) if twin else None
    presets = run_presets(model, tok, prompts, max_new, ref) if args.presets else {}
    result = summarize(
        name, model, args, prompts, max_new=max_new, ref=ref, fast=fast, ar=ar, twin=twin, presets=presets
    )
    print_table(result, [("reference", ref), ("fast", fast)] + ([("ar twin", ar)] if ar else []), presets)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
