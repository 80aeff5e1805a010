"""The numbers a reply says after a built-in tool's result are the tool's (assistant/grounding.py)."""

from __future__ import annotations

import json

import pytest

from assistant.grounding import canonical, grounded, numbers
from assistant.tools.builtin import Toolbox

SUM = Toolbox().run("calculate", json.dumps({"expression": "828 / 18"}))  # 46
NOON = json.dumps({"time": "12:05", "weekday": "Monday", "text": "It's 12:05 PM on Monday, December 7."})


def test_one_spelling_per_value():
    assert canonical("1,000") == "1000" and canonical("0.30") == "0.3" and canonical("08:15") == "8:15"
    assert canonical("46.0") == "46" and numbers("18 times 14 is 252.") == {"18", "14", "252"}


@pytest.mark.parametrize(
    "reply",
    ["828 divided by 18 is 46.", "That's 46.", "That's 46.0 exactly."],
)
def test_a_reply_that_says_the_results_numbers_is_kept(reply):
    assert grounded(reply, SUM, "What's 828 over 18?") == reply


@pytest.mark.parametrize(
    "reply",
    ["8 times 18 is 468.", "828 divided by 18 is 64.", "It's 46.5.", "It's 828.", "Sure, here you go."],
)
def test_a_wrong_number_gives_way_to_the_tools_own_sentence(reply):
    assert grounded(reply, SUM, "What's 828 over 18?") == json.loads(SUM)["text"]


def test_the_time_is_checked_digit_by_digit():
    assert grounded("It's 12:05 PM.", NOON) == "It's 12:05 PM."
    assert grounded("It's 12:50 PM.", NOON) == json.loads(NOON)["text"]
    assert grounded("It's Monday, December 7.", NOON) == "It's Monday, December 7."


def test_numbers_from_the_request_are_allowed_and_a_result_without_text_keeps_the_reply():
    timer = json.dumps({"id": "t1", "label": "tea", "seconds": 300, "text": "Timer set for 5 minutes: tea."})
    assert grounded("Your 5 minute tea timer is on.", timer, "tea timer, 5 minutes") == (
        "Your 5 minute tea timer is on."
    )
    assert grounded("Your 7 minute timer is on.", timer) == "Timer set for 5 minutes: tea."
    assert grounded("It is 3.", '{"error": "no such timer"}') == "It is 3."
    assert grounded("It is 3.", "not json") == "It is 3."
