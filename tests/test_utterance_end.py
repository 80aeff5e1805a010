"""The whole-utterance end-of-turn model (turn_taking.utterance_end) and the labelled thinking pauses it is
measured on (training.turn_pauses). Comparisons, not exact probabilities: a retrained model may move them."""

from __future__ import annotations

import json

import pytest

from training import turn_pauses
from training.turn_sentences import SENTENCES
from training.utterance_end import EVALUATION_MODEL
from turn_taking.sentence_ends import key
from turn_taking.utterance_end import BUNDLED, CONFIG_FILE, MAX_TOKENS, UtteranceEnd

WEIGHTS_LIMIT_BYTES = 3_000_000  # the bundled folder, tokenizer included


@pytest.fixture(scope="module")
def model() -> UtteranceEnd:
    return UtteranceEnd.load()


# (unfinished, finished): the first is a pause where a person is plainly not done.
PAIRS = [
    ("When I get home.", "What time is it?"),  # a clause; Whisper's full stop is not read
    ("If you see him", "Tell him I said hello."),
    ("We should probably", "We should probably leave at six."),  # a word that needs a complement
    ("Can you send it to", "Can you send it to my sister?"),
    ("Add apples, bananas", "Add apples, bananas and yogurt to my list."),  # a list in progress
    ("Set a timer for um", "Set a timer for ten minutes."),  # a filler
]


@pytest.mark.parametrize(("unfinished", "finished"), PAIRS)
def test_a_pause_where_the_speaker_is_not_done_scores_below_a_finished_turn(model, unfinished, finished):
    low, high = model.p_end(unfinished), model.p_end(finished)
    assert 0.0 <= low < high <= 1.0, (unfinished, low, finished, high)


def test_finished_short_turns_score_above_unfinished_clauses(model):
    short = ["Thanks!", "What time is it?", "Sounds good."]
    clauses = ["When I get home", "Because the train is late", "If it rains tomorrow"]
    assert min(model.p_end(t) for t in short) > max(model.p_end(t) for t in clauses)


def test_punctuation_and_case_are_not_read(model):
    assert model.p_end("When I get home.") == model.p_end("when i get home")
    assert model.p_end("WHAT time is it?!") == model.p_end("what time is it")
    assert model.p_end("") == 0.0 and model.p_end(" ... ") == 0.0 and model.p_end_each("") == []


def test_each_word_is_read_left_to_right(model):
    text = "when i get home remind me to feed the cat"
    each = model.p_end_each(text)
    assert len(each) == len(text.split())
    assert each[-1] == pytest.approx(model.p_end(text), abs=1e-5)
    # The causal model reads a prefix as it reads the same words inside the whole utterance.
    assert each[3] == pytest.approx(model.p_end("when i get home"), abs=1e-5)
    assert each[3] < each[-1]


def test_a_long_utterance_keeps_its_end():
    model = UtteranceEnd.load()
    long = " ".join(["and then we went to the market"] * 30) + " and bought some bread"
    each = model.p_end_each(long)
    ids, ends = model.word_ids.encode(long.split())
    assert len(ids) <= MAX_TOKENS and ends[-1] == len(ids) - 1 and ends[0] == -1
    assert each[0] == 0.5 and 0.0 <= each[-1] <= 1.0


def test_the_bundled_weights_are_small_and_say_how_they_were_made():
    size = sum(p.stat().st_size for p in BUNDLED.iterdir() if p.is_file())
    assert size < WEIGHTS_LIMIT_BYTES, size
    shipped = json.loads((BUNDLED / CONFIG_FILE).read_text())
    evaluation = json.loads((EVALUATION_MODEL / CONFIG_FILE).read_text())
    for meta in (shipped, evaluation):
        assert meta["made_by"].startswith("python -m training.utterance_end --steps")
        assert meta["recipe"]["seed"] == 0 and meta["held_out"]["roc_auc"] > 0.8
    # One recipe; only the evaluation's model left the labelled set's sentences out of its data.
    assert {**shipped["recipe"], "leave_out_evaluation": True} == evaluation["recipe"]
    assert shipped["data"]["evaluation_sentences_dropped"] == 0
    assert evaluation["data"]["evaluation_sentences_dropped"] == sum(
        evaluation["data"]["evaluation_sentences_found"].values()
    )


def test_the_thinking_pauses_are_split_by_wording():
    train = {key(p.text) for p in turn_pauses.TRAIN} | {key(t) for t in turn_pauses.FINISHED_SHORT_TRAIN}
    held = {key(p.text) for p in turn_pauses.HELD_OUT} | {key(t) for t in turn_pauses.FINISHED_SHORT_HELD_OUT}
    older = {key(s) for s, _ in SENTENCES}
    assert not train & held and not held & older and not train & older
    for p in turn_pauses.TRAIN + turn_pauses.HELD_OUT:
        assert p.kind in turn_pauses.PAUSE_KINDS, p
        assert p.text.split()[p.words - 1].endswith(","), p  # the comma where the voice pauses
