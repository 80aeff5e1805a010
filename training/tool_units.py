"""Unit-conversion requests for the built-in convert_units tool, with simulated results.

The units are a subset of assistant/tools/units.py, with the same factors, so the simulated answers
equal the real tool's (tests/test_train.py checks them). A call names units canonically ("mile",
"degree Fahrenheit"); requests name them as people say them ("miles", "km", "Fahrenheit", "kilos").
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from training.tool_words import (
    ERROR_SHARE,
    MEASURE_DIGITS,
    SPOKEN_DIGITS,
    Ask,
    failed,
    pick,
    say,
    sentence,
    spoken_number,
    tidy,
    transcript,
)


@dataclass(frozen=True)
class Unit:
    name: str  # canonical, as the call names it and the tool answers it
    plural: str
    kind: str  # only units of one kind convert into each other
    factor: float  # base units in one of this unit
    offset: float = 0.0  # base units added after scaling (temperatures)
    said: tuple[tuple[str, str], ...] = ()  # other (singular, plural) names people use


_UNITS = [
    Unit("millimeter", "millimeters", "length", 0.001, said=(("mm", "mm"),)),
    Unit("centimeter", "centimeters", "length", 0.01, said=(("cm", "cm"), ("centimetre", "centimetres"))),
    Unit("meter", "meters", "length", 1.0, said=(("metre", "metres"),)),
    Unit("kilometer", "kilometers", "length", 1000.0, said=(("km", "km"), ("kilometre", "kilometres"))),
    Unit("inch", "inches", "length", 0.0254),
    Unit("foot", "feet", "length", 0.3048),
    Unit("yard", "yards", "length", 0.9144),
    Unit("mile", "miles", "length", 1609.344),
    Unit("gram", "grams", "mass", 0.001, said=(("g", "g"),)),
    Unit("kilogram", "kilograms", "mass", 1.0, said=(("kilo", "kilos"), ("kg", "kg"))),
    Unit("ounce", "ounces", "mass", 0.028349523125, said=(("oz", "oz"),)),
    Unit("pound", "pounds", "mass", 0.45359237, said=(("lb", "lbs"),)),
    Unit("stone", "stone", "mass", 6.35029318),
    Unit("milliliter", "milliliters", "volume", 0.001, said=(("ml", "ml"), ("millilitre", "millilitres"))),
    Unit("liter", "liters", "volume", 1.0, said=(("litre", "litres"),)),
    Unit("teaspoon", "teaspoons", "volume", 0.00492892159375),
    Unit("tablespoon", "tablespoons", "volume", 0.01478676478125),
    Unit("fluid ounce", "fluid ounces", "volume", 0.0295735295625),
    Unit("cup", "cups", "volume", 0.2365882365),
    Unit("pint", "pints", "volume", 0.473176473),
    Unit("gallon", "gallons", "volume", 3.785411784),
    Unit("second", "seconds", "time", 1.0),
    Unit("minute", "minutes", "time", 60.0),
    Unit("hour", "hours", "time", 3600.0),
    Unit("day", "days", "time", 86400.0),
    Unit("week", "weeks", "time", 604800.0),
    Unit("year", "years", "time", 31536000.0),
    Unit("meter per second", "meters per second", "speed", 1.0),
    Unit("kilometer per hour", "kilometers per hour", "speed", 1 / 3.6, said=(("km/h", "km/h"),)),
    Unit("mile per hour", "miles per hour", "speed", 0.44704, said=(("mph", "mph"),)),
    Unit("knot", "knots", "speed", 1852 / 3600),
    Unit("square meter", "square meters", "area", 1.0),
    Unit("square foot", "square feet", "area", 0.09290304),
    Unit("acre", "acres", "area", 4046.8564224),
    Unit("hectare", "hectares", "area", 1e4),
    Unit("kilobyte", "kilobytes", "data", 1e3),
    Unit("megabyte", "megabytes", "data", 1e6),
    Unit("gigabyte", "gigabytes", "data", 1e9),
    Unit("terabyte", "terabytes", "data", 1e12),
    Unit(
        "degree Celsius",
        "degrees Celsius",
        "temperature",
        1.0,
        273.15,
        (("Celsius", "Celsius"), ("degree C", "degrees C")),
    ),
    Unit(
        "degree Fahrenheit",
        "degrees Fahrenheit",
        "temperature",
        5 / 9,
        273.15 - 32 * 5 / 9,
        (("Fahrenheit", "Fahrenheit"), ("degree F", "degrees F")),
    ),
    Unit("kelvin", "kelvin", "temperature", 1.0),
]
UNITS = {u.name: u for u in _UNITS}


def _pairs(text: str) -> list[tuple[str, str]]:
    """ "mile > kilometer, foot > meter" -> [("mile", "kilometer"), ("foot", "meter")]."""
    return [tuple(pair.strip().split(" > ")) for pair in text.split(",")]


# Conversions people ask for; a random pair of one kind would ask "how many terabytes in 3 bits".
PAIRS = _pairs(
    """mile > kilometer, kilometer > mile, foot > meter, meter > foot, inch > centimeter, centimeter > inch,
    yard > meter, mile > foot, foot > inch, meter > centimeter, millimeter > inch, kilometer > meter,
    pound > kilogram, kilogram > pound, ounce > gram, gram > ounce, stone > kilogram, kilogram > stone,
    stone > pound, kilogram > gram, cup > milliliter, liter > gallon, gallon > liter, teaspoon > milliliter,
    tablespoon > teaspoon, pint > liter, fluid ounce > milliliter, liter > cup, liter > milliliter,
    hour > minute, day > hour, week > day, minute > second, year > day, hour > second,
    mile per hour > kilometer per hour, kilometer per hour > mile per hour, knot > kilometer per hour,
    meter per second > kilometer per hour, acre > square meter, hectare > acre, square foot > square meter,
    square meter > square foot, gigabyte > megabyte, terabyte > gigabyte, megabyte > kilobyte"""
)
TEMPERATURE_PAIRS = _pairs(
    "degree Celsius > degree Fahrenheit, degree Fahrenheit > degree Celsius, degree Celsius > kelvin"
)
MISMATCHED = _pairs(  # the tool refuses these: different kinds of measure
    """cup > gram, gram > cup, liter > kilogram, kilogram > liter, mile > hour, tablespoon > gram,
    pound > liter, foot > pound, hour > meter"""
)
CONVERT_ASKS = [
    "How many {to} are in {v} {src}", "How many {to} in {v} {src}", "Convert {v} {src} to {to}",
    "What's {v} {src} in {to}", "{v} {src} in {to}", "How much is {v} {src} in {to}",
    "What is {v} {src} in {to}",
    "Can you convert {v} {src} into {to}", "{v} {src} to {to}", "How many {to} is {v} {src}",
]  # fmt: skip
TEMPERATURE_ASKS = [
    "What's {v} {src} in {to}", "Convert {v} {src} to {to}", "{v} {src} in {to}", "What is {v} {src} in {to}",
    "How much is {v} {src} in {to}", "What's {v} {src} in {to} please", "Change {v} {src} to {to}",
]  # fmt: skip
CONVERT_REPLIES = [
    "{Text}.",
    "{Text}.",
    "{Text}.",
    "That's {heard} {to}.",
    "It's {heard} {to}.",
    "It's about {heard} {to}.",
]


def named(unit: Unit, amount: float) -> str:
    return unit.name if amount == 1 else unit.plural


def convert_result(value: float, src: Unit, dst: Unit) -> dict:
    """convert_units' answer (assistant/tools/units.py)."""
    base = value * src.factor + src.offset
    result = tidy((base - dst.offset) / dst.factor, MEASURE_DIGITS)
    value = tidy(value, MEASURE_DIGITS)
    heard = tidy(result, SPOKEN_DIGITS)
    text = f"{say(value)} {named(src, value)} is {say(heard)} {named(dst, heard)}"
    return {"value": value, "from_unit": src.name, "to_unit": dst.name, "result": result, "text": text}


