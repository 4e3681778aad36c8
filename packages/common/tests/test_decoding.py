"""Tests of qa_common.decoding.spans on hand-built logits and offsets, with values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qa_common.decoding.spans import decode_spans, no_answer_probability, pad_offsets

OUT = [-1, -1]  # offsets of [CLS], question, [SEP] and padding tokens

# "alpha beta gamma": window = [CLS] what [SEP] alpha beta gamma [SEP]
CONTEXT = "alpha beta gamma"
OFFSETS = [OUT, OUT, OUT, [0, 5], [6, 10], [11, 16], OUT]
# Context spans score start + end: (3,3)=1 (3,4)=2 (3,5)=5.5 (4,4)=4 (4,5)=7.5 (5,5)=4.5. The question token (1)
# and the last [SEP] (6) score far higher (18, and 12 for beta..[SEP]) but are not context.
START = [0.0, 9.0, 0.0, 1.0, 3.0, 0.0, 9.0]
END = [0.0, 9.0, 0.0, 0.0, 1.0, 4.5, 9.0]
RANKED = [("beta gamma", 7.5), ("alpha beta gamma", 5.5), ("gamma", 4.5), ("beta", 4.0), ("alpha beta", 2.0),
          ("alpha", 1.0)]


def softmax(values, mask=None) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    mask = np.ones(len(values), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    exponentials = np.where(mask, np.exp(values - values[mask].max()), 0.0)
    return exponentials / exponentials.sum()


def sigmoid(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-value))


def decode(starts, ends, offsets, contexts, example_index=None, mask=None, **options):
    starts, ends = np.asarray(starts, dtype=np.float32), np.asarray(ends, dtype=np.float32)
    return decode_spans(
        starts,
        ends,
        np.asarray(offsets, dtype=np.int64),
        np.ones(starts.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool),
        np.zeros(len(starts), dtype=np.int64) if example_index is None else np.asarray(example_index),
        contexts,
        **options,
    )


def ranked(decoding) -> list[tuple[str, float]]:
    return [(candidate.text, candidate.score) for candidate in decoding.candidates]


@pytest.mark.parametrize("n_best", [20, 100])  # partial sort of the top spans, and all spans kept
def test_best_span_and_n_best_order(n_best: int) -> None:
    (decoding,) = decode([START], [END], [OFFSETS], [CONTEXT], n_best=n_best)
    assert ranked(decoding) == RANKED
    best = decoding.best
    assert (best.text, best.start_char, best.end_char) == ("beta gamma", 6, 16)
    assert CONTEXT[best.start_char : best.end_char] == best.text
    assert best.probability == pytest.approx(softmax(START)[4] * softmax(END)[5], rel=1e-5)
    assert decoding.null_score == 0.0
    assert decoding.no_answer_probability == pytest.approx(sigmoid(0.0 - 7.5), rel=1e-6)
    assert decoding.no_answer_probability == pytest.approx(1 / (1 + math.exp(7.5)), rel=1e-6)


def test_n_best_keeps_the_top_candidates() -> None:
    (decoding,) = decode([START], [END], [OFFSETS], [CONTEXT], n_best=2)
    assert ranked(decoding) == RANKED[:2]


@pytest.mark.parametrize(
    ("max_answer_length", "expected"),
    [
        (1, [("gamma", 4.5), ("beta", 4.0), ("alpha", 1.0)]),
        (2, [("beta gamma", 7.5), ("gamma", 4.5), ("beta", 4.0), ("alpha beta", 2.0), ("alpha", 1.0)]),
        (3, RANKED),
    ],
)
def test_max_answer_length_is_the_longest_span_in_tokens(max_answer_length: int, expected) -> None:
    (decoding,) = decode([START], [END], [OFFSETS], [CONTEXT], max_answer_length=max_answer_length)
    assert ranked(decoding) == expected


def test_an_end_before_the_start_is_never_chosen() -> None:
    # start peaks on "gamma", end on "alpha": the reversed pair would score 12.
    starts = [0.0, 0.0, 0.0, 1.0, 0.0, 6.0, 0.0]
    ends = [0.0, 0.0, 0.0, 6.0, 0.0, 0.0, 0.0]
    (decoding,) = decode([starts], [ends], [OFFSETS], [CONTEXT])
    assert ranked(decoding)[:2] == [("alpha", 7.0), ("gamma", 6.0)]
    assert all(candidate.start_char < candidate.end_char for candidate in decoding.candidates)
    assert decoding.no_answer_probability == pytest.approx(sigmoid(0.0 - 7.0), rel=1e-6)


def test_spans_outside_the_context_are_never_chosen() -> None:
    starts = [50.0, 40.0, 30.0, 0.0, 0.0, 1.0, 20.0]
    ends = [50.0, 40.0, 30.0, 0.0, 0.0, 2.0, 20.0]
    (decoding,) = decode([starts], [ends], [OFFSETS], [CONTEXT])
    assert decoding.best.text == "gamma" and decoding.best.score == 3.0
    assert {candidate.text for candidate in decoding.candidates} <= {
        "alpha", "beta", "gamma", "alpha beta", "beta gamma", "alpha beta gamma"}
    assert decoding.null_score == 100.0
    assert decoding.no_answer_probability == pytest.approx(sigmoid(97.0), rel=1e-6)


def test_padding_is_not_part_of_the_probabilities() -> None:
    # A padded window: two extra positions, masked out, whose logits must not enter the softmax.
    starts = [START + [5.0, 5.0]]
    ends = [END + [5.0, 5.0]]
    mask = [[1] * 7 + [0, 0]]
    (decoding,) = decode(starts, ends, [OFFSETS + [OUT, OUT]], [CONTEXT], mask=mask)
    assert ranked(decoding) == RANKED
    assert decoding.best.probability == pytest.approx(softmax(START)[4] * softmax(END)[5], rel=1e-5)


# "alpha beta gamma delta" in two overlapping windows: A holds alpha beta gamma, B holds beta gamma delta.
LONG_CONTEXT = "alpha beta gamma delta"
OFFSETS_A = [OUT, OUT, OUT, [0, 5], [6, 10], [11, 16], OUT]
OFFSETS_B = [OUT, OUT, OUT, [6, 10], [11, 16], [17, 22], OUT]
START_A, END_A = [2.0, 0.0, 0.0, 0.5, 5.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.25, 3.0, 0.0]  # null 3
START_B, END_B = [-1.0, 0.0, 0.0, 4.0, 0.0, 0.25, 0.0], [0.5, 0.0, 0.0, 0.0, 2.0, 1.5, 0.0]  # null -0.5


def test_windows_of_one_example_are_merged_and_duplicates_removed() -> None:
    (decoding,) = decode([START_A, START_B], [END_A, END_B], [OFFSETS_A, OFFSETS_B], [LONG_CONTEXT], n_best=20)
    # A scores "beta gamma" 8, "beta" 5.25, "gamma" 3; B scores the same spans 6, 4, 2: A's copies are kept.
    assert ranked(decoding) == [
        ("beta gamma", 8.0),
        ("beta gamma delta", 5.5),
        ("beta", 5.25),
        ("alpha beta gamma", 3.5),
        ("gamma", 3.0),
        ("delta", 1.75),
        ("gamma delta", 1.5),
        ("alpha beta", 0.75),
        ("alpha", 0.5),
    ]
    spans = [(candidate.start_char, candidate.end_char) for candidate in decoding.candidates]
    assert len(spans) == len(set(spans))
    assert decoding.best.probability == pytest.approx(softmax(START_A)[4] * softmax(END_A)[5], rel=1e-5)
    # The example's null score is the smallest over its windows.
    assert decoding.null_score == -0.5
    assert decoding.no_answer_probability == pytest.approx(sigmoid(-0.5 - 8.0), rel=1e-6)


def test_n_best_applies_to_the_merged_candidates() -> None:
    (decoding,) = decode([START_A, START_B], [END_A, END_B], [OFFSETS_A, OFFSETS_B], [LONG_CONTEXT], n_best=3)
    assert ranked(decoding) == [("beta gamma", 8.0), ("beta gamma delta", 5.5), ("beta", 5.25)]


def test_examples_without_a_valid_span_get_probability_one_and_no_candidates() -> None:
    no_context = [OUT] * 7  # e.g. a window holding only the question
    space_only = [OUT, OUT, OUT, [5, 6], OUT, OUT, OUT]  # the one context token is the space after "alpha"
    starts = [START_A, START_A, START_A, START_B]
    ends = [END_A, END_A, END_A, END_B]
    decodings = decode(starts, ends, [no_context, space_only, OFFSETS_A, OFFSETS_B],
                       ["question only", "alpha beta", LONG_CONTEXT, "no windows"], example_index=[0, 1, 2, 2])
    assert len(decodings) == 4
    for decoding in (decodings[0], decodings[1]):
        assert decoding.candidates == ()
        assert decoding.best is None
        assert decoding.no_answer_probability == 1.0
        assert decoding.null_score == 3.0  # start + end logits of window A at [CLS]
    assert decodings[2].best.text == "beta gamma" and decodings[2].null_score == -0.5
    # An example no window belongs to.
    assert (decodings[3].candidates, decodings[3].null_score, decodings[3].no_answer_probability) == ((), 0.0, 1.0)


@pytest.mark.parametrize(
    ("null_score", "best_score", "expected"),
    [
        (0.0, 0.0, 0.5),
        (2.0, 0.0, 1 / (1 + math.exp(-2.0))),
        (1.0, 3.5, 1 / (1 + math.exp(2.5))),
        (1000.0, 0.0, 1 / (1 + math.exp(-60.0))),  # clipped: no overflow
        (-1000.0, 0.0, 1 / (1 + math.exp(60.0))),
    ],
)
def test_no_answer_probability_is_the_sigmoid_of_null_minus_best(null_score, best_score, expected) -> None:
    assert no_answer_probability(null_score, best_score) == pytest.approx(expected, rel=1e-12)


def test_pad_offsets_fills_with_not_context() -> None:
    padded = pad_offsets([np.array([[0, 3], [4, 7]]), np.array([[-1, -1], [0, 2], [3, 5]])], 4)
    np.testing.assert_array_equal(
        padded,
        [[[0, 3], [4, 7], [-1, -1], [-1, -1]], [[-1, -1], [0, 2], [3, 5], [-1, -1]]],
    )


def _merged_one_by_one(spans, offsets, example_index, contexts, n_best):
    """The merge rule written plainly, one candidate at a time: the reference of the vectorised merge."""
    results = []
    for example in range(len(contexts)):
        features = [f for f in range(len(example_index)) if example_index[f] == example]
        entries = [(-float(spans.score[f, r]), f, int(spans.start_token[f, r]), int(spans.end_token[f, r]))
                   for f in features for r in range(spans.score.shape[1]) if np.isfinite(spans.score[f, r])]
        seen, kept = set(), []
        for negative, f, start, end in sorted(entries):
            characters = (int(offsets[f][start][0]), int(offsets[f][end][1]))
            text = contexts[example][characters[0]:characters[1]]
            if characters not in seen and text.strip():
                seen.add(characters)
                kept.append((text, -negative))
        null = min((float(spans.null_score[f]) for f in features), default=0.0)
        results.append((kept[:n_best], null))
    return results


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_vectorised_merge_equals_the_one_by_one_rule_with_many_ties(seed: int) -> None:
    """Random windows of random examples, scores rounded so ties and duplicate character ranges abound."""
    from qa_common.decoding.spans import WindowSpans, merge_window_spans

    rng = np.random.default_rng(seed)
    contexts = ["".join(rng.choice(list("ab "), size=40)) for _ in range(7)]
    example_index = np.sort(rng.integers(0, 6, size=15))  # example 6 has no window
    offsets = []
    for _ in example_index:
        positions = np.sort(rng.integers(0, 40, size=(12, 2)), axis=1)
        positions[:3] = -1  # [CLS], question, [SEP]
        offsets.append(positions)
    start = np.sort(rng.integers(3, 12, size=(15, 6)), axis=1)
    end = np.minimum(start + rng.integers(0, 4, size=(15, 6)), 11)
    score = np.round(rng.normal(size=(15, 6)), 0).astype(np.float32)
    score[rng.random((15, 6)) < 0.2] = -np.inf
    spans = WindowSpans(start, end, score, np.ones_like(score), np.round(rng.normal(size=15), 0).astype(np.float32))
    for n_best in (1, 3, 20):
        merged = merge_window_spans(spans, offsets, example_index, contexts, n_best=n_best)
        expected = _merged_one_by_one(spans, offsets, example_index, contexts, n_best)
        assert [([(c.text, c.score) for c in d.candidates], d.null_score) for d in merged] == expected
    assert merged[6].candidates == () and merged[6].no_answer_probability == 1.0
