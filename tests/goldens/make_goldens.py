"""Regenerate the golden decodings in this folder by running each family's authors' own code.

Two steps, two environments (see README.md here):

    # 1. with the project's environment: the tiny checkpoints the goldens (and the tests) use
    .venv/bin/python tests/goldens/make_goldens.py checkpoints /tmp/gold/ckpt
    # 2. with a throw-away transformers 4.x environment: run the authors' decoders on them
    /tmp/gold-venv/bin/python tests/goldens/make_goldens.py generate /tmp/gold/ckpt \\
        --fast-dllm SRC/NVlabs-Fast-dLLM --llada SRC/ML-GSAI-LLaDA --sdar SRC/JetAstra-SDAR \\
        --dllm SRC/ZHZisZZ-dllm --fast-dllm-v2 SRC/fast_dllm_v2_pkg

Nothing of the authors' code is copied here: it is imported from the folders given on the command
line. The only stand-ins: kernels the CPU lacks (flash-attn's rms_norm and attention for SDAR,
written out in plain torch below), SDAR's training loss (it needs triton; unused here), and SDAR's
sampler, which always samples: for greedy decoding its `block_diffusion_generate` gets a sampler
that returns the most likely token and its probability.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import sys
import types
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
GEN = 64  # reply canvas of every case
PROMPT_LENGTHS = (11, 40, 64, 77)  # below a block, inside one, on the 32-grid (and 4-grid), off it
PROMPT_VOCAB = 250  # prompt ids are drawn from the BPE ids below this (no special tokens)
PROBE = [3, 17, 42, 99, 7, 250, 12, 5]  # fixed input whose logits pin the checkpoint
DECISIVE = {"llada": 8.0, "dream": 8.0, "sdar": 12.0, "fast_dllm_v2": 14.0, "bd3lm": 14.0}
FOLDERS = {
    "llada": "LLaDA-8B-Instruct",
    "dream": "Dream-v0-Instruct-7B",
    "sdar": "SDAR-1.7B-Chat",
    "fast_dllm_v2": "Fast_dLLM_v2_1.5B",
    "bd3lm": "Qwen3-0.6B-diffusion-bd3lm-v0.1",
}
# family -> case name -> (our SamplerConfig.for_family overrides, the authors' call settings)
CASES = {
    "llada": {
        "llada_generate": ({}, {"fn": "llada", "steps": GEN}),
        "llada_generate_steps32": ({"steps": 32}, {"fn": "llada", "steps": 32}),
        "fast_dllm_nocache": (
            {"decoding": "fast_dllm", "threshold": 0.9, "cache": "none"},
            {"fn": "generate", "threshold": 0.9},
        ),
        "fast_dllm_prefix": (
            {"decoding": "fast_dllm", "threshold": 0.9, "cache": "prefix"},
            {"fn": "generate_with_prefix_cache", "threshold": 0.9},
        ),
        "fast_dllm_dual": (
            {"decoding": "fast_dllm", "threshold": 0.9, "cache": "dual"},
            {"fn": "generate_with_dual_cache", "threshold": 0.9},
        ),
    },
    "dream": {
        "entropy": ({"alg": "entropy"}, {"alg": "entropy", "steps": GEN}),
        "maskgit_plus": ({"alg": "maskgit_plus"}, {"alg": "maskgit_plus", "steps": GEN}),
        "topk_margin": ({"alg": "topk_margin"}, {"alg": "topk_margin", "steps": GEN}),
        "entropy_steps24": ({"alg": "entropy", "steps": 24}, {"alg": "entropy", "steps": 24}),
        "fast_dllm_threshold_dual": (
            {"decoding": "fast_dllm_dream", "alg": "confidence_threshold", "threshold": 0.9, "cache": "dual"},
            {"alg": "confidence_threshold", "steps": GEN, "block": True, "dual_cache": True},
        ),
        "fast_dllm_threshold_prefix": (
            {
                "decoding": "fast_dllm_dream",
                "alg": "confidence_threshold",
                "threshold": 0.9,
                "cache": "prefix",
            },
            {"alg": "confidence_threshold", "steps": GEN, "block": True, "dual_cache": False},
        ),
        "fast_dllm_entropy_dual": (
            {"decoding": "fast_dllm_dream", "alg": "entropy", "cache": "dual"},
            {"alg": "entropy", "steps": GEN, "block": True, "dual_cache": True},
        ),
    },
    "sdar": {
        "dynamic_0.9": ({"threshold": 0.9}, {"threshold": 0.9, "steps": 4}),
        "dynamic_0.5": ({"threshold": 0.5}, {"threshold": 0.5, "steps": 4}),
    },
    "fast_dllm_v2": {
        "threshold_0.9": ({"threshold": 0.9}, {"threshold": 0.9}),
        "threshold_0.5": ({"threshold": 0.5}, {"threshold": 0.5}),
        "block_cache_0.9": (
            {"threshold": 0.9, "use_block_cache": True},
            {"threshold": 0.9, "block_cache": True},
        ),
        "block_cache_0.5": (
            {"threshold": 0.5, "use_block_cache": True},
            {"threshold": 0.5, "block_cache": True},
        ),
    },
    "bd3lm": {
        "steps64": ({}, {"steps": GEN}),
        "steps24": ({"steps": 24}, {"steps": 24}),
    },
}


def prompt(length: int) -> list[int]:
    gen = torch.Generator().manual_seed(1000 + length)
    return torch.randint(0, PROMPT_VOCAB, (length,), generator=gen).tolist()


# ---- step 1: checkpoints (project environment) ---------------------------------------------------


def write_checkpoints(root: Path) -> None:
    sys.path.insert(0, str(HERE.parents[1]))
    from testkit.hf_families import make_family_checkpoint

    for family, decisive in DECISIVE.items():
        print(make_family_checkpoint(root, family, decisive=decisive)[0])


# ---- step 2: the authors' code (throw-away environment) ------------------------------------------


def load_file(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _package(name: str, path: Path) -> None:
    """Make `name` a package of the modules in `path` without running an __init__.py."""
    sys.modules[name] = types.ModuleType(name)
    sys.modules[name].__path__ = [str(path)]


def llada_runner(src: dict, folder: Path):
    sys.path.insert(0, str(src["fast_dllm"] / "llada"))
    from model.modeling_llada import LLaDAModelLM  # Fast-dLLM's copy of LLaDA's model, with caches

    fast = load_file("fast_dllm_generate", src["fast_dllm"] / "llada" / "generate.py")
    llada = load_file("llada_generate", src["llada"] / "generate.py")
    model = LLaDAModelLM.from_pretrained(folder, torch_dtype=torch.float32).eval()
    mask_id = json.loads((folder / "config.json").read_text())["mask_token_id"]

    def run(x: torch.Tensor, how: dict):
        if how["fn"] == "llada":
            out = llada.generate(
                model, x, steps=how["steps"], gen_length=GEN, block_length=32, mask_id=mask_id
            )
            return out, None
        fn = getattr(fast, how["fn"])
        out, nfe = fn(
            model, x, steps=GEN, gen_length=GEN, block_length=32, threshold=how["threshold"], mask_id=mask_id
        )
        return out, nfe

    return model, run


def dream_runner(src: dict, folder: Path):
    _package("fast_dllm_dream", src["fast_dllm"] / "dream" / "model")
    from fast_dllm_dream.generation_utils_block import DreamGenerationMixin as Blocks
    from fast_dllm_dream.modeling_dream import DreamModel  # Dream's model files, as Fast-dLLM ships them

    model = DreamModel.from_pretrained(folder, torch_dtype=torch.float32).eval()
    mask_id = json.loads((folder / "config.json").read_text())["mask_token_id"]
    plain = (model.diffusion_generate, model._sample)
    cached = (types.MethodType(Blocks.diffusion_generate, model), types.MethodType(Blocks._sample, model))

    def run(x: torch.Tensor, how: dict):
        # Fast-dLLM's dream/eval.py swaps in the block-cache decoder the same way
        model.diffusion_generate, model._sample = cached if how.get("block") else plain
        extra = {}
        if how.get("block"):
            extra = {"threshold": 0.9, "block_length": 32, "dual_cache": how["dual_cache"]}
        out = model.diffusion_generate(
            x,
            max_new_tokens=GEN,
            steps=how["steps"],
            temperature=0.0,
            alg=how["alg"],
            alg_temp=0.0,
            mask_token_id=mask_id,
            return_dict_in_generate=True,
            **extra,
        )
        return out.sequences, None

    return model, run


def _flash_attn_stub() -> None:
    """flash-attn's kernels in plain torch, for the CPU: rms_norm_fn and flash_attn_func."""

    def rms_norm_fn(x, weight, bias=None, eps=1e-6, **_):
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
        return weight * h.to(x.dtype)

    def flash_attn_func(q, k, v, causal=False, softmax_scale=None, **_):  # [b, l, h, d]
        out = torch.nn.functional.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), scale=softmax_scale, enable_gqa=True
        )
        return out.transpose(1, 2)

    names = ["flash_attn", "flash_attn.ops", "flash_attn.ops.triton", "flash_attn.ops.triton.layer_norm"]
    for name in [*names, "flash_attn.bert_padding"]:
        sys.modules[name] = types.ModuleType(name)
    sys.modules["flash_attn.ops.triton.layer_norm"].rms_norm_fn = rms_norm_fn
    sys.modules["flash_attn"].flash_attn_func = flash_attn_func
    sys.modules["flash_attn"].flash_attn_varlen_func = None
    for fn in ("index_first_axis", "pad_input", "unpad_input"):
        setattr(sys.modules["flash_attn.bert_padding"], fn, None)


