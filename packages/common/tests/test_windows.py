"""Tests of qa_common.data.windows on the SQuAD sample with a real (bert-base-uncased vocabulary) tokenizer."""

from __future__ import annotations

import numpy as np
import pytest

from qa_common.data.examples import Answer, SquadExample
from qa_common.data.windows import NOT_CONTEXT, ExtractiveFeatures, make_windows

MAX_LENGTH, DOC_STRIDE, MAX_QUESTION_LENGTH = 128, 32, 32


@pytest.fixture(scope="module")
def features(tokenizer, examples) -> ExtractiveFeatures:
    return make_windows(tokenizer, examples, max_length=MAX_LENGTH, doc_stride=DOC_STRIDE,
                        max_question_length=MAX_QUESTION_LENGTH, with_labels=True)


def windows_of(features: ExtractiveFeatures, example_index: int) -> np.ndarray:
    return np.flatnonzero(features.example_index == example_index)


def context_offsets(features: ExtractiveFeatures, feature: int) -> np.ndarray:
    offsets = features.offsets[feature]
    return offsets[offsets[:, 0] != NOT_CONTEXT]


def cuts_a_word(example: SquadExample) -> bool:
    """The gold answer starts or ends inside a word (a data artifact no word-piece span can match exactly)."""
    answer, context = example.answers[0], example.context
    return (answer.start > 0 and context[answer.start - 1].isalnum() and answer.text[0].isalnum()) or (
        answer.end < len(context) and context[answer.end].isalnum() and answer.text[-1].isalnum())


def test_long_contexts_give_overlapping_windows_of_at_most_max_length(tokenizer, examples, features) -> None:
    counts = np.bincount(features.example_index, minlength=len(examples))
    assert counts.min() >= 1
    assert np.all(np.diff(features.example_index) >= 0)  # windows of one example are consecutive
    assert features.lengths().max() == MAX_LENGTH
    several = np.flatnonzero(counts > 1)
    assert len(several) > 100  # most sample contexts are longer than one 128-token window
    for example_index in several:
        context = examples[example_index].context
        windows = windows_of(features, example_index)
        assert all(features.lengths()[window] == MAX_LENGTH for window in windows[:-1])
        for before, after in zip(windows[:-1], windows[1:]):
            earlier, later = context_offsets(features, before), context_offsets(features, after)
            np.testing.assert_array_equal(earlier[-DOC_STRIDE:], later[:DOC_STRIDE])  # overlap of doc_stride tokens
            assert later[-1, 1] > earlier[-1, 1]  # and the next window goes further
        # Together the windows cover the whole context.
        assert context_offsets(features, windows[0])[0, 0] == len(context) - len(context.lstrip())
        assert context_offsets(features, windows[-1])[-1, 1] == len(context.rstrip())


def test_each_window_is_question_then_context(tokenizer, examples, features) -> None:
    for feature in (0, 1, 2, len(features) - 1):
        ids, types, offsets = features.input_ids[feature], features.token_type_ids[feature], features.offsets[feature]
        separators = [i for i, token in enumerate(ids) if token == tokenizer.sep_token_id]
        assert ids[0] == tokenizer.cls_token_id and len(separators) == 2 and separators[1] == len(ids) - 1
        question = tokenizer(examples[features.example_index[feature]].question.lstrip(), add_special_tokens=False)
        assert ids[1 : separators[0]] == question["input_ids"]
        assert types == [0] * (separators[0] + 1) + [1] * (len(ids) - separators[0] - 1)
        # Only context tokens carry character offsets.
        assert np.all(offsets[: separators[0] + 1] == NOT_CONTEXT) and np.all(offsets[-1] == NOT_CONTEXT)
        assert np.all(offsets[separators[0] + 1 : -1] >= 0)


def test_every_answer_is_recoverable_exactly_from_the_offsets(examples, features) -> None:
    answerable = [index for index, example in enumerate(examples) if example.answers]
    cut = [index for index in answerable if cuts_a_word(examples[index])]
    assert [examples[index].answers[0].text for index in cut] == ["7,000,000 square kilometres (2,70"]
    for example_index in sorted(set(answerable) - set(cut)):
        example, answer = examples[example_index], examples[example_index].answers[0]
        found = []
        for window in windows_of(features, example_index):
            offsets = context_offsets(features, window)
            starts, ends = np.flatnonzero(offsets[:, 0] == answer.start), np.flatnonzero(offsets[:, 1] == answer.end)
            if len(starts) and len(ends):
                found.append(example.context[offsets[starts[0], 0] : offsets[ends[-1], 1]])
        assert found and set(found) == {answer.text}, example.id


