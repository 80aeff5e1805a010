"""Timers, alarms and reminders of one conversation, and the three tools that drive them.

`Timers` only keeps state and answers "what is due": it never sleeps or schedules. The session's
`TimerWatch` (assistant/timer_watch.py) asks `next_deadline()`, waits on the event loop, then takes what
fired with `pop_due()` and has `announcement(timer)` spoken. Deadlines are monotonic, so a wall-clock
jump (NTP, DST) cannot fire a timer early or late; the wall time is kept only to say and list them.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from assistant.tools.clock import local_now, say_clock
from assistant.tools.numbers import tidy

MAX_TIMER_SECONDS = 24 * 3600  # a day: longer plans belong in a calendar
MIN_TIMER_SECONDS = 1
MAX_TIMERS = 20  # at once, per conversation
MAX_LABEL_CHARS = 60
_AT = re.compile(r"^(\d{1,2})(?::(\d{2}))?\s*([ap])?\.?\s*(?:m\.?)?$")  # "07:30", "7:30", "7:30 pm", "7 pm"
_FILLER = re.compile(r"^(?:the|my)\s+|\s+(?:timer|alarm|reminder)$")  # "the pasta timer" is "pasta"


@dataclass
class Timer:
    """One running timer, alarm or reminder."""

    id: str  # "timer_1", "timer_2", ...: never reused within a conversation
    label: str  # what it is for ("pasta", "call mum"); "" when none was given
    seconds: float  # its duration: as asked, or from setting it until the clock time asked for
    fires_at: float  # when it fires, in the Timers clock's (monotonic) seconds
    fires_at_wall: datetime  # the same moment in local time, to say and list
    at: str | None = None  # the clock time asked for ("07:30"): an alarm; None for a duration


class Timers:
    """The timers of one conversation; `clock` (monotonic seconds) and `wall` (aware local datetime)
    are injectable so tests run on a fake clock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, wall: Callable[[], datetime] = local_now):
        self.clock = clock  # monotonic seconds; a test may swap in a fake one
        self._wall = wall
        self._timers: list[Timer] = []  # in the order they were set
        self._made = 0  # timers ever set: the next id's number

    def set(self, seconds=None, minutes=None, hours=None, at=None, label=None) -> Timer:
        """Start a timer after a duration (the parts add up) or at the next `at` ("HH:MM", 24-hour)."""
        label = _clean_label(label)
        parts = [p for p in (seconds, minutes, hours) if p is not None]
        if at is not None and parts:
            raise ValueError("give either a duration or a clock time for the timer, not both")
        if at is None and not parts:
            raise ValueError("say how long the timer should run, or the clock time it should go off")
        if len(self._timers) >= MAX_TIMERS:
            raise ValueError(f"there are already {MAX_TIMERS} timers; cancel one first")
        wall = self._wall()
        if at is not None:
            fires_at_wall = next_occurrence(at, wall)
            duration = (fires_at_wall - wall).total_seconds()
        else:
            duration = _duration(seconds or 0, minutes or 0, hours or 0, any(p < 0 for p in parts))
            fires_at_wall = wall + timedelta(seconds=duration)
        self._made += 1
        timer = Timer(f"timer_{self._made}", label, duration, self.clock() + duration, fires_at_wall, at)
        self._timers.append(timer)
        return timer

    def list(self) -> list[Timer]:
        """Running timers, soonest first."""
        return sorted(self._timers, key=_firing_order)

    def seconds_left(self, timer: Timer) -> float:
        return max(timer.fires_at - self.clock(), 0.0)

    def cancel(self, id: str | None = None, label: str | None = None, all: bool = False) -> list[Timer]:
        """Stop timers by id, by label (or spoken name, "10 minute"), every one, or the only one."""
        if not self._timers:
            raise ValueError("there are no timers to cancel")
        if all:
            chosen = list(self._timers)
        elif id is not None:
            chosen = [self._by_id(id)]
        elif label is not None:
            chosen = self._by_label(label)
        elif len(self._timers) == 1:
            chosen = list(self._timers)
        else:
            raise ValueError(f"which timer? There are {len(self._timers)}: {_titles(self.list())}")
        self._timers = [t for t in self._timers if t not in chosen]
        return sorted(chosen, key=_firing_order)

    def next_deadline(self) -> float | None:
        """When the soonest timer fires (clock seconds), or None when none is running."""
        return min((t.fires_at for t in self._timers), default=None)

    def seconds_to_next(self) -> float | None:
        """How long until the soonest timer fires (0 when it is due), or None when none is running."""
        deadline = self.next_deadline()
        return None if deadline is None else max(0.0, deadline - self.clock())

    def pop_due(self, now: float | None = None) -> list[Timer]:
        """The timers due by `now` (default: the clock), soonest first; they leave the list."""
        now = self.clock() if now is None else now
        due = sorted((t for t in self._timers if t.fires_at <= now), key=_firing_order)
        self._timers = [t for t in self._timers if t not in due]
        return due

    def _by_id(self, text: str) -> Timer:
        wanted = re.sub(r"[\s\-#]+", "_", text.strip().lower())
        wanted = f"timer_{wanted}" if wanted.isdigit() else wanted
        for timer in self._timers:
            if timer.id == wanted:
                return timer
        raise ValueError(f"there is no timer {text!r}; the timers are {_titles(self.list(), ids=True)}")

    def _by_label(self, text: str) -> list[Timer]:
        wanted = _plain(text)
        if not wanted:
            raise ValueError("say which timer to cancel")
        exact = [t for t in self._timers if wanted in _names(t)]
        if exact:
            return exact  # two "pasta" timers both go
        partial = [
            t for t in self._timers if t.label and (wanted in _plain(t.label) or _plain(t.label) in wanted)
        ]
        if len(partial) == 1:
            return partial
        if partial:
            raise ValueError(f"which one? {_titles(partial)}")
        raise ValueError(f"there is no timer called {text!r}; the timers are {_titles(self.list())}")