def sdar_runner(src: dict, folder: Path):
    import transformers.modeling_utils  # noqa: F401 -- probes for flash-attn before the stub

    _flash_attn_stub()
    pkg = src["sdar"] / "training" / "model" / "SDAR-4B-Chat"
    _package("sdar_model", pkg)
    loss = sys.modules["sdar_model.fused_linear_diffusion_cross_entropy"] = types.ModuleType("loss")
    loss.FusedLinearDiffusionCrossEntropyLoss = None  # training only, and it needs triton
    from sdar_model.modeling_sdar import SDARForCausalLM

    gen = load_file("sdar_generate", src["sdar"] / "generate.py")

    def greedy(logits, temperature=1.0, top_k=0, top_p=1.0):  # [batch, block, vocab]
        probs = torch.softmax(logits, dim=-1)
        prob, token = probs.max(dim=-1)
        return token, prob

    gen.sample_with_temperature_topk_topp = greedy
    model = SDARForCausalLM.from_pretrained(
        folder, torch_dtype=torch.float32, attn_implementation="sdpa"
    ).eval()
    config = json.loads((folder / "config.json").read_text())
    tok = json.loads((folder / "tokenizer.json").read_text())
    ids = {t["content"]: t["id"] for t in tok["added_tokens"]}
    mask_id, stops = ids["<|MASK|>"], [ids["<|im_end|>"], ids["<|endoftext|>"]]

    def run(x: torch.Tensor, how: dict):
        out = gen.block_diffusion_generate(
            model,
            {"input_ids": x},
            mask_id,
            gen_length=GEN,
            block_length=config["block_size"],
            denoising_steps=how["steps"],
            remasking_strategy="low_confidence_dynamic",
            confidence_threshold=how["threshold"],
            stopping_criteria_idx=stops,
        )
        return out, None

    return model, run


