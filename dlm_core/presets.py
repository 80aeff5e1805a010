"""Named speed/quality trade-offs of the diffusion sampler: the one list every caller checks against.

Kept free of torch, so the command line can offer the names without loading the model code.
"""

from __future__ import annotations

# A mild repetition penalty in every preset: without it the bundled model sometimes says the same
# sentence again and again ("I don't know. I don't know."), in 6 of 52 test prompts; with 1.2, none.
PRESETS = {
    "fastest": {"threshold": 0.7, "max_steps_per_block": 4, "repetition_penalty": 1.2},
    "balanced": {"threshold": 0.9, "max_steps_per_block": 16, "repetition_penalty": 1.2},
    "quality": {"threshold": 0.97, "max_steps_per_block": 32, "repetition_penalty": 1.2},
}
PRESET_NAMES = tuple(PRESETS)  # from fastest to best quality


def check_preset(name: str) -> str:
    """`name` if it names a preset, else a ValueError that lists them."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return name