def next_occurrence(at: str, now: datetime) -> datetime:
    """The next time the clock shows `at` ("HH:MM" 24-hour; "7:30 pm" also heard): today, or tomorrow
    once today's has passed."""
    match = _AT.match(at.strip().lower())
    hour, minute = (int(match[1]), int(match[2] or 0)) if match else (-1, -1)
    if match and match[3]:  # 12-hour: 12 am is midnight, 12 pm is noon
        hour = hour % 12 + (12 if match[3] == "p" else 0) if 1 <= hour <= 12 else -1
    elif match and match[2] is None:
        hour = -1  # a bare "7" could be morning or evening
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise ValueError(f"{at!r} is not a clock time; give it as HH:MM, 24-hour, like 07:30 or 19:30")
    target = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return target if target > now else target + timedelta(days=1)


def _duration(seconds: float, minutes: float, hours: float, negative: bool) -> float:
    if negative:
        raise ValueError("a timer's duration cannot be negative")
    total = seconds + 60 * minutes + 3600 * hours
    if not math.isfinite(total) or total > MAX_TIMER_SECONDS:
        raise ValueError("a timer can run for at most 24 hours")
    if total < MIN_TIMER_SECONDS:
        raise ValueError(f"a timer needs at least {MIN_TIMER_SECONDS} second")
    return total


def _clean_label(label: str | None) -> str:
    label = " ".join((label or "").split())
    if len(label) > MAX_LABEL_CHARS:
        raise ValueError(f"a timer's label can be at most {MAX_LABEL_CHARS} characters")
    return label


def _firing_order(timer: Timer) -> tuple[float, int]:
    return timer.fires_at, int(timer.id.rpartition("_")[2])


def _plain(name: str) -> str:
    return _FILLER.sub("", " ".join(name.lower().split()))