def test_labels_mark_the_answer_tokens_only_in_windows_holding_the_whole_answer(examples, features) -> None:
    labelled = 0
    for feature in range(len(features)):
        example = examples[features.example_index[feature]]
        start, end = int(features.start_positions[feature]), int(features.end_positions[feature])
        if not example.answers:
            assert (start, end) == (0, 0), example.id
            continue
        answer, offsets = example.answers[0], context_offsets(features, feature)
        holds_answer = offsets[0, 0] <= answer.start and answer.end <= offsets[-1, 1]
        if not holds_answer:
            assert (start, end) == (0, 0), example.id
            continue
        labelled += 1
        assert 0 < start <= end
        span = example.context[features.offsets[feature][start, 0] : features.offsets[feature][end, 1]]
        if cuts_a_word(example):
            assert span == "7,000,000 square kilometres (2,700"  # the whole last word piece
        else:
            assert span == answer.text, example.id
    assert labelled >= sum(1 for example in examples if example.answers)


def test_an_answer_cut_by_a_window_boundary_is_labelled_in_the_next_window(tokenizer, examples) -> None:
    example = max(examples, key=lambda e: len(e.context))
    plain = make_windows(tokenizer, [example], max_length=MAX_LENGTH, doc_stride=DOC_STRIDE,
                         max_question_length=MAX_QUESTION_LENGTH)
    first = context_offsets(plain, 0)
    # Three tokens before the end of the first window to three tokens after it: whole only in the second.
    answer_start, answer_end = int(first[-3, 0]), int(context_offsets(plain, 1)[DOC_STRIDE + 2, 1])
    text = example.context[answer_start:answer_end]
    straddling = SquadExample(id="straddling", question=example.question, context=example.context,
                              answers=(Answer(text=text, start=answer_start),))
    features = make_windows(tokenizer, [straddling], max_length=MAX_LENGTH, doc_stride=DOC_STRIDE,
                            max_question_length=MAX_QUESTION_LENGTH, with_labels=True)
    assert (features.start_positions[0], features.end_positions[0]) == (0, 0)  # cut off: [CLS]
    start, end = int(features.start_positions[1]), int(features.end_positions[1])
    assert end - start == 5
    assert example.context[features.offsets[1][start, 0] : features.offsets[1][end, 1]] == text
    assert np.all(features.start_positions[2:] == 0) and np.all(features.end_positions[2:] == 0)


def test_an_over_long_question_is_truncated_to_its_budget(tokenizer, examples) -> None:
    example = max(examples, key=lambda e: len(e.context))
    question = " ".join([example.question] * 16)
    question_ids = tokenizer(question, add_special_tokens=False)["input_ids"]
    assert len(question_ids) > MAX_LENGTH
    long_question = SquadExample(id="long", question=question, context=example.context, answers=example.answers)
    features = make_windows(tokenizer, [long_question], max_length=MAX_LENGTH, doc_stride=DOC_STRIDE,
                            max_question_length=MAX_QUESTION_LENGTH, with_labels=True)
    assert len(features) >= 3
    for feature in range(len(features)):
        ids = features.input_ids[feature]
        assert ids[1 : MAX_QUESTION_LENGTH + 1] == question_ids[:MAX_QUESTION_LENGTH]
        assert ids[MAX_QUESTION_LENGTH + 1] == tokenizer.sep_token_id
        assert len(context_offsets(features, feature)) > DOC_STRIDE
    assert features.lengths()[0] == MAX_LENGTH


def test_leading_spaces_of_a_question_are_ignored(tokenizer, examples) -> None:
    example = examples[0]
    spaced = SquadExample(id="spaced", question="   " + example.question, context=example.context,
                          answers=example.answers)
    plain, padded = (make_windows(tokenizer, [item], max_length=MAX_LENGTH, doc_stride=DOC_STRIDE)
                     for item in (example, spaced))
    assert plain.input_ids == padded.input_ids
    assert plain.start_positions is None and plain.end_positions is None


def test_doc_stride_must_leave_room_for_new_context(tokenizer, examples) -> None:
    budget = MAX_LENGTH - MAX_QUESTION_LENGTH - 3  # context tokens of a window with the longest question
    for doc_stride in (budget, MAX_LENGTH):
        with pytest.raises(ValueError, match=rf"doc_stride \({doc_stride}\) must be smaller"):
            make_windows(tokenizer, examples[:1], max_length=MAX_LENGTH, doc_stride=doc_stride,
                         max_question_length=MAX_QUESTION_LENGTH)
    # The largest allowed stride works even with a question of the full budget: windows advance one token.
    question = " ".join(["why"] * MAX_QUESTION_LENGTH)
    example = SquadExample(id="q", question=question, context=examples[0].context, answers=())
    features = make_windows(tokenizer, [example], max_length=MAX_LENGTH, doc_stride=budget - 1,
                            max_question_length=MAX_QUESTION_LENGTH)
    assert len(features) > 1
    first, second = context_offsets(features, 0), context_offsets(features, 1)
    assert len(first) == budget
    np.testing.assert_array_equal(first[1:], second[: budget - 1])
