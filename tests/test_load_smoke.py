"""`python -m bench.load --smoke` end to end: a real `serve` process, voice and text sessions through the
official SDK, a short soak and the refusal beyond capacity. Asserts behaviour, never timings: the
machine running the suite may be busy, and the latency figures are the benchmark's to report.

The run's timeout is the bench's own bound (`bench.load.smoke_max_s`: the server's start allowance plus
the smoke's phases, which stop themselves and report): a slow machine makes the smoke report a failure
(the assertion shows it), never a timeout that hides what went wrong.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.load import smoke_max_s
from tests.conftest import ROOT

pytest.importorskip("openai")

SMOKE_TIMEOUT_S = smoke_max_s() + 30  # beyond the bench's own bound: a Python start, a JSON line
# Fewer sessions than serve's default (8, 4 per address): the refusal check then proves that bench.load
# passes its limits to `serve` (serve's defaults would let the 4th session in), and costs less.
MAX_SESSIONS, PER_CLIENT = 3, 2
# bench.load's smoke run is slow; the fixture runs inside the first test, so its timeout is the module's
pytestmark = [pytest.mark.slow, pytest.mark.timeout(SMOKE_TIMEOUT_S + 60)]


@pytest.fixture(scope="module")
def smoke() -> dict:
    limits = ["--max-sessions", str(MAX_SESSIONS), "--max-sessions-per-client", str(PER_CLIENT)]
    p = subprocess.run(
        [sys.executable, "-m", "bench.load", "--smoke", *limits],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT_S,
        check=False,
    )
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_both_kinds_of_session_complete_turns_without_errors(smoke):
    load = smoke["load"]
    assert load["voice_sessions"] == 1 and load["text_sessions"] == 1, load
    assert load["turns"]["voice"] > 0 and load["turns"]["text"] > 0, load["turns"]
    assert load["errors"] == 0, load["error_samples"]
    # Every completed voice turn carried the server's voice-to-voice figure and the client's own.
    assert load["v2v_ms"]["n"] == load["turns"]["voice"], load["v2v_ms"]
    assert load["client_v2v_ms"]["n"] == load["turns"]["voice"], load["client_v2v_ms"]
    assert load["rss_mb"]["series"], load["rss_mb"]


def test_the_soak_reaches_its_target_and_reports_memory(smoke):
    soak = smoke["soak"]
    assert soak["completed"] >= soak["target_turns"] > 0, soak
    assert soak["errors"] == 0, soak["error_samples"]
    assert soak["rss_after_warmup_mb"] > 0 and soak["rss_end_mb"] > 0, soak
    assert soak["rss_growth_pct"] is not None, soak


def test_sessions_beyond_capacity_are_refused_and_the_others_still_answer(smoke):
    refusal = smoke["refusal"]
    assert refusal["max_sessions"] == MAX_SESSIONS, refusal
    assert refusal["extra"]["code"] == "too_many_sessions", refusal
    assert f"serves {MAX_SESSIONS} sessions" in refusal["extra"]["message"], refusal  # serve's own limit
    assert refusal["extra"]["closed"], refusal
    assert refusal["others_answered"] == refusal["max_sessions"] == refusal["sessions"], refusal
    one = refusal["per_client"]
    assert one["max_sessions_per_client"] == PER_CLIENT and one["sessions"] == PER_CLIENT, one
    assert one["extra"]["code"] == "too_many_sessions_for_client" and one["extra"]["closed"], one
    assert one["others_answered"] == PER_CLIENT, one
    assert refusal["ok"] and smoke["ok"], refusal
