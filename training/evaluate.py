"""Held-out scores and sample replies for the shipped diffusion model and its AR twin.

    python -m training.evaluate --diffusion-run runs/g_default --ar-run runs/g_twin --rows 2000

Held-out loss: nats per reply token (reply + end-of-turn) on the held-out split, the diffusion ELBO
bound (`training.objectives.held_out_loss`) against the AR model's exact NLL. Replies: the diffusion model
through `dlm_core.sampler.generate` (the "balanced" preset), the twin by greedy next-token decoding
with a KV cache (both with the preset's repetition penalty); both time their first committed text
and the whole reply.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from dlm_core.model import Transformer
from dlm_core.sampler import SamplerConfig, generate, generate_autoregressive
from dlm_core.tokenizer import DlmTokenizer
from training.config import TrainConfig
from training.examples import CHATTERBOT, CHITCHAT, TEMPLATES
from training.objectives import held_out_loss
from training.tokenized import prepare_data

MAX_NEW_TOKENS = 32
EVERYDAY = ["Hi! How is your day going?", "Can you recommend a good movie for tonight?"]


def load_run(run: str | Path) -> tuple[Transformer, DlmTokenizer, TrainConfig]:
    """The run's best held-out weights (its last ones if it has none), on the CPU in fp32."""
    state = torch.load(Path(run) / "ckpt.pt", weights_only=False, map_location="cpu")
    cfg = TrainConfig(**state["config"] | {"device": "cpu", "bf16": False})
    tok_dir = Path(cfg.tokenizer_dir) if cfg.tokenizer_dir else Path(run) / "tokenizer"
    tok = DlmTokenizer.from_dir(tok_dir)
    model = Transformer(cfg.model_config(tok.vocab_size))
    best = Path(run) / "best.pt"
    model.load_state_dict(torch.load(best, map_location="cpu")["model"] if best.is_file() else state["model"])
    return model.eval(), tok, cfg


SAMPLE_PROMPTS = {CHITCHAT: 10, CHATTERBOT: 5, TEMPLATES: 5}  # held-out sample prompts per source


def held_out_prompts(test) -> list[list[dict]]:
    """Distinct held-out single-turn prompts, spread evenly within each source (a template prompt
    can appear with several replies, so prompts are deduplicated first)."""
    out = []
    for source, n in SAMPLE_PROMPTS.items():
        singles = list(
            {
                m[0]["content"]: m
                for (m, _), s in zip(test.texts, test.sources)
                if len(m) == 1 and s == source
            }.values()
        )
        step = max(1, len(singles) // n)
        out += singles[::step][:n]
    return out


def timed(stream) -> tuple[str, float, float, int]:
    """(reply text, seconds to first text, seconds in all, forward passes) of a `Committed` stream."""
    t0, first, text, nfe = time.perf_counter(), None, "", 0
    for c in stream:
        if c.text and first is None:
            first = time.perf_counter() - t0
        text += c.text
        nfe = c.nfe
    total = time.perf_counter() - t0
    return text.strip(), first or total, total, nfe


def diffusion_reply(model, tok, messages) -> tuple[str, float, float, int]:
    cfg = SamplerConfig.preset("balanced", max_new_tokens=MAX_NEW_TOKENS)
    return timed(generate(model, tok, tok.chat_prompt(messages), cfg))


def ar_reply(model, tok, messages) -> tuple[str, float, float, int]:
    """Greedy next-token decoding with a KV cache and the diffusion preset's repetition penalty."""
    return timed(
        generate_autoregressive(
            model,
            tok,
            tok.chat_prompt(messages),
            MAX_NEW_TOKENS,
            SamplerConfig.preset("balanced").repetition_penalty,
        )
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate")
    parser.add_argument("--diffusion-run", default="runs/g_default")
    parser.add_argument("--ar-run", default=None)
    parser.add_argument("--out", default="runs/g_eval")
    parser.add_argument("--rows", type=int, default=512, help="held-out rows scored")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--replies-only",
        action="store_true",
        help="keep the held-out scores of OUT/eval.json and redo only the replies",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"held_out": {}, "replies": [], "timing": {}}
    if args.replies_only:
        if not (out / "eval.json").is_file():
            parser.error(f"--replies-only needs an earlier {out / 'eval.json'}")
        result["held_out"] = json.loads((out / "eval.json").read_text())["held_out"]
    models, prompts = score_runs({"diffusion": args.diffusion_run, "ar": args.ar_run}, args, result)
    result["replies"] = sample_replies(models, prompts)
    for name in models:
        firsts = sorted(r[name + "_ms"][0] for r in result["replies"])
        totals = sorted(r[name + "_ms"][1] for r in result["replies"])
        result["timing"][name] = {
            "median_first_ms": firsts[len(firsts) // 2],
            "median_total_ms": totals[len(totals) // 2],
        }
    (out / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["| prompt | " + " | ".join(models) + " |", "|---" * (len(models) + 1) + "|"]
    for r in result["replies"]:
        cells = [r["prompt"]] + [r[n] or "(empty)" for n in models]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    (out / "replies.md").write_text("\n".join(lines) + "\n")
    print(json.dumps({"held_out": result["held_out"], "timing": result["timing"]}, indent=2))
    return 0


def score_runs(runs: dict[str, str | None], args, result: dict) -> tuple[dict, list[list[dict]]]:
    """Load each run, score its held-out split into result["held_out"] (unless --replies-only).
    Returns ({name: (model, tokenizer)}, the sample prompts: everyday ones, then held-out ones)."""
    prompts = None
    models = {}
    for name, run in runs.items():
        if not run:
            continue
        model, tok, cfg = load_run(run)
        _, _, _, test = prepare_data(cfg)
        if not args.replies_only:
            result["held_out"][name] = {
                "nats_per_token": held_out_loss(model, test, tok, cfg, rows=args.rows),
                "rows": min(args.rows, len(test.prompts)),
                "params": model.num_params(),
            }
        print(name, result["held_out"][name], flush=True)
        prompts = prompts or [[{"role": "user", "content": p}] for p in EVERYDAY] + held_out_prompts(test)
        models[name] = (model, tok)
    return models, prompts


def sample_replies(models: dict, prompts: list[list[dict]]) -> list[dict]:
    """Each model's reply to each prompt, with [ms to first text, ms in all, forward passes]."""
    replies = []
    for messages in prompts:
        row = {"prompt": messages[-1]["content"]}
        for name, (model, tok) in models.items():
            text, first, total, nfe = (diffusion_reply if name == "diffusion" else ar_reply)(
                model, tok, messages
            )
            row[name] = text
            row[name + "_ms"] = [round(first * 1000), round(total * 1000), nfe]
        print(row, flush=True)
        replies.append(row)
    return replies


if __name__ == "__main__":
    raise SystemExit(main())
