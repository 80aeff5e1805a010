"""Named speed/quality trade-offs of the diffusion sampler: the one list every caller checks against.

Kept free of torch, so the command line can offer the names without loading the model code.
"""

from __future__ import annotations

# No repetition penalty: the data-v1 model needed 1.2 against saying a sentence again and again, but
# a tool call repeats its markup ("tool_call" opens and closes it) and digits, and with 1.2 the data-v3
# model broke its own calls ('"9 /  3tool_call>'); it does not loop without it (tests/test_default_model.py).
PRESETS = {
    "fastest": {"threshold": 0.7, "max_steps_per_block": 4, "repetition_penalty": 1.0},
    "balanced": {"threshold": 0.9, "max_steps_per_block": 16, "repetition_penalty": 1.0},
    "quality": {"threshold": 0.97, "max_steps_per_block": 32, "repetition_penalty": 1.0},
}
PRESET_NAMES = tuple(PRESETS)  # from fastest to best quality


# Not a preset but the choice of none: the loaded family's own default decoding (`SamplerConfig.for_family`:
# its authors' decoder for real checkpoints, "balanced" for the bundled model).
AUTO = "auto"
KNOB_PRESETS = (AUTO, *PRESET_NAMES)  # what a user may pick: auto or a named preset


def check_knob_preset(name: str) -> str:
    """`name` if a user may pick it (auto or a preset), else a ValueError that lists them."""
    if name != AUTO:
        check_preset(name)
    return name


def check_preset(name: str) -> str:
    """`name` if it names a preset, else a ValueError that lists them."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return name


# Faithful decoding: the published decoder each family's authors ship, with their documented
# defaults (`SamplerConfig.for_family`). steps None means one step per reply token (max_new_tokens),
# the setting every author's example uses; SDAR's steps are per block.
DECODINGS = ("llada", "fast_dllm", "dream", "fast_dllm_dream", "sdar", "fast_dllm_v2", "bd3lm")
FAMILY_DECODING = {
    # ML-GSAI/LLaDA generate.py: gen 128, block 32, steps = gen, low-confidence remasking
    "llada": {"decoding": "llada", "block_size": 32, "steps": None},
    # HKUNLP/Dream README: diffusion_generate(steps = max_new_tokens, alg="entropy"); top_k 50 is
    # what its generation config inherits from the model config under transformers 4.x
    "dream": {"decoding": "dream", "alg": "entropy", "steps": None, "top_k": 50},
    # JetAstra/SDAR README: block 4, 4 denoising steps, low_confidence_dynamic at 0.9
    "sdar": {"decoding": "sdar", "block_size": 4, "steps": 4, "threshold": 0.9},
    # Fast_dLLM_v2 model card: generate(small_block_size=8, threshold=0.9), block 32
    "fast_dllm_v2": {"decoding": "fast_dllm_v2", "block_size": 32, "sub_block_size": 8, "threshold": 0.9},
    # ZHZisZZ/dllm examples/a2d/bd3lm/sample.py: block 32, steps = max_new_tokens, low_confidence
    "bd3lm": {"decoding": "bd3lm", "block_size": 32, "steps": None},
}
# NVlabs/Fast-dLLM for LLaDA and for Dream: threshold 0.9 with the dual cache, one option away
FAST_DLLM = {"decoding": "fast_dllm", "block_size": 32, "threshold": 0.9, "cache": "dual"}
FAST_DLLM_DREAM = {**FAST_DLLM, "decoding": "fast_dllm_dream", "alg": "confidence_threshold"}
