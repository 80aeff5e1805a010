"""Timer requests for the built-in tools set_timer, list_timers and cancel_timer, with simulated results.

A simulated conversation's timers are drawn per request (how many are running, which are labelled or
alarms), and the results are worded as assistant/tools/timers.py words them; tests/test_train.py checks
them against the real tools.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from training.tool_words import (
    ERROR_SHARE,
    Ask,
    failed,
    pick,
    random_now,
    say_clock,
    say_duration,
    sentence,
    spoken_number,
    transcript,
)

# ---- set_timer -------------------------------------------------------------------------------------

TIMER_ASKS = [
    "Set a timer for {dur}", "Timer for {dur}", "Start a timer for {dur}", "Set a {adj} timer",
    "Can you set a timer for {dur}", "Put a timer on for {dur}", "Start a {adj} timer", "Count down {dur}",
    "I need a timer for {dur}", "Set a timer, {dur}",
]  # fmt: skip
LABELED_ASKS = [
    "Set a timer for {dur} for the {label}", "Set a {adj} timer for the {label}",
    "Start a {label} timer for {dur}",
    "Timer for {dur} for my {label}", "Set a {label} timer for {dur}", "Can you time the {label} for {dur}",
    "Set a timer for the {label}, {dur}", "Start a {adj} timer for my {label}",
    "I need a {adj} {label} timer",
    "Put a {adj} timer on for the {label}",
]  # fmt: skip
REMIND_IN_ASKS = [
    "Remind me in {dur} to {task}", "In {dur}, remind me to {task}", "Remind me to {task} in {dur}",
    "Set a reminder to {task} in {dur}", "Tell me to {task} in {dur}", "Can you remind me to {task} in {dur}",
]  # fmt: skip
AT_ASKS = [
    "Remind me at {t} to {task}", "At {t}, remind me to {task}", "Remind me to {task} at {t}",
    "Set a reminder for {t} to {task}", "Set a reminder at {t} to {task}",
    "Can you remind me at {t} to {task}",
]  # fmt: skip
ALARM_ASKS = [
    "Set an alarm for {t}", "Wake me up at {t}", "Set an alarm at {t}", "Alarm for {t}",
    "Can you set an alarm for {t}", "I need an alarm at {t}", "Wake me at {t}", "Set my alarm for {t}",
    "Get me up at {t}", "Please set an alarm for {t}",
]  # fmt: skip
LABELS = [
    "pasta", "eggs", "rice", "laundry", "pizza", "cookies", "tea", "bread", "potatoes", "oven", "chicken",
    "cake", "nap", "workout", "break", "homework", "meditation", "steak", "soup", "popcorn", "plank",
    "brownies", "roast", "muffins", "face mask", "study session", "parking", "noodles", "coffee", "yoga",
]  # fmt: skip
TASKS = [
    "call mum", "call my mom", "take the bins out", "feed the cat", "water the plants", "take my medicine",
    "pick up the kids", "check the oven", "call the dentist", "move the car", "join the meeting", "buy milk",
    "start dinner", "walk the dog", "stretch", "send the email", "leave for the station", "check the laundry",
    "turn off the stove", "drink some water", "call Sam", "text Maria", "pay the rent", "book the vet",
]  # fmt: skip
TIMER_REPLIES = [
    "{text}",
    "{text}",
    "Okay. {text}",
    "Done, your timer is set for {d}.",
    "Sure, I've set a timer for {d}.",
]
LABELED_REPLIES = [
    "{text}",
    "{text}",
    "Okay, your {label} timer is set for {d}.",
    "Sure, {d} for the {label}.",
]
TASK_REPLIES = [
    "{text}",
    "Okay, I'll remind you to {label} in {d}.",
    "Sure, I'll remind you to {label} in {d}.",
]
AT_REPLIES = [
    "{text}",
    "{text}",
    "Okay, I'll remind you to {label} at {when}.",
    "Done. I'll remind you at {when}.",
]
ALARM_REPLIES = ["{text}", "{text}", "Okay, your alarm is set for {when}.", "Done, alarm set for {when}."]
MAX_TIMER_SECONDS = 24 * 3600


def _duration(rng: random.Random) -> tuple[str, str | None, dict]:
    """(spoken duration, spoken adjective or None, set_timer arguments)."""
    kind = rng.choices(["min", "sec", "hour", "h+m", "m+s", "idiom"], weights=[10, 3, 2, 2, 1, 2])[0]
    if kind in ("min", "sec", "hour"):
        unit, key = {"min": ("minute", "minutes"), "sec": ("second", "seconds"), "hour": ("hour", "hours")}[
            kind
        ]
        n = {
            "min": rng.choice([rng.randint(1, 60), rng.choice([5, 10, 15, 20, 25, 30, 40, 45, 90])]),
            "sec": rng.choice([10, 15, 20, 30, 40, 45, 50, 90, 120]),
            "hour": rng.randint(1, 6),
        }[kind]
        said = "a" if n == 1 and rng.random() < 0.4 else spoken_number(n, rng)
        dur = f"{said} {unit}" if n == 1 else f"{said} {unit}s"
        adj = f"{said if said != 'a' else 'one'}{rng.choice([' ', '-'])}{unit}"
        return dur, adj, {key: n}
    if kind == "h+m":
        h, m = rng.randint(1, 3), rng.choice([10, 15, 20, 30, 45])
        hours = "an hour" if h == 1 else f"{spoken_number(h, rng)} hours"
        return f"{hours} and {spoken_number(m, rng)} minutes", None, {"hours": h, "minutes": m}
    if kind == "m+s":
        m, s = rng.randint(1, 9), rng.choice([15, 20, 30, 45])
        minutes = "a minute" if m == 1 else f"{spoken_number(m, rng)} minutes"
        return f"{minutes} and {spoken_number(s, rng)} seconds", None, {"minutes": m, "seconds": s}
    return rng.choice(
        [
            ("half an hour", "half-hour", {"minutes": 30}),
            ("an hour and a half", None, {"hours": 1, "minutes": 30}),
            ("a minute and a half", None, {"minutes": 1, "seconds": 30}),
            ("a quarter of an hour", None, {"minutes": 15}),
            ("an hour", "one hour", {"hours": 1}),
        ]
    )


def _seconds(args: dict) -> int:
    return args.get("seconds", 0) + 60 * args.get("minutes", 0) + 3600 * args.get("hours", 0)


def clock_time(rng: random.Random) -> tuple[str, str]:
    """(a clock time as said, "HH:MM" 24-hour)."""
    if rng.random() < 0.05:
        return rng.choice([("noon", "12:00"), ("midnight", "00:00")])
    hour, pm = rng.randint(1, 12), rng.random() < 0.5
    minute = rng.choice([0, 0, 0, 15, 30, 30, 45, rng.randint(1, 59)])
    h24 = hour % 12 + (12 if pm else 0)
    if rng.random() < 0.1:
        return f"{h24}:{minute:02d}", f"{h24:02d}:{minute:02d}"
    suffix = rng.choice(["pm", "p.m.", "PM"] if pm else ["am", "a.m.", "AM"])
    said = f"{hour}:{minute:02d}" if minute or rng.random() < 0.2 else str(hour)
    if not minute and rng.random() < 0.2:
        suffix = (
            "in the evening" if pm and hour >= 6 and hour != 12 else "in the morning" if not pm else suffix
        )
    return f"{said} {suffix}", f"{h24:02d}:{minute:02d}"


def timer_result(args: dict, now: datetime, number: int) -> dict:
    """set_timer's answer, the timer being the conversation's `number`-th (assistant/tools/timers.py)."""
    label = args.get("label", "")
    if "at" in args:
        hour, minute = map(int, args["at"].split(":"))
        fires = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        fires = fires if fires > now else fires + timedelta(days=1)
        seconds = round((fires - now).total_seconds())
        when = say_clock(fires) + (" tomorrow" if fires.date() != now.date() else "")
        text = f"Reminder set for {when}: {label}." if label else f"Alarm set for {when}."
    else:
        seconds = _seconds(args)
        fires = now + timedelta(seconds=seconds)
        text = f"Timer set for {say_duration(seconds)}" + (f": {label}." if label else ".")
    iso = fires.isoformat(timespec="seconds")
    return {"id": f"timer_{number}", "label": label, "seconds": seconds, "fires_at": iso, "text": text}


def _timer_request(rng: random.Random, held: bool) -> tuple[str, dict, list[str]]:
    """(request, arguments, replies to choose from)."""
    kind = rng.choices(["plain", "label", "task", "at", "alarm"], weights=[4, 4, 2, 3, 2])[0]
    dur, adj, args = _duration(rng)

    def fits(ask: str) -> bool:
        return adj is not None or "{adj}" not in ask

    if kind == "plain":
        return pick(rng, TIMER_ASKS, held, fits).format(dur=dur, adj=adj), args, TIMER_REPLIES
    if kind == "label":
        label = rng.choice(LABELS)
        user = pick(rng, LABELED_ASKS, held, fits).format(dur=dur, adj=adj, label=label)
        return user, args | {"label": label}, LABELED_REPLIES
    said, at = clock_time(rng)
    if kind == "alarm":
        return pick(rng, ALARM_ASKS, held).format(t=said), {"at": at}, ALARM_REPLIES
    task = rng.choice(TASKS)
    if kind == "task":
        return (
            pick(rng, REMIND_IN_ASKS, held).format(dur=dur, task=task),
            args | {"label": task},
            TASK_REPLIES,
        )
    return pick(rng, AT_ASKS, held).format(t=said, task=task), {"at": at, "label": task}, AT_REPLIES


def ask_set_timer(rng: random.Random, held: bool) -> Ask:
    now, number = random_now(rng), 1 if rng.random() < 0.7 else rng.randint(2, 5)
    if rng.random() < ERROR_SHARE:
        hours = rng.randint(25, 72)
        user = pick(rng, TIMER_ASKS, held).format(dur=f"{hours} hours", adj=f"{hours} hour")
        error = "A timer can run for at most 24 hours."
        return Ask(transcript(user, rng), "set_timer", {"hours": hours}, {"error": error}, failed(error, rng))
    user, args, replies = _timer_request(rng, held)
    result = timer_result(args, now, number)
    values = {"text": result["text"], "d": say_duration(result["seconds"]), "label": args.get("label", "")}
    # "Reminder set for 7:30 PM tomorrow: call mum." -> "7:30 PM tomorrow"
    when = result["text"].removeprefix("Reminder set for ").removeprefix("Alarm set for ")
    values["when"] = when.rsplit(": ", 1)[0].rstrip(".") if args.get("label") else when.rstrip(".")
    return Ask(
        transcript(user, rng), "set_timer", args, result, sentence(rng.choice(replies).format(**values))
    )


# ---- list_timers and cancel_timer ----------------------------------------------------------------

LIST_ASKS = [
    "What timers do I have", "How much time is left on my timer", "How long is left on the timer",
    "Are there any timers running", "List my timers", "Check my timers", "What reminders do I have",
    "How long until my timer goes off", "Show me my timers", "Do I have any timers on",
    "How much longer on the timer", "What alarms have I set",
]  # fmt: skip
LIST_REPLIES = ["{text}", "{text}", "{text}", "{left} left on {title}."]
EMPTY_REPLIES = ["You have no timers.", "You don't have any timers running.", "There are no timers running."]
CANCEL_ASKS = {
    "label": [
        "Cancel the {label} timer", "Stop the {label} timer", "Cancel my {label} timer",
        "Turn off the {label} timer",
        "Delete the {label} timer", "Cancel the timer for the {label}", "Never mind the {label} timer",
        "Kill the {label} timer", "Stop my {label} timer", "Get rid of the {label} timer",
    ],
    "task": [
        "Cancel the reminder to {label}", "Cancel my reminder to {label}", "Delete the reminder to {label}",
        "Forget the reminder to {label}", "I don't need the reminder to {label} anymore",
    ],
    "adj": [
        "Cancel the {adj} timer", "Stop the {adj} timer", "Cancel my {adj} timer", "Turn off the {adj} timer",
        "Delete the {adj} timer",
    ],
    "all": [
        "Cancel all my timers", "Cancel all timers", "Clear all my timers", "Stop all the timers",
        "Delete every timer", "Cancel all my reminders", "Turn off all my alarms", "Get rid of all my timers",
        "Cancel every timer", "Stop every timer",
    ],
    "id": [
        "Cancel timer {n}", "Stop timer number {n}", "Cancel timer number {n}", "Delete timer {n}",
        "Turn off timer {n}",
    ],
    "bare": [
        "Cancel the timer", "Stop the timer", "Cancel my timer", "Turn off the alarm", "Never mind the timer",
        "Cancel my alarm", "Cancel the reminder", "Stop the alarm", "Kill the timer", "Forget the timer",
    ],
}  # fmt: skip
CANCEL_REPLIES = ["{text}", "{text}", "Okay. {text}", "Done. {text}"]
NO_TIMERS = "There are no timers to cancel."
MAX_SPOKEN_TITLES = 3  # more cancelled timers are counted, not named


def running_timers(rng: random.Random, now: datetime, count: int) -> list[dict]:
    """`count` simulated timers, soonest first: {"id", "label", "seconds_left", "fires_at"} as list_timers
    shows them, plus how they are named: "title" (as the tools say it) and "adj" ("10 minute")."""
    kinds = rng.choices(["label", "task", "plain", "alarm"], k=count)
    labels, tasks = iter(rng.sample(LABELS, count)), iter(rng.sample(TASKS, count))
    totals = iter(rng.sample([30, 60, 90, 120, 180, 300, 600, 900, 1200, 1800, 2700, 3600, 5400], count))
    timers = []
    for number, kind in zip(sorted(rng.sample(range(1, 8), count)), kinds):
        label = next(labels) if kind == "label" else next(tasks) if kind == "task" else ""
        total = next(totals)
        left = rng.randint(60, 20 * 3600) if kind == "alarm" else rng.randint(1, total)
        fires = now + timedelta(seconds=left)
        adj = say_duration(total, adjective=True) if kind == "plain" else None
        title = label or (f"the {say_clock(fires)} alarm" if kind == "alarm" else f"the {adj} timer")
        iso = fires.isoformat(timespec="seconds")
        row = {"id": f"timer_{number}", "label": label, "seconds_left": left, "fires_at": iso}
        timers.append(row | {"title": title, "adj": adj})
    return sorted(timers, key=lambda t: (t["seconds_left"], int(t["id"].split("_")[1])))


def ask_list_timers(rng: random.Random, held: bool) -> Ask:
    user = transcript(pick(rng, LIST_ASKS, held), rng)
    timers = running_timers(rng, random_now(rng), rng.choices([0, 1, 2, 3], weights=[2, 5, 2, 1])[0])
    if not timers:
        return Ask(
            user, "list_timers", {}, {"timers": [], "text": "You have no timers."}, rng.choice(EMPTY_REPLIES)
        )
    said = "; ".join(f"{t['title']}, {say_duration(t['seconds_left'])} left" for t in timers)
    text = f"You have {len(timers)} timer{'s' if len(timers) > 1 else ''}: {said}."
    rows = [{k: t[k] for k in ("id", "label", "seconds_left", "fires_at")} for t in timers]
    first = timers[0]
    title = f"the {first['label']} timer" if first["label"] in LABELS else first["title"]
    replies = LIST_REPLIES if len(timers) == 1 else LIST_REPLIES[:3]
    reply = rng.choice(replies).format(text=text, left=say_duration(first["seconds_left"]), title=title)
    return Ask(user, "list_timers", {}, {"timers": rows, "text": text}, sentence(reply))


def _spoken_adj(adj: str, rng: random.Random) -> str | None:
    """ "10 minute" as said: "ten minute", "10-minute"; None for "1 hour 30 minute"."""
    parts = adj.split()
    if len(parts) != 2:
        return None
    return f"{spoken_number(int(parts[0]), rng)}{rng.choice([' ', '-'])}{parts[1]}"


def _cancel_request(rng: random.Random, held: bool, timers: list[dict]) -> tuple[str, dict, list[dict]]:
    """(request, arguments, the timers it cancels) for a conversation with `timers` running."""
    target = rng.choice(timers)
    kinds = ["label", "adj", "id"] + (["all"] if len(timers) > 1 else ["bare", "bare"])
    kind = rng.choice(kinds)
    adj = target["adj"] and _spoken_adj(target["adj"], rng)
    if kind == "label" and target["label"]:
        kind = "label" if target["label"] in LABELS else "task"
        user = pick(rng, CANCEL_ASKS[kind], held).format(label=target["label"])
        return user, {"label": target["label"]}, [target]
    if kind == "adj" and adj:
        return pick(rng, CANCEL_ASKS["adj"], held).format(adj=adj), {"label": target["adj"]}, [target]
    if kind == "all":
        return pick(rng, CANCEL_ASKS["all"], held), {"all": True}, timers
    if kind == "bare":
        return pick(rng, CANCEL_ASKS["bare"], held), {}, timers
    n = int(target["id"].split("_")[1])
    return pick(rng, CANCEL_ASKS["id"], held).format(n=spoken_number(n, rng)), {"id": target["id"]}, [target]


def ask_cancel_timer(rng: random.Random, held: bool) -> Ask:
    count = 0 if rng.random() < ERROR_SHARE * 2 else rng.choices([1, 2, 3, 4], weights=[6, 3, 2, 1])[0]
    timers = running_timers(rng, random_now(rng), max(count, 1))
    user, args, gone = _cancel_request(rng, held, timers)
    if count == 0:
        return Ask(transcript(user, rng), "cancel_timer", args, {"error": NO_TIMERS}, failed(NO_TIMERS, rng))
    what = ", ".join(t["title"] for t in gone) if len(gone) <= MAX_SPOKEN_TITLES else f"{len(gone)} timers"
    text = f"Cancelled {what}."
    result = {"cancelled": [t["id"] for t in gone], "text": text}
    return Ask(
        transcript(user, rng), "cancel_timer", args, result, rng.choice(CANCEL_REPLIES).format(text=text)
    )