def fast_dllm_v2_runner(src: dict, folder: Path):
    sys.path.insert(0, str(src["fast_dllm_v2"]))
    from fast_dllm_v2.configuration import Fast_dLLM_QwenConfig
    from fast_dllm_v2.modeling import Fast_dLLM_QwenForCausalLM

    config = Fast_dLLM_QwenConfig.from_pretrained(folder)
    model = Fast_dLLM_QwenForCausalLM.from_pretrained(folder, config=config, torch_dtype=torch.float32).eval()
    tok = json.loads((folder / "tokenizer.json").read_text())
    ids = {t["content"]: t["id"] for t in tok["added_tokens"]}

    def run(x: torch.Tensor, how: dict):
        out = model.generate(
            x,
            max_new_tokens=GEN,
            mask_id=ids["|<MASK>|"],
            threshold=how["threshold"],
            small_block_size=8,
            block_size=32,
            stop_token=ids["<|im_end|>"],
            use_block_cache=how.get("block_cache", False),
        )
        return out[0] if isinstance(out, tuple) else out, None

    return model, run


def bd3lm_runner(src: dict, folder: Path):
    root = src["dllm"] / "dllm"
    for name, path in (("dllm", root), ("dllm.core", root / "core")):  # skip the heavy __init__s
        _package(name, path)
    from dllm.core.samplers.bd3lm import BD3LMSampler, BD3LMSamplerConfig
    from transformers import AutoTokenizer

    models = load_file("a2d_qwen3", root / "pipelines" / "a2d" / "models" / "qwen3" / "modeling_qwen3.py")
    model = models.A2DQwen3LMHeadModel.from_pretrained(folder, torch_dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    sampler = BD3LMSampler(model=model, tokenizer=tokenizer)

    def run(x: torch.Tensor, how: dict):
        cfg = BD3LMSamplerConfig(steps=how["steps"], max_new_tokens=GEN, block_size=32, temperature=0.0)
        out = sampler.sample([x[0]], cfg, return_dict=False)
        return out, None

    return model, run


RUNNERS = {
    "llada": llada_runner,
    "dream": dream_runner,
    "sdar": sdar_runner,
    "fast_dllm_v2": fast_dllm_v2_runner,
    "bd3lm": bd3lm_runner,
}


def generate(root: Path, src: dict, families: list[str]) -> None:
    torch.set_num_threads(1)
    for family in families:
        folder = root / FOLDERS[family]
        model, run = RUNNERS[family](src, folder)
        with torch.no_grad():
            probe = model(torch.tensor([PROBE]), **_probe_kwargs(family)).logits[0, :, :8]
        cases = []
        for name, (ours, how) in CASES[family].items():
            for length in PROMPT_LENGTHS:
                x = torch.tensor([prompt(length)])
                out, nfe = run(copy.deepcopy(x), how)
                reply = _bd3lm_reply(out, length) if family == "bd3lm" else out[0, length:].tolist()
                cases.append({"name": name, "config": ours, "prompt_len": length, "reply": reply, "nfe": nfe})
                print(family, name, length, len(reply), nfe, flush=True)
        import transformers

        data = {
            "family": family,
            "generated_with": f"transformers {transformers.__version__}, torch {torch.__version__}",
            "checkpoint": {
                "decisive": DECISIVE[family],
                "probe_input": PROBE,
                "probe_logits": probe.tolist(),
            },
            "max_new_tokens": GEN,
            "cases": cases,
        }
        (HERE / f"{family}.json").write_text(json.dumps(data, indent=1) + "\n")


def _probe_kwargs(family: str) -> dict:
    """SDAR's model needs the block mask its generate passes; the others build their own."""
    if family != "sdar":
        return {}
    blocks = torch.arange(len(PROBE)) // 4
    return {"attention_mask": (blocks[None, :] <= blocks[:, None]).float()[None]}  # [1, L, L]


def _bd3lm_reply(out: torch.Tensor, length: int) -> list[int]:
    """dllm returns the prompt left-padded to whole blocks, then the reply."""
    padded = -(-length // 32) * 32
    return out[0, padded:].tolist()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("step", choices=["checkpoints", "generate"])
    parser.add_argument("root", type=Path, help="folder of the tiny checkpoints")
    for name in ("fast-dllm", "llada", "sdar", "dllm", "fast-dllm-v2"):
        parser.add_argument(f"--{name}", type=Path, help=f"checkout of the {name} code")
    parser.add_argument("--families", nargs="*", default=list(CASES))
    args = parser.parse_args()
    if args.step == "checkpoints":
        write_checkpoints(args.root)
        return
    src = {k: getattr(args, k) for k in ("fast_dllm", "llada", "sdar", "dllm", "fast_dllm_v2")}
    generate(args.root, src, args.families)


if __name__ == "__main__":
    main()