def _names(timer: Timer) -> set[str]:
    """What a person may call a timer: its label, "10 minute(s)", or its clock time."""
    names = {_plain(timer.label)} if timer.label else set()
    if timer.at:
        return names | {timer.at, say_clock(timer.fires_at_wall).lower()}
    return names | {say_duration(timer.seconds), say_duration(timer.seconds, adjective=True)}


def title(timer: Timer) -> str:
    """How a timer is named aloud: its label, "the 10 minute timer" or "the 7:30 AM alarm"."""
    if timer.label:
        return timer.label
    if timer.at:
        return f"the {say_clock(timer.fires_at_wall)} alarm"
    return f"the {say_duration(timer.seconds, adjective=True)} timer"


def _titles(timers: list[Timer], ids: bool = False) -> str:
    return ", ".join(f"{title(t)} ({t.id})" if ids else title(t) for t in timers)


def say_duration(seconds: float, adjective: bool = False) -> str:
    """ "1 hour 5 minutes", "1 minute 30 seconds"; as an adjective "10 minute" ("a 10 minute timer")."""
    whole = max(round(seconds), 0)
    parts = []
    for unit, size in (("hour", 3600), ("minute", 60), ("second", 1)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count} {unit}" if adjective or count == 1 else f"{count} {unit}s")
    return " ".join(parts) or ("0 second" if adjective else "0 seconds")


def announcement(timer: Timer) -> str:
    """What the assistant says when `timer` fires."""
    if timer.label:
        if timer.label.lower().split()[-1] in ("timer", "alarm"):
            return f"Your {timer.label} is done."
        return f"Reminder: {timer.label}."
    if timer.at:
        return f"It's {say_clock(timer.fires_at_wall)}. Your alarm is going off."
    return f"Your {say_duration(timer.seconds, adjective=True)} timer is done."


# --- the tools ----------------------------------------------------------------------------------------


def set_timer(timers: Timers, seconds=None, minutes=None, hours=None, at=None, label=None) -> dict:
    """The tool: {"id", "label", "seconds" (until it fires), "fires_at" (local ISO), "text"}."""
    timer = timers.set(seconds=seconds, minutes=minutes, hours=hours, at=at, label=label)
    if timer.at:
        when = say_clock(timer.fires_at_wall)
        if timer.fires_at_wall.date() != (timer.fires_at_wall - timedelta(seconds=timer.seconds)).date():
            when += " tomorrow"
        text = f"Reminder set for {when}: {timer.label}." if timer.label else f"Alarm set for {when}."
    else:
        text = f"Timer set for {say_duration(timer.seconds)}" + (f": {timer.label}." if timer.label else ".")
    return {
        "id": timer.id,
        "label": timer.label,
        "seconds": tidy(round(timer.seconds, 3)),
        "fires_at": timer.fires_at_wall.isoformat(timespec="seconds"),
        "text": text,
    }


def list_timers(timers: Timers) -> dict:
    """The tool: {"timers": [{"id", "label", "seconds_left", "fires_at"}], "text"}, soonest first."""
    running = timers.list()
    rows = [
        {
            "id": t.id,
            "label": t.label,
            "seconds_left": math.ceil(timers.seconds_left(t)),  # "0 left" only once it has fired
            "fires_at": t.fires_at_wall.isoformat(timespec="seconds"),
        }
        for t in running
    ]
    if not running:
        return {"timers": [], "text": "You have no timers."}
    said = "; ".join(f"{title(t)}, {say_duration(r['seconds_left'])} left" for t, r in zip(running, rows))
    count = f"{len(running)} timer" + ("s" if len(running) > 1 else "")
    return {"timers": rows, "text": f"You have {count}: {said}."}


def cancel_timer(timers: Timers, id=None, label=None, all=None) -> dict:
    """The tool: {"cancelled": [ids], "text"}."""
    cancelled = timers.cancel(id=id or None, label=label or None, all=bool(all))
    what = _titles(cancelled) if len(cancelled) < 4 else f"{len(cancelled)} timers"
    return {"cancelled": [t.id for t in cancelled], "text": f"Cancelled {what}."}
