"""Forward-pass cost of real-sized diffusion LMs on one GPU, with random bf16 weights.

Two shapes: LLaDA-8B (bidirectional, 32 layers, d=4096, MHA, vocab 126464) and SDAR-1.7B
(Qwen3-1.7B: block-causal, 28 layers, d=2048, GQA 16/8, head_dim 128, q/k norm, tied embeddings).
For each: milliseconds per forward pass by batch size and canvas size (the tokens being denoised),
- without cache: the whole prompt + canvas goes through the model (what the reference sampler does),
- with cache: the prompt's keys/values are cached once and only the canvas goes through,
in eager mode, under torch.compile, and with CUDA graphs (torch.compile mode "reduce-overhead").
Prints a table and, last, one JSON line. Compiled variants run last and stop once --budget-s is
spent, so the whole run stays under about five minutes.

    python -m bench.gpu_dlm                 # on a CUDA machine
    python -m bench.gpu_dlm --tiny          # tiny shapes on the CPU, to check the script
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also runnable as a plain script

from dlm_core.cache import KVCache
from dlm_core.model import ModelConfig, Transformer

# Published shapes (LLaDA-8B-Instruct config.json; Qwen3-1.7B, which SDAR-1.7B-Chat is built on).
SHAPES = {
    "llada-8b": ModelConfig(
        vocab_size=126464,
        dim=4096,
        n_layers=32,
        n_heads=32,
        mlp_dim=12288,
        rope_theta=500000.0,
        norm_eps=1e-5,
        max_seq_len=4096,
        attention="bidirectional",
    ),
    "sdar-1.7b": ModelConfig(
        vocab_size=151936,
        dim=2048,
        n_layers=28,
        n_heads=16,
        n_kv_heads=8,
        head_dim=128,
        mlp_dim=6144,
        rope_theta=1000000.0,
        norm_eps=1e-6,
        max_seq_len=4096,
        attention="block_causal",
        block_size=4,
        qk_norm=True,
        tie_embeddings=True,
    ),
}
# Canvas sizes worth measuring per shape: LLaDA denoises 32-token blocks or whole replies; SDAR
# denoises one 4-token block per step, several when sessions are batched or blocks are widened.
CANVASES = {"llada-8b": (32, 64, 128, 256), "sdar-1.7b": (4, 16, 64, 256)}
BATCHES = (1, 4, 16)
PROMPT_LEN = 256  # tokens of conversation before the canvas
TINY = {
    "llada-8b": {
        "dim": 64,
        "n_layers": 2,
        "n_heads": 4,
        "n_kv_heads": None,
        "head_dim": None,
        "mlp_dim": 128,
        "vocab_size": 512,
    },
    "sdar-1.7b": {
        "dim": 64,
        "n_layers": 2,
        "n_heads": 4,
        "n_kv_heads": 2,
        "head_dim": 32,
        "mlp_dim": 128,
        "vocab_size": 512,
    },
}


def build(cfg: ModelConfig, device: str, dtype: torch.dtype) -> Transformer:
    """Random weights straight on the device, in the target dtype (no float32 copy of 8B)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = Transformer(cfg)
    finally:
        torch.set_default_dtype(previous)
    return model.eval()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_ms(fn, device: str, warmup: int, iters: int) -> float:
    """Median milliseconds of fn() over iters calls, after warmup calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def cell(
    model, forward, batch: int, canvas: int, cached: bool, device: str, warmup: int, iters: int
) -> float:
    """ms per forward for one (batch, canvas, cache) setting."""
    vocab = model.cfg.vocab_size
    prompt = torch.randint(0, vocab, (batch, PROMPT_LEN), device=device)
    canvas_ids = torch.randint(0, vocab, (batch, canvas), device=device)
    with torch.inference_mode():
        if not cached:
            tokens = torch.cat([prompt, canvas_ids], 1)  # [B, P + C]
            return time_ms(lambda: forward(tokens), device, warmup, iters)
        cache = KVCache(model.cfg.n_layers)
        with cache.writing():
            model(prompt, cache=cache)  # prefill, not timed
        positions = torch.arange(PROMPT_LEN, PROMPT_LEN + canvas, device=device).expand(batch, canvas)
        return time_ms(lambda: forward(canvas_ids, positions, cache), device, warmup, iters)


def measure(name: str, model: Transformer, mode: str, forward, args, deadline: float | None) -> list[dict]:
    """Every (batch, canvas, cache) cell for one model and mode; compiled modes stop at deadline."""
    rows = []
    for batch in args.batches:
        for canvas in args.canvases or CANVASES[name]:
            for cached in (True, False):
                row = {
                    "model": name,
                    "params": model.num_params(),
                    "mode": mode,
                    "cache": cached,
                    "batch": batch,
                    "canvas": canvas,
                }
                if deadline is not None and time.monotonic() > deadline:
                    rows.append({**row, "ms": None, "skipped": "time budget"})
                    continue
                try:
                    ms = cell(model, forward, batch, canvas, cached, args.device, args.warmup, args.iters)
                    rows.append(
                        {
                            **row,
                            "ms": round(ms, 3),
                            "canvas_tokens_per_s": round(batch * canvas / ms * 1000, 1),
                        }
                    )
                except Exception as e:  # noqa: BLE001 - out of memory or a compile failure: report, go on
                    rows.append({**row, "ms": None, "error": f"{type(e).__name__}: {str(e)[:200]}"})
                    if args.device.startswith("cuda"):
                        torch.cuda.empty_cache()
                print(_line(rows[-1]), flush=True)
    skipped = sum(1 for r in rows if r.get("skipped"))
    if skipped:
        print(f"{name:<10} {mode:<10} {skipped} cells skipped: time budget spent", flush=True)
    return rows


def run(models: dict[str, Transformer], args, start: float) -> list[dict]:
    rows = []
    for name, model in models.items():
        rows += measure(name, model, "eager", model, args, None)
    if not args.compile:
        return rows
    modes = [("compile", "default")]
    if args.device.startswith("cuda"):
        modes.append(("cudagraphs", "reduce-overhead"))
    groups = [(name, mode, compile_mode) for mode, compile_mode in modes for name in models]
    for i, (name, mode, compile_mode) in enumerate(groups):
        # Share what is left of the budget evenly between the compiled groups still to run.
        left = args.budget_s - (time.monotonic() - start)
        deadline = time.monotonic() + max(left, 0) / (len(groups) - i)
        torch._dynamo.reset()
        # dynamic=None: the first shape compiles static, later shapes share one dynamic graph
        # (CUDA graphs are still recorded once per shape).
        compiled = torch.compile(models[name], mode=compile_mode)
        rows += measure(name, models[name], mode, compiled, args, deadline)
    return rows


def _line(r: dict) -> str:
    ms = f"{r['ms']:9.2f}" if r.get("ms") is not None else f"{'-':>9}"
    note = r.get("error") or r.get("skipped") or ""
    tps = r.get("canvas_tokens_per_s")
    return (
        f"{r['model']:<10} {r['mode']:<10} {'yes' if r['cache'] else 'no':<5} {r['batch']:>5} "
        f"{r['canvas']:>6} {ms} {tps if tps is not None else '-':>12} {note}"
    )


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    p.add_argument("--tiny", action="store_true", help="tiny shapes (for checking the script on a CPU)")
    p.add_argument("--models", default=",".join(SHAPES), help="comma-separated: " + ", ".join(SHAPES))
    p.add_argument("--batches", default=",".join(map(str, BATCHES)))
    p.add_argument("--canvases", default="", help="comma-separated canvas sizes (default per model)")
    p.add_argument("--no-compile", dest="compile", action="store_false", help="eager only")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="compiled variants are skipped once this many seconds have passed "
        "(default 180, or 60 with --tiny)",
    )
    args = p.parse_args(argv)
    args.dtype = getattr(torch, args.dtype)
    if args.budget_s is None:
        args.budget_s = 60.0 if args.tiny else 180.0
    args.models = [m for m in args.models.split(",") if m]
    unknown = set(args.models) - set(SHAPES)
    if unknown:
        p.error(f"unknown models {sorted(unknown)}; choose from {sorted(SHAPES)}")
    args.batches = [int(b) for b in args.batches.split(",") if b]
    args.canvases = [int(c) for c in args.canvases.split(",") if c]
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("CUDA is not available here; pass --device cpu --tiny to check the script")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    global PROMPT_LEN
    if args.tiny:
        PROMPT_LEN = 32
        if args.batches == list(BATCHES):
            args.batches = [1, 4]
    start = time.monotonic()
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(
        f"device {device_name}, dtype {str(args.dtype).removeprefix('torch.')}, prompt {PROMPT_LEN} tokens"
        f"{', tiny shapes' if args.tiny else ''}"
    )
    print(
        f"{'model':<10} {'mode':<10} {'cache':<5} {'batch':>5} {'canvas':>6} {'ms':>9} {'canvas tok/s':>12}"
    )
    models = {
        name: build(
            replace(SHAPES[name], **TINY[name]) if args.tiny else SHAPES[name], args.device, args.dtype
        )
        for name in args.models
    }
    rows = run(models, args, start)
    result = {
        "bench": "gpu_dlm",
        "device": device_name,
        "dtype": str(args.dtype).removeprefix("torch."),
        "prompt_len": PROMPT_LEN,
        "tiny": args.tiny,
        "torch": torch.__version__,
        "wall_s": round(time.monotonic() - start, 1),
        "results": rows,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
