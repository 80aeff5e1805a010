"""End-of-turn judges: the text ones (the bundled AR twin, the counted sentence ends), Smart Turn's
features against a second implementation, and the Smart Turn model itself when pipecat-ai's file is
installed."""

import gzip
import importlib.util
import json
import os

import numpy as np
import pytest

from training.turn_sentences import SENTENCES
from turn_taking import sentence_ends as build
from turn_taking import smart_turn
from turn_taking.sentence_ends import FORMAT, SentenceEnds, contexts, key
from turn_taking.smart_turn import SmartTurn, last_window, log_mel
from turn_taking.twin import TwinTurnEnd, strip_final_punctuation

FINISHED = "Please set a timer for ten minutes."
BROKEN_OFF = "I want to go to the"
EVALUATION = [s for s, _ in SENTENCES]  # the end-of-turn evaluation set, as training.sentence_ends counts it


def require_smart_turn() -> None:
    """Skip when pipecat-ai (which carries the Smart Turn model file) is not installed, unless CI
    demands every part (DLM_REQUIRE_SYSTEM=1)."""
    try:
        smart_turn.find_model()
    except FileNotFoundError as e:
        if os.environ.get("DLM_REQUIRE_SYSTEM") == "1":
            pytest.fail(str(e))
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def judge():
    return TwinTurnEnd.load()


def test_a_broken_off_phrase_scores_far_below_a_finished_request(judge):
    for score in (judge.p_end, judge.p_end_words):
        finished, broken = score(FINISHED), score(BROKEN_OFF)
        assert 0.0 <= broken <= 1.0 and 0.0 <= finished <= 1.0
        assert finished > 0.1 and broken < finished / 20, (score.__name__, finished, broken)


def test_words_are_scored_whatever_punctuation_whisper_guessed(judge):
    # Whisper often writes a full stop after a phrase the speaker broke off; the twin trusts full stops.
    assert judge.p_end(BROKEN_OFF + ".") > 0.5
    assert judge.p_end_words(BROKEN_OFF + ".") == pytest.approx(judge.p_end_words(BROKEN_OFF + "..."))
    assert judge.p_end_words(BROKEN_OFF + ".") < 0.05
    assert strip_final_punctuation(" Is it?! ") == "Is it"
    assert judge.p_end_words("") == 0.0 and judge.p_end_words(" ... ") == 0.0


def test_the_prompt_is_the_chat_template_cut_before_the_users_end_of_turn(judge):
    ids = judge.prompt_ids(FINISHED)
    assert judge.tokenizer.special.end_of_turn not in ids
    assert judge.tokenizer.decode(ids, skip_special=False).endswith(FINISHED)


def test_a_model_that_is_not_causal_with_shifted_logits_is_refused():
    from dlm_core.checkpoints import BUNDLED_MODEL

    with pytest.raises(ValueError, match="logits_shift"):
        TwinTurnEnd.load(str(BUNDLED_MODEL))  # the diffusion model: shifted logits, block-causal


def test_counted_sentence_ends_know_that_a_preposition_or_article_does_not_end_a_request():
    ends = SentenceEnds.load()  # the bundled table
    finished = ["Please set a timer for ten minutes.", "What is the capital of Australia?", "Tell me a joke."]
    broken = [
        BROKEN_OFF,
        "Can you tell me a joke about",
        "Send a message to Anna and",
        "Could you read me the",
    ]
    low, high = max(ends.p_end(t) for t in broken), min(ends.p_end(t) for t in finished)
    assert 0.0 <= low < 0.05 and high > 0.3, (low, high)
    assert ends.p_end("Tell me a joke") == ends.p_end("tell me a JOKE!")  # case, punctuation: not counted
    assert ends.p_end("") == 0.0 and ends.p_end(" ... ") == 0.0