def _said(unit: Unit, amount: float, rng: random.Random) -> str:
    names = [(unit.name, unit.plural), *unit.said] if unit.kind != "temperature" else list(unit.said)
    if unit.name == "kelvin":
        names = [("kelvin", "kelvin")]
    singular, plural = rng.choice(names)
    return singular if amount == 1 else plural


def _value(src: Unit, rng: random.Random) -> tuple[float, str]:
    """(value, as said)."""
    if src.kind == "temperature":
        v = rng.randint(-30, 110) if src.name != "kelvin" else rng.randint(200, 400)
        return v, (
            f"minus {spoken_number(-v, rng)}" if rng.random() < 0.5 else str(v)
        ) if v < 0 else spoken_number(v, rng)
    roll = rng.random()
    if roll < 0.25:
        return 1, rng.choice(["a", "one", "1"])
    if roll < 0.85:
        v = rng.randint(2, 100) if rng.random() < 0.8 else rng.randint(100, 1000)
        return v, spoken_number(v, rng)
    v = rng.randint(0, 20) + rng.choice([0.5, 0.25, 0.75, 0.2])
    return v, say(v)


def ask_convert(rng: random.Random, held: bool) -> Ask:
    mismatched = rng.random() < ERROR_SHARE
    temperature = not mismatched and rng.random() < 0.15
    src, dst = (
        UNITS[n]
        for n in rng.choice(MISMATCHED if mismatched else TEMPERATURE_PAIRS if temperature else PAIRS)
    )
    value, v = _value(src, rng)
    asks = TEMPERATURE_ASKS if temperature else CONVERT_ASKS
    user = transcript(
        pick(rng, asks, held).format(v=v, src=_said(src, value, rng), to=_said(dst, 2, rng)), rng
    )
    args = {"value": value, "from_unit": src.name, "to_unit": dst.name}
    if mismatched:
        error = f"Cannot convert {src.plural} ({src.kind}) to {dst.plural} ({dst.kind})."
        return Ask(user, "convert_units", args, {"error": error}, failed(error, rng))
    result = convert_result(value, src, dst)
    heard = tidy(result["result"], SPOKEN_DIGITS)
    text = result["text"]
    reply = rng.choice(CONVERT_REPLIES).format(
        Text=text[0].upper() + text[1:], heard=say(heard), to=named(dst, heard)
    )
    return Ask(user, "convert_units", args, result, sentence(reply))
