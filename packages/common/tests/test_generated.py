"""Generated answers mapped back to the context, and per-window answers combined (qa_common.decoding.generated)."""

import math

import pytest

from qa_common.data.examples import SquadExample
from qa_common.decoding.generated import WindowAnswer, align_to_context, combine_window_answers, is_no_answer


def test_align_maps_a_vocabulary_spelling_back_to_the_exact_context_substring():
    context = "The Stade de France in Saint-Denis hosted Beyoncé's show (2016)."
    assert align_to_context("saint - denis", context) == "Saint-Denis"
    assert align_to_context("beyonce", context) == "Beyoncé"
    assert align_to_context(" stade de france\n", context) == "Stade de France"
    assert align_to_context("( ).", context) == ""
    assert align_to_context("art", "The party. Art lives on.") == "Art"  # word edges win
    assert align_to_context("stade of france", context) == "Stade de France"  # best overlapping words
    assert is_no_answer("I don't know.", "I don't know") and not is_no_answer("Denver", "I don't know")


def test_the_most_probable_window_answers_and_the_surest_window_sets_the_no_answer_probability():
    example = SquadExample("q", "Who won?", "Denver Broncos won. Carolina Panthers lost.", ())
    other = SquadExample("r", "Who?", "Nobody here.", ())
    windows = [WindowAnswer(0, "Carolina Panthers", -0.9, -2.0), WindowAnswer(0, "Denver Broncos", -0.2, -3.0),
               WindowAnswer(0, "Carolina Panthers", -1.5, -0.1), WindowAnswer(1, "", -0.1, -0.5)]
    predictions = combine_window_answers([example, other], windows)
    prediction = predictions["q"]
    assert prediction.text == "Denver Broncos" and prediction.score == math.exp(-0.2)
    assert math.isclose(prediction.no_answer_probability, math.exp(-3.0) / (math.exp(-3.0) + math.exp(-0.2)))
    assert prediction.n_best == (("Carolina Panthers", math.exp(-0.9)),)
    # No window wrote a letter or digit: the first word stands in, certainly not the answer.
    assert predictions["r"].text == "Nobody" and predictions["r"].no_answer_probability == 1.0
    with pytest.raises(ValueError, match="question 'r' has no window answer"):
        combine_window_answers([example, other], windows[:3])
