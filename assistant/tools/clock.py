"""The `get_time` tool: the local time, date and weekday, said the way a person would."""

from __future__ import annotations

from datetime import datetime


def local_now() -> datetime:
    """Now, aware, in the system's time zone."""
    return datetime.now().astimezone()


def get_time(now: datetime | None = None) -> dict:
    """The tool: {"time", "date", "weekday", "timezone", "iso", "text"} for `now` (default: local now)."""
    now = now or local_now()
    if now.tzinfo is None:
        now = now.astimezone()  # a naive time is taken as the system's local time
    date = f"{now:%A}, {now:%B} {now.day}, {now.year}"
    return {
        "time": say_clock(now),
        "date": date,
        "weekday": f"{now:%A}",
        "timezone": now.tzname() or "local time",
        "iso": now.isoformat(timespec="seconds"),
        "text": f"It's {say_clock(now)} on {now:%A}, {now:%B} {now.day}.",
    }


def say_clock(moment: datetime) -> str:
    """A clock time as spoken in English: "9:41 AM", "12:05 PM", "12:00 AM" (midnight)."""
    hour = moment.hour % 12 or 12
    return f"{hour}:{moment.minute:02d} {'AM' if moment.hour < 12 else 'PM'}"
