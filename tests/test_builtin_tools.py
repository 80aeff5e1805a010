"""The built-in tools: a calculator that cannot be made to run code, conversions against known values,
the clock at a fixed moment, timers on a fake clock, and a Toolbox that answers every bad call with an
error the LM can say."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest

from assistant.tools import BUILTIN_TOOLS, Timers, Toolbox, announcement
from assistant.tools.arithmetic import calculate
from assistant.tools.clock import get_time
from assistant.tools.timers import MAX_TIMERS, say_duration
from assistant.tools.units import convert_units

MOMENT = datetime(2026, 12, 3, 9, 41, 7, tzinfo=timezone.utc)  # a Thursday


class FakeClock:
    """Monotonic and wall time that move only when the test says so."""

    def __init__(self, wall: datetime = MOMENT):
        self.t = 1000.0
        self.start = wall

    def __call__(self) -> float:
        return self.t

    def wall(self) -> datetime:
        return self.start + timedelta(seconds=self.t - 1000.0)

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def timers(clock):
    return Timers(clock=clock, wall=clock.wall)


# --- calculate ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression, result",
    [
        ("9 * 8", 72),
        ("2 + 3 * 4", 14),
        ("(2 + 3) * 4", 20),
        ("2 ** 3 ** 2", 512),
        ("-3 ** 2", -9),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("10 % 3", 1),
        ("0.1 + 0.2", 0.3),
        ("6 / 3", 2),
        ("9 times 8", 72),
        ("9 x 8", 72),
        ("9 × 8", 72),
        ("100 ÷ 8", 12.5),
        ("10 plus 5 minus 3", 12),
        ("144 divided by 12", 12),
        ("3 over 4", 0.75),
        ("12 squared", 144),
        ("2 to the power of 10", 1024),
        ("2^10", 1024),
        ("15% of 80", 12),
        ("15 percent of 80", 12),
        ("sqrt(16)", 4),
        ("square root of 2", 1.414213562),
        ("abs(-5) + max(1, 7, 3) - min(4, 2)", 10),
        ("round(2.567, 2)", 2.57),
        ("What is 1,000 plus 1?", 1001),
        ("2 * pi", 6.283185307),
    ],
)
def test_calculate(expression, result):
    answer = calculate(expression)
    assert answer["result"] == result and type(answer["result"]) is type(result)


def test_calculate_says_it_in_words():
    assert calculate("9*8")["text"] == "9 times 8 is 72"
    assert calculate("15% of 80")["text"] == "15 percent of 80 is 12"
    assert calculate("(2 + 3) * 4")["text"] == "(2 plus 3) times 4 is 20"


@pytest.mark.parametrize(
    "expression, message",
    [
        ("1 / 0", "divide by zero"),
        ("5 % 0", "divide by zero"),
        ("sqrt(-1)", "negative"),
        ("(-8) ** (1/3)", "not a real number"),
        ("9**9**9", "too large"),
        ("2**100000", "too large"),
        ("10**99 * 10**99", "too large"),
        ("1e308 * 10", "too large"),
        ("2 +", "could not read"),
        ("", "no expression"),
        ("1" * 201, "longer than"),
    ],
)
def test_calculate_errors(expression, message):
    with pytest.raises(ValueError, match=message):
        calculate(expression)


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os')",
        "__import__('os').system('true')",
        "().__class__.__bases__",
        "open('/etc/passwd')",
        "x + 1",
        "'a' * 3",
        "[1, 2]",
        "lambda: 1",
        "1 if 1 else 2",
        "1 < 2",
        "1 << 1000",
        "True + 1",
        "sqrt(x=4)",
        "max(*[1, 2])",
    ],
)
def test_calculate_refuses_anything_but_arithmetic(expression):
    with pytest.raises(ValueError, match="not arithmetic|could not read|named arguments"):
        calculate(expression)


# --- convert_units ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, source, target, result",
    [
        (1, "mile", "feet", 5280),
        (100, "C", "F", 212),
        (-40, "degrees fahrenheit", "°C", -40),
        (0, "celsius", "kelvin", 273.15),
        (1, "kg", "lbs", 2.20462),
        (2, "kilos", "pounds", 4.40925),
        (1, "inch", "cm", 2.54),
        (1, "nautical mile", "m", 1852),
        (1, "stone", "lb", 14),
        (1, "tonne", "kg", 1000),
        (1, "gallon", "quarts", 4),
        (1, "cup", "tablespoons", 16),
        (1, "tablespoon", "tsp", 3),
        (8, "fl oz", "cups", 1),
        (8, "ounces", "cup", 1),  # "ounce" next to a volume means fluid ounce
        (1, "day", "hours", 24),
        (1, "week", "days", 7),
        (60, "miles per hour", "km/h", 96.5606),
        (1, "knot", "kph", 1.852),
        (1, "acre", "sq ft", 43560),
        (1, "hectare", "m²", 10000),
        (1, "GB", "MB", 1000),
        (1, "byte", "bits", 8),
    ],
)
def test_convert_units(value, source, target, result):
    assert convert_units(value, source, target)["result"] == pytest.approx(result)


def test_convert_units_names_and_text():
    answer = convert_units(100, "degrees celsius", "fahrenheit")
    assert answer == {
        "value": 100,
        "from_unit": "degree Celsius",
        "to_unit": "degree Fahrenheit",
        "result": 212,
        "text": "100 degrees Celsius is 212 degrees Fahrenheit",
    }
    assert convert_units(1, "kg", "lb")["text"] == "1 kilogram is 2.205 pounds"


def test_convert_units_errors():
    with pytest.raises(ValueError, match="kilograms.*feet"):
        convert_units(1, "kg", "feet")
    with pytest.raises(ValueError, match="parsec"):
        convert_units(1, "parsec", "m")
    with pytest.raises(ValueError, match="absolute zero"):
        convert_units(-300, "C", "F")
    with pytest.raises(ValueError, match="finite"):
        convert_units(float("inf"), "m", "km")


# --- get_time -----------------------------------------------------------------------------------------


def test_get_time_at_a_fixed_moment():
    assert get_time(MOMENT) == {
        "time": "9:41 AM",
        "date": "Thursday, December 3, 2026",
        "weekday": "Thursday",
        "timezone": "UTC",
        "iso": "2026-12-03T09:41:07+00:00",
        "text": "It's 9:41 AM on Thursday, December 3.",
    }
    evening = datetime(2026, 12, 3, 0, 5, tzinfo=timezone(timedelta(hours=-5), "EST"))
    assert get_time(evening)["time"] == "12:05 AM" and get_time(evening)["timezone"] == "EST"


def test_get_time_defaults_to_the_system_clock():
    assert get_time()["iso"][:4].isdigit()


# --- timers -------------------------------------------------------------------------------------------


def test_timers_fire_in_order_and_leave(timers, clock):
    ten = timers.set(minutes=10)
    pasta = timers.set(minutes=1, seconds=30, label="pasta")
    assert (ten.id, pasta.id) == ("timer_1", "timer_2")
    assert [t.id for t in timers.list()] == ["timer_2", "timer_1"]
    assert timers.next_deadline() == pasta.fires_at == clock.t + 90
    assert timers.pop_due() == []
    clock.advance(600)
    assert timers.pop_due() == [pasta, ten]
    assert timers.list() == [] and timers.next_deadline() is None


def test_announcements():
    timers = Timers(clock=FakeClock(), wall=FakeClock().wall)
    assert announcement(timers.set(minutes=10)) == "Your 10 minute timer is done."
    assert announcement(timers.set(minutes=1, seconds=30)) == "Your 1 minute 30 second timer is done."
    assert announcement(timers.set(minutes=5, label="call mum")) == "Reminder: call mum."
    assert announcement(timers.set(minutes=5, label="pasta timer")) == "Your pasta timer is done."
    assert announcement(timers.set(at="10:00")) == "It's 10:00 AM. Your alarm is going off."


def test_say_duration():
    assert say_duration(90) == "1 minute 30 seconds"
    assert say_duration(3600 + 300) == "1 hour 5 minutes"
    assert say_duration(600, adjective=True) == "10 minute"


def test_at_is_the_next_occurrence(timers, clock):
    later = timers.set(at="10:00")
    assert later.fires_at_wall == MOMENT.replace(hour=10, minute=0, second=0)
    assert later.fires_at == clock.t + later.seconds
    tomorrow = timers.set(at="09:00")  # already past today
    assert tomorrow.fires_at_wall == MOMENT.replace(day=4, hour=9, minute=0, second=0)
    assert timers.set(at="7:30 pm").fires_at_wall.hour == 19
    for bad in ("25:00", "9:75", "soon", "7"):
        with pytest.raises(ValueError, match="HH:MM"):
            timers.set(at=bad)


def test_set_limits(timers):
    with pytest.raises(ValueError, match="24 hours"):
        timers.set(hours=24, seconds=1)
    with pytest.raises(ValueError, match="negative"):
        timers.set(minutes=-1)
    with pytest.raises(ValueError, match="at least"):
        timers.set(seconds=0)
    with pytest.raises(ValueError, match="not both"):
        timers.set(minutes=1, at="10:00")
    with pytest.raises(ValueError, match="how long"):
        timers.set(label="pasta")
    for _ in range(MAX_TIMERS):
        timers.set(minutes=1)
    with pytest.raises(ValueError, match="cancel one"):
        timers.set(minutes=1)


def test_cancel(timers):
    with pytest.raises(ValueError, match="no timers"):
        timers.cancel()
    only = timers.set(minutes=10)
    assert timers.cancel() == [only]  # the only one needs no name
    ten, pasta, _ = timers.set(minutes=10), timers.set(minutes=3, label="Pasta"), timers.set(minutes=4)
    with pytest.raises(ValueError, match="which timer.*Pasta.*10 minute"):
        timers.cancel()
    assert timers.cancel(label="the pasta timer") == [pasta]
    assert timers.cancel(label="10 minute") == [ten]
    with pytest.raises(ValueError, match="no timer called 'eggs'"):
        timers.cancel(label="eggs")
    with pytest.raises(ValueError, match="no timer 'timer_1'"):
        timers.cancel(id="timer_1")  # cancelled already; ids are not reused
    assert [t.id for t in timers.cancel(id="4")] == ["timer_4"]  # "4" and "timer 4" are heard for timer_4
    timers.set(minutes=1), timers.set(minutes=2)
    assert len(timers.cancel(all=True)) == 2 and timers.list() == []


# --- the Toolbox --------------------------------------------------------------------------------------


def test_definitions_are_openai_functions():
    toolbox = Toolbox()
    names = [d["name"] for d in toolbox.definitions()]
    assert names == ["get_time", "calculate", "convert_units", "set_timer", "list_timers", "cancel_timer"]
    assert all(d["type"] == "function" and d["parameters"]["type"] == "object" for d in BUILTIN_TOOLS)
    assert all(toolbox.has(n) for n in names) and not toolbox.has("eval")
    toolbox.definitions()[0]["name"] = "changed"
    assert toolbox.definitions()[0]["name"] == "get_time"


def test_toolbox_runs_each_tool(clock):
    toolbox = Toolbox(Timers(clock=clock, wall=clock.wall), now=clock.wall)

    def run(name, **arguments):
        return json.loads(toolbox.run(name, json.dumps(arguments)))

    assert run("get_time")["time"] == "9:41 AM"
    assert run("calculate", expression="9 times 8")["text"] == "9 times 8 is 72"
    assert run("convert_units", value=1, from_unit="mile", to_unit="feet")["result"] == 5280
    timer = run("set_timer", minutes=10, label=None)
    assert timer == {
        "id": "timer_1",
        "label": "",
        "seconds": 600,
        "fires_at": "2026-12-03T09:51:07+00:00",
        "text": "Timer set for 10 minutes.",
    }
    clock.advance(61)
    listed = run("list_timers")
    assert listed["timers"][0]["seconds_left"] == 539 and "8 minutes 59 seconds left" in listed["text"]
    assert run("cancel_timer", id="timer_1")["cancelled"] == ["timer_1"]


@pytest.mark.parametrize(
    "name, arguments, message",
    [
        ("eval", "{}", "no tool called 'eval'"),
        ("calculate", "not json", "not valid JSON"),
        ("calculate", "[1]", "JSON object"),
        ("calculate", "[" * 1500, "not valid JSON"),
        ("calculate", "{}", "needs 'expression'"),
        ("calculate", '{"expr": "1"}', "no parameter 'expr'"),
        ("calculate", '{"expression": 5}', "'expression' argument must be a string"),
        ("calculate", '{"expression": "1/0"}', "divide by zero"),
        (
            "convert_units",
            '{"value": "5", "from_unit": "m", "to_unit": "km"}',
            "'value' argument must be a number",
        ),
        (
            "convert_units",
            '{"value": true, "from_unit": "m", "to_unit": "km"}',
            "'value' argument must be a number",
        ),
        ("convert_units", '{"value": NaN, "from_unit": "m", "to_unit": "km"}', "not finite"),
        ("convert_units", '{"value": 1e300, "from_unit": "m", "to_unit": "km"}', "beyond"),
        ("convert_units", '{"value": 1, "from_unit": "kg", "to_unit": "m"}', "kilograms.*meters"),
        ("set_timer", '{"minutes": 10, "all": true}', "no parameter 'all'"),
        ("set_timer", '{"hours": 30}', "24 hours"),
        ("cancel_timer", '{"all": "yes"}', "'all' argument must be true or false"),
        ("cancel_timer", "{}", "no timers"),
        ("get_time", '{"zone": "UTC"}', "takes no arguments"),
    ],
)
def test_toolbox_errors_are_json(name, arguments, message):
    answer = json.loads(Toolbox().run(name, arguments))
    assert list(answer) == ["error"]
    assert re.search(message, answer["error"]), answer["error"]
    assert answer["error"][0].isupper() and answer["error"].endswith((".", "?"))


def test_a_bug_in_a_tool_is_an_error_not_a_crash(monkeypatch):
    toolbox = Toolbox()
    monkeypatch.setitem(toolbox._tools, "get_time", lambda: 1 / 0)
    assert json.loads(toolbox.run("get_time", "")) == {"error": "The get_time tool failed."}