def test_the_sentence_end_table_is_counted_and_backed_off_as_documented(tmp_path):
    texts = [
        ("Set a timer. Stop the timer now.", 2),
        ("Stop it.", 1),
        ("What is the capital of Australia?", 5),  # a sentence of bench.turn_eval's labelled set
    ]
    c = build.count(texts, EVALUATION)
    assert contexts(["the", "timer"], 3) == ["timer", "the timer", "<s> the timer"]
    assert (c.ends["timer"], c.seen["timer"]) == (2, 4)  # ends "Set a timer.", not "Stop the timer now."
    assert (c.ends["<s> stop"], c.seen["<s> stop"]) == (0, 3)
    assert (c.ends["it"], c.seen["it"]) == (1, 1)
    assert (c.ends["australia"], c.seen["australia"]) == (5, 5)  # counted, and recorded as evaluation
    assert c.evaluation == {"what is the capital of australia": 5}  # of the set's sentences, all checked
    assert len(c.checked) == len(SENTENCES) and "thank you" in c.checked
    assert c.prior == pytest.approx(10 / 46)  # weighted sentences per weighted word
    assert c.evaluation_prior == pytest.approx(5 / 16)  # the same without it
    data = build.table(c, min_count=2)
    assert data["format"] == FORMAT and "it" not in data["counts"] and data["counts"]["timer"] == [2, 4]
    path = tmp_path / "counts.json.gz"
    path.write_bytes(gzip.compress(json.dumps(data).encode()))
    model, a = SentenceEnds.load(path), build.ALPHA
    p_timer = (2 + a * c.prior) / (4 + a)
    assert model.p_end("a timer") == pytest.approx((2 + a * p_timer) / (2 + a))  # "a timer": 2 of 2
    assert model.p_end("Stop it!") == pytest.approx(c.prior)  # "it", "stop it", "<s> stop it": pruned
    assert model.p_end("the capital of Australia") > 0.5

    # The evaluation view is the table counted without the evaluation sentences.
    without = build.table(build.count(texts[:2], EVALUATION), min_count=2)
    held = SentenceEnds.load(path, evaluation=True)
    assert held.counts == {k: tuple(v) for k, v in without["counts"].items()}
    assert held.prior == pytest.approx(without["prior"]) and held.prior == pytest.approx(5 / 16)
    assert held.p_end("the capital of Australia") == pytest.approx(held.prior)  # never seen
    assert held.left_out == set(c.checked) and model.left_out == set()

    no_record = {k: v for k, v in data.items() if k != "evaluation"}
    path.write_bytes(gzip.compress(json.dumps(no_record).encode()))
    with pytest.raises(ValueError, match="no evaluation sentences"):
        SentenceEnds.load(path, evaluation=True)
    path.write_bytes(gzip.compress(json.dumps({**data, "format": "x"}).encode()))
    with pytest.raises(ValueError, match="not a sentence-end table"):
        SentenceEnds.load(path)
    with pytest.raises(FileNotFoundError, match="training.sentence_ends"):
        SentenceEnds.load(tmp_path / "missing.json.gz")


def test_the_bundled_table_counts_short_turns_and_can_leave_the_evaluation_sentences_out():
    shipped, held = SentenceEnds.load(), SentenceEnds.load(evaluation=True)
    # Rebuilt since training.turn_sentences last changed (python -m training.sentence_ends):
    assert held.left_out == {key(s) for s, _ in SENTENCES}
    # "Thanks." is common in our conversations: counted, it ends a sentence often.
    assert shipped.p_end("Thanks.") > 0.2
    assert held.p_end("Thanks.") < 0.05  # without the whole "Thanks." every "Thanks, ..." goes on
    broken = "Can you tell me a joke about"  # no evaluation sentence ends here: about the same either way
    assert (
        shipped.p_end(broken) == pytest.approx(held.p_end(broken), abs=1e-3) and shipped.p_end(broken) < 0.05
    )


def _test_wave(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(3 * t) + rng.normal(0, 0.02, t.shape)).astype(
        np.float32
    )


@pytest.mark.parametrize("seconds", [0.7, 8.0, 9.5])
def test_features_match_transformers_whisper_feature_extractor(seconds):
    # Smart Turn was trained on transformers' WhisperFeatureExtractor(chunk_length=8) features.
    transformers = pytest.importorskip("transformers")
    window = last_window(_test_wave(seconds))
    extractor = transformers.WhisperFeatureExtractor(chunk_length=8)
    reference = extractor(
        window, sampling_rate=16000, padding="max_length", max_length=128000, truncation=True,
        do_normalize=True, return_tensors="np",
    ).input_features[0]  # fmt: skip
    ours = log_mel(window)
    assert ours.shape == reference.shape == (80, 800), (ours.shape, reference.shape)
    np.testing.assert_allclose(ours, reference, atol=1e-4)


def test_the_window_is_the_last_eight_seconds_left_padded():
    x = _test_wave(9.5)
    assert np.array_equal(last_window(x), x[-128000:])
    short = last_window(x[:16000])
    assert short.shape == (128000,) and not short[:-16000].any() and np.array_equal(short[-16000:], x[:16000])
    with pytest.raises(ValueError, match="mono"):
        last_window(np.zeros((2, 100), np.float32))


def test_features_match_pipecats_own_code_when_installed():
    require_smart_turn()
    spec = importlib.util.find_spec("pipecat")
    path = os.path.join(spec.submodule_search_locations[0], "audio/turn/smart_turn/_whisper_features.py")
    module_spec = importlib.util.spec_from_file_location("_pipecat_whisper_features", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)  # numpy only: no pipecat import
    window = last_window(_test_wave(3.0))
    np.testing.assert_allclose(log_mel(window), module.compute_whisper_log_mel_features(window), atol=1e-4)


def test_a_missing_model_says_what_to_install(monkeypatch):
    monkeypatch.setattr(smart_turn.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install"):
        SmartTurn.load()


def test_smart_turn_scores_speech_and_sees_only_the_last_eight_seconds():
    require_smart_turn()
    from testkit.speech import speech_samples

    turn = SmartTurn.load()
    x = np.concatenate([speech_samples("Set a timer for ten minutes."), np.zeros(3200, np.float32)])
    p = turn.predict(x)
    assert 0.0 <= p <= 1.0 and turn.predict(x) == p
    long = np.concatenate([_test_wave(5.0), x])
    assert turn.predict(long) == pytest.approx(turn.predict(long[-128000:]), abs=1e-6)
