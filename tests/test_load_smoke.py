"""`python -m bench.load --smoke` end to end: a real `serve` process, voice and text sessions through the
official SDK, a short soak and the refusal beyond capacity. Asserts behaviour, never timings: the
machine running the suite may be busy, and the latency figures are the benchmark's to report."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytest.importorskip("openai")

SMOKE_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def smoke() -> dict:
    p = subprocess.run(
        [sys.executable, "-m", "bench.load", "--smoke"],
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
    assert refusal["extra"]["code"] == "too_many_sessions", refusal
    assert refusal["extra"]["closed"], refusal
    assert refusal["others_answered"] == refusal["max_sessions"] == refusal["sessions"], refusal
    assert refusal["ok"] and smoke["ok"], refusal
