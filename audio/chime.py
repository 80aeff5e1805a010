"""A short two-note chime: what a timer sounds like before the assistant says which one fired.

x = chime(24000)   # float32 [n], ~0.45 s, peak CHIME_LEVEL
"""

from __future__ import annotations

import numpy as np

NOTES_HZ = (880.0, 1318.5)  # A5 then E6: a rising fifth reads as "attention", not as an alarm
NOTE_S = 0.18
GAP_S = 0.04
TAIL_S = 0.12  # silence before the spoken announcement
CHIME_LEVEL = 0.35
FADE_S = 0.01  # raised-cosine edges: no clicks


def chime(rate: int) -> np.ndarray:
    if rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    parts = []
    for hz in NOTES_HZ:
        t = np.arange(int(NOTE_S * rate)) / rate
        tone = np.sin(2 * np.pi * hz * t) * np.exp(-3.0 * t / NOTE_S)  # a bell-like decay
        fade = min(int(FADE_S * rate), len(t) // 2)
        edge = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, fade))
        tone[:fade] *= edge
        tone[-fade:] *= edge[::-1]
        parts += [tone, np.zeros(int(GAP_S * rate))]
    parts.append(np.zeros(int(TAIL_S * rate)))
    return (CHIME_LEVEL * np.concatenate(parts)).astype(np.float32)
