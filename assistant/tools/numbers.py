"""Numbers as the tools hand them back: whole values as ints, others rounded to what a listener can use.

A result is read aloud, so "0.30000000000000004" and "5280.000000000001" are noise; rounding keeps every
whole digit and trims only the fraction.
"""

from __future__ import annotations

import math

RESULT_DIGITS = 10  # significant digits a calculation keeps
MEASURE_DIGITS = 6  # significant digits a unit conversion keeps: 1 kg is 2.20462 lb


def tidy(x: float, digits: int = RESULT_DIGITS) -> int | float:
    """`x` as an int when whole, else rounded to `digits` significant digits (never its whole part)."""
    if isinstance(x, int):
        return x
    if not math.isfinite(x):
        raise ValueError("the result is too large to say")
    if x != 0:
        x = round(x, max(digits - 1 - math.floor(math.log10(abs(x))), 0))
    return int(x) if x.is_integer() else x


def say(x: float) -> str:
    """A tidied number as text to speak: "72", "0.3", "1234.567" (no exponent for everyday sizes)."""
    x = tidy(x)
    if isinstance(x, int):
        return str(x)
    if abs(x) >= 1e-4:
        return f"{x:.12f}".rstrip("0").rstrip(".")
    return repr(x)
