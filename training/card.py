"""Model cards for the shipped default model and its AR twin, filled from their runs and the usefulness
evaluation (training/usefulness.py).

    python -m training.card --usefulness runs/v6_eval --default runs/v5_default --twin runs/v5_twin
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from training.examples import REPEATS, SOURCES

WEIGHTS = Path(__file__).resolve().parent.parent / "dlm_core" / "weights"
# The flags both data-v3 runs share (runs/v5_*): the model cards print them in their commands.
V3_COMMON = (
    "--dim 256 --n-layers 4 --n-heads 4 --mlp-dim 768 --max-prompt 192 --reply-len 40 --batch-size 32 "
    "--warmup 100 --weight-decay 0.1 --bf16 true --threads 2 --eval-every 500 --eval-rows 256 "
    "--ckpt-every 100 --log-every 20"
)
SOURCE_NOTES = {
    "intents": "`training/intents.py`: everyday requests by intent (greetings, thanks, who are you, "
    "suggestions, trips, comfort, congratulations, live data declined, ...) with slot values from word lists",
    "facts": "`training/facts.py`: capitals, landmarks, hello and thank you in 24 languages, "
    "how many X in Y, "
    "animals' young and sounds, planets and other trivia, written as structured data",
    "tools": "`training/tool_data.py`: the built-in tools (time, sums, units, timers) and made-up client "
    "functions: the call, the result -> one spoken sentence, requests needing no tool beside a tool list",
    "templates": "`training/templates.py`: the small-talk topics data v2 and v3 keep (yes/no, sorry, "
    "compliments, insults, repeat, fun facts)",
}

CARD = (Path(__file__).resolve().parent / "card_default.md").read_text
TWIN = (Path(__file__).resolve().parent / "card_twin.md").read_text


def run_facts(run: Path) -> dict:
    """Size, progress and compute of a run, from its checkpoint."""
    state = torch.load(run / "ckpt.pt", weights_only=False, map_location="cpu")
    cfg = state["config"]
    history = state["history"]
    best = min(history, key=lambda h: h["held_out"]) if history else {}
    return {
        "steps": state["step"],
        "best_step": best.get("step", state["step"]),
        "best_held_out": best.get("held_out", float("nan")),
        "held_out": history[-1]["held_out"] if history else float("nan"),  # the last weights ship
        "positions": state["tokens"] / 1e6,
        "rows": state["step"] * cfg["batch_size"],
        "minutes": state["elapsed"] / 60,
        "rate": state["tokens"] / max(state["elapsed"], 1e-9),
        "layers": cfg["n_layers"],
        "dim": cfg["dim"],
        "heads": cfg["n_heads"],
        "mlp": cfg["mlp_dim"],
        "block": cfg["block_size"],
        "reply_len": cfg["reply_len"],
        "max_prompt": cfg["max_prompt"],
        "params": sum({v.data_ptr(): v.numel() for v in state["model"].values()}.values()) / 1e6,  # tied once
        "threads": cfg["threads"],
        "dtype": "bf16 autocast" if cfg["bf16"] else "fp32",
    }


def score_table(result: dict) -> str:
    """Usefulness by split, tool-call accuracy and speed, one row per (model, decoding)."""
    rows = [
        "| model | decoding | useful (all) | unseen wording | held-out fact | issue's six | client calls, "
        "seen functions | unseen functions | no call when none is needed | tokens / forward | "
        "ms to first text | ms per reply |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model, by in result.items():
        if not isinstance(by, dict):
            continue
        for decoding, s in by.items():
            split = s["by_split"]
            cells = [
                f"**{s['useful']:.0%}** of {s['n']}",
                *(
                    f"{split[k][0]:.0%} of {split[k][1]}" if k in split else "-"
                    for k in ("wording", "fact", "issue")
                ),
                *(call_cell(s["calls"][k]) for k in ("seen", "unseen", "no_call")),
                f"{s['tokens_per_forward']:.2f}",
                f"{s['median_first_ms']:.0f}",
                f"{s['median_reply_ms']:.0f}",
            ]
            rows.append(f"| {model} | {decoding} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def call_cell(entry: list) -> str:
    """ "share as the server runs it (share the model named right itself) of rows"."""
    share, n, *named = entry
    return f"{share:.0%}" + (f" ({named[0]:.0%})" if named and named[0] != share else "") + f" of {n}"


def category_table(result: dict, columns: list[tuple[str, str]]) -> str:
    """Useful share per category of request, for the given (model, decoding) columns."""
    cats = sorted(result[columns[0][0]][columns[0][1]]["by_category"])
    rows = [
        "| category | " + " | ".join(f"{m} ({d})" for m, d in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for cat in cats:
        cells = []
        for m, d in columns:
            share, n = result[m][d]["by_category"].get(cat, [0.0, 0])
            cells.append(f"{round(share * n)}/{n}")
        rows.append(f"| {cat} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def data_table(data: dict) -> tuple[str, int]:
    """Rows per source (train, held-out) and the oversampled epoch."""
    rows = ["| source | license | train rows | held-out rows | oversampled |", "|---|---|---|---|---|"]
    for source in SOURCES:
        n, t = data["train"]["sources"].count(source), data["test"]["sources"].count(source)
        if n or t:
            rows.append(
                f"| {SOURCE_NOTES.get(source, source)} | MIT (this project) | {n} | {t} "
                f"| x{REPEATS[source]} |"
            )
    epoch = sum(REPEATS[s] for s in data["train"]["sources"])
    return "\n".join(rows), epoch


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    flags = Path("/proc/cpuinfo").read_text()
    return f"{model}, {len(set(Path('/sys/devices/system/cpu').glob('cpu[0-9]*')))} cores" + (
        ", AVX512-BF16" if "avx512_bf16" in flags else ""
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.card")
    parser.add_argument("--usefulness", default="runs/v6_eval", help="training.usefulness's --out")
    parser.add_argument("--default", default="runs/v5_default")
    parser.add_argument("--twin", default="runs/v5_twin")
    parser.add_argument("--weights", default=str(WEIGHTS), help="folder holding default/ and twin/")
    parser.add_argument("--note", default="", help="how the runs departed from the one command, if they did")
    args = parser.parse_args(argv)
    result = json.loads((Path(args.usefulness) / "usefulness.json").read_text())
    data = torch.load(Path(args.default) / "data.pt", weights_only=False)
    table, epoch = data_table(data)
    diffusion, twin = run_facts(Path(args.default)), run_facts(Path(args.twin))
    columns = [(m, d) for m, by in result.items() if isinstance(by, dict) for d in by]
    common = {
        "scores": score_table(result),
        "categories": category_table(result, columns),
        "data": table,
        "epoch_rows": epoch,
        "machine": machine(),
        "wall": diffusion["minutes"] + twin["minutes"],  # one after the other: diffusion starts from the twin
        "twin_minutes": twin["minutes"],
        "twin_positions": twin["positions"],
        "common": V3_COMMON,
        "replies": (Path(args.usefulness) / "replies.md").read_text().strip(),
        "items": result["items"],
        "twin_held_out": twin["held_out"],
        "twin_steps": twin["steps"],
        "twin_best": twin["best_step"],
        "note": args.note,
    }
    weights = Path(args.weights)
    (weights / "default" / "README.md").write_text(CARD().format(**common, **diffusion))
    (weights / "twin" / "README.md").write_text(
        TWIN().format(**common | {"diff_held_out": diffusion["held_out"]}, **twin)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
