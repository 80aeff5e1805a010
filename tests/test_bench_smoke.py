"""The benchmarks run end to end (smoke runs: behaviour and the shape of their JSON, never timings)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from testkit.speech import require_espeak
from tests.conftest import ROOT, TINY_FLAGS, lm_spec

pytestmark = pytest.mark.slow  # the benchmarks' smoke runs

BENCH_TIMEOUT_S = 600


def run_bench(*args: str) -> dict:
    """Run `python -m bench.NAME ...` and return its last line, the JSON result."""
    done = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=BENCH_TIMEOUT_S
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_voice_latency_quick_runs_both_turn_detections():
    result = run_bench("bench.voice_latency", "--quick", "--model", lm_spec(), *TINY_FLAGS)
    assert set(result["modes"]) == {"semantic_vad", "server_vad"}
    for mode in result["modes"].values():
        assert mode["turns"] == 2 and mode["stages"]["voice_to_voice"]["median"] > 0
        assert set(mode["cutoff_rate"]) == {"0.6"}
    assert "turn_judge" in result["modes"]["semantic_vad"]["stages"]  # the judge ran and was timed
    assert set(result["speculation"]) >= {"started", "used", "discarded", "wasted_forward_passes"}


def test_turn_eval_quick_builds_the_labelled_set_and_scores_it():
    require_espeak()  # the labelled set has an espeak-ng voice beside piper
    result = run_bench("bench.turn_eval", "--quick")
    held_out = result["set"]["held_out"]
    assert held_out["complete"] > 0 and held_out["broken"] > 0, result["set"]  # both labels, unseen sentences
    for signal in ("audio", "text", "combined"):
        assert 0.0 <= result["results"][signal]["recall"] <= 1.0, result["results"]


def test_tool_latency_runs_a_tool_turn_beside_a_plain_one():
    if TINY_FLAGS == []:
        pytest.skip("only the tiny test model is known to call a tool for the bench's question")
    result = run_bench("bench.tool_latency", "--model", lm_spec(), "--turns", "1")
    assert result["tool"]["turns"] == result["plain"]["turns"] == 1, result
    assert result["tool"]["with_call"] == 1 and result["plain"]["with_call"] == 0, result
    # What the tiny model says after get_time's result is not memorised (the result holds the time of the
    # run), and it may say nothing: then the tool turn has no voice to time. The plain turn always has.
    assert result["plain"]["voice_to_voice_median"] > 0, result


def test_faithful_agreement_measures_every_option_against_faithful():
    result = run_bench("bench.faithful_agreement", "--json", "--prompts", "1", "--max-new-tokens", "32")
    assert result["prompts"] == 1 and result["wall_s"] > 0, result
    assert set(result["families"]) == {"llada", "dream", "sdar", "fast_dllm_v2", "bd3lm"}
    fields = {"exact", "agreement", "tokens_per_nfe", "ended", "ms_per_reply", "speedup"}
    for family, found in result["families"].items():
        options = found["options"]
        assert {"faithful", "fast (balanced preset)", "fast, no early stop"} <= set(options), family
        assert all(set(row) == fields for row in options.values()), options
        assert options["faithful"]["exact"] == 1.0 and options["faithful"]["speedup"] == 1.0, options
        turn = found["second_turn"]
        assert (turn is None) == (family in ("llada", "dream")), (family, turn)  # block-causal only
        if turn is not None:
            assert turn["same"] == 1.0 and turn["nfe_kept"] > 0, turn  # the kept cache changes no token
