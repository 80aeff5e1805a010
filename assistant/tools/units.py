"""The `convert_units` tool: everyday measures, named the way people say them.

Each unit is data: its kind (length, mass, ...) and how it maps to the kind's base unit, as
`base = value * factor + offset` (the offset is only for temperatures). Names are looked up after light
normalising, so "feet", "ft", "Miles per hour", "degrees Fahrenheit", "kilos" and "lbs." all resolve.
Volumes are US customary; "ton" is the US short ton (2000 lb) and "tonne" the metric one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from assistant.tools.numbers import MEASURE_DIGITS, say, tidy

SPOKEN_DIGITS = 4  # significant digits of a fraction in the spoken text; "result" keeps MEASURE_DIGITS
MAX_UNIT_CHARS = 40  # longer than any unit name, short enough to quote back in an error


@dataclass(frozen=True)
class Unit:
    """One unit of measure."""

    name: str  # canonical singular, as spoken: "foot", "degree Celsius", "mile per hour"
    plural: str  # "feet", "degrees Celsius", "miles per hour"
    kind: str  # "length", "mass", ...: only units of one kind convert into each other
    factor: float  # base units in one of this unit (base: m, kg, l, K, s, m/s, m², byte)
    offset: float = 0.0  # base units added after scaling; non-zero only for °C and °F


# (name, plural, factor, aliases) per kind; aliases are comma-separated, lower case as _normalise leaves them.
_TABLE = {
    "length": [
        ("millimeter", "millimeters", 0.001, "mm, millimetre"),
        ("centimeter", "centimeters", 0.01, "cm, centimetre"),
        ("meter", "meters", 1.0, "m, metre"),
        ("kilometer", "kilometers", 1000.0, "km, kilometre, kms, klick"),
        ("inch", "inches", 0.0254, "in"),
        ("foot", "feet", 0.3048, "ft"),
        ("yard", "yards", 0.9144, "yd, yds"),
        ("mile", "miles", 1609.344, "mi"),
        ("nautical mile", "nautical miles", 1852.0, "nmi"),
    ],
    "mass": [
        ("milligram", "milligrams", 1e-6, "mg, milligramme"),
        ("gram", "grams", 0.001, "g, gramme, gm"),
        ("kilogram", "kilograms", 1.0, "kg, kgs, kilo, kilogramme"),
        ("ounce", "ounces", 0.028349523125, "oz"),
        ("pound", "pounds", 0.45359237, "lb, lbs"),
        ("stone", "stone", 6.35029318, "st, stones"),
        ("US ton", "US tons", 907.18474, "ton, short ton"),
        ("metric ton", "metric tons", 1000.0, "tonne, t"),
        ("long ton", "long tons", 1016.0469088, "imperial ton"),
    ],
    "volume": [
        ("milliliter", "milliliters", 0.001, "ml, millilitre, cc"),
        ("liter", "liters", 1.0, "l, litre, ltr"),
        ("teaspoon", "teaspoons", 0.00492892159375, "tsp"),
        ("tablespoon", "tablespoons", 0.01478676478125, "tbsp, tbs"),
        ("fluid ounce", "fluid ounces", 0.0295735295625, "fl oz, floz"),
        ("cup", "cups", 0.2365882365, ""),
        ("pint", "pints", 0.473176473, "pt"),
        ("quart", "quarts", 0.946352946, "qt"),
        ("gallon", "gallons", 3.785411784, "gal"),
    ],
    "time": [
        ("millisecond", "milliseconds", 0.001, "ms"),
        ("second", "seconds", 1.0, "s, sec, secs"),
        ("minute", "minutes", 60.0, "min, mins"),
        ("hour", "hours", 3600.0, "h, hr, hrs"),
        ("day", "days", 86400.0, "d"),
        ("week", "weeks", 604800.0, "wk, wks"),
        ("month", "months", 2628000.0, "mo"),  # a twelfth of a year
        ("year", "years", 31536000.0, "yr, yrs"),  # 365 days, as people count them
    ],
    "speed": [
        ("meter per second", "meters per second", 1.0, "m/s, mps, metre per second"),
        (
            "kilometer per hour",
            "kilometers per hour",
            1 / 3.6,
            "km/h, kph, kmh, km/hr, km per hour, kilometre per hour",
        ),
        ("mile per hour", "miles per hour", 0.44704, "mph, mi/h"),
        ("foot per second", "feet per second", 0.3048, "ft/s, fps"),
        ("knot", "knots", 1852 / 3600, "kn, kt, kts"),
    ],
    "area": [
        ("square centimeter", "square centimeters", 1e-4, "cm2, square cm, square centimetre"),
        ("square meter", "square meters", 1.0, "m2, square m, square metre"),
        ("square kilometer", "square kilometers", 1e6, "km2, square km, square kilometre"),
        ("square inch", "square inches", 0.00064516, "in2, square in"),
        ("square foot", "square feet", 0.09290304, "ft2, square ft"),
        ("square yard", "square yards", 0.83612736, "yd2, square yd"),
        ("square mile", "square miles", 2589988.110336, "mi2, square mi"),
        ("acre", "acres", 4046.8564224, "ac"),
        ("hectare", "hectares", 1e4, "ha"),
    ],
    "data": [
        ("bit", "bits", 0.125, ""),
        ("byte", "bytes", 1.0, "b"),
        ("kilobyte", "kilobytes", 1e3, "kb"),
        ("megabyte", "megabytes", 1e6, "mb"),
        ("gigabyte", "gigabytes", 1e9, "gb"),
        ("terabyte", "terabytes", 1e12, "tb"),
        ("kibibyte", "kibibytes", 1024.0, "kib"),
        ("mebibyte", "mebibytes", 1024.0**2, "mib"),
        ("gibibyte", "gibibytes", 1024.0**3, "gib"),
        ("tebibyte", "tebibytes", 1024.0**4, "tib"),
    ],
}
_TEMPERATURES = [  # kelvin is the base
    Unit("degree Celsius", "degrees Celsius", "temperature", 1.0, 273.15),
    Unit("degree Fahrenheit", "degrees Fahrenheit", "temperature", 5 / 9, 273.15 - 32 * 5 / 9),
    Unit("kelvin", "kelvin", "temperature", 1.0),
]
_TEMPERATURE_ALIASES = {"c, celsius, centigrade": 0, "f, fahrenheit": 1, "k, kelvin, kelvins": 2}


def _build() -> dict[str, Unit]:
    units = {}
    for kind, rows in _TABLE.items():
        for name, plural, factor, aliases in rows:
            unit = Unit(name, plural, kind, factor)
            for alias in [name.lower(), plural.lower(), *aliases.split(", ")]:
                if alias:
                    units[alias] = unit
    for aliases, index in _TEMPERATURE_ALIASES.items():
        for alias in aliases.split(", "):
            units[alias] = _TEMPERATURES[index]
    return units


UNITS: dict[str, Unit] = _build()  # every accepted (normalised) name -> its unit


def convert_units(value: float, from_unit: str, to_unit: str) -> dict:
    """The tool: {"value", "from_unit", "to_unit", "result", "text"}; ValueError for unknown or mismatched
    units, naming both."""
    if not math.isfinite(value):
        raise ValueError("the value must be a finite number")
    source, target = _ounces_by_volume(find_unit(from_unit), find_unit(to_unit))
    if source.kind != target.kind:
        raise ValueError(f"cannot convert {source.plural} ({source.kind}) to {target.plural} ({target.kind})")
    base = value * source.factor + source.offset
    if source.kind == "temperature" and base < 0:
        raise ValueError(f"{say(value)} {source.plural} is below absolute zero")
    result = tidy((base - target.offset) / target.factor, MEASURE_DIGITS)
    value = tidy(value, MEASURE_DIGITS)
    heard = tidy(result, SPOKEN_DIGITS)  # "2.205 pounds" is easier to follow aloud than "2.20462"
    return {
        "value": value,
        "from_unit": source.name,
        "to_unit": target.name,
        "result": result,
        "text": f"{say(value)} {_named(source, value)} is {say(heard)} {_named(target, heard)}",
    }


def find_unit(name: str) -> Unit:
    """The unit a spoken or written name means; ValueError if none."""
    key = _normalise(name[: MAX_UNIT_CHARS + 1])
    singular = " ".join(w[:-1] if len(w) > 3 and w.endswith("s") else w for w in key.split())
    for candidate in (key, key.removesuffix("s"), singular):
        if candidate in UNITS:
            return UNITS[candidate]
    raise ValueError(f"I don't know the unit {name[:MAX_UNIT_CHARS]!r}")


def _normalise(name: str) -> str:
    """Lower case, symbols spelled the way the table is: "°F" -> "f", "ft²" -> "ft2", "sq ft" -> "square
    ft", "feet squared" -> "square feet", "miles an hour" -> "miles per hour", "fl. oz." -> "fl oz"."""
    text = name.lower().replace("°", " ").replace("²", "2").replace("^2", "2").replace(".", " ")
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"^deg(?:ree)?s?\b ?", "", text)
    text = re.sub(r"\bsq\b", "square", text)
    text = re.sub(r"^(.+) squared$", r"square \1", text)
    return re.sub(r"\b(?:an?|each) (hour|second)$", r"per \1", text)


def _ounces_by_volume(source: Unit, target: Unit) -> tuple[Unit, Unit]:
    """ "8 ounces in cups" means fluid ounces: people say "ounce" for both."""
    fluid = UNITS["fluid ounce"]
    if source.name == "ounce" and target.kind == "volume":
        return fluid, target
    if target.name == "ounce" and source.kind == "volume":
        return source, fluid
    return source, target


def _named(unit: Unit, amount: float) -> str:
    return unit.name if amount == 1 else unit.plural
