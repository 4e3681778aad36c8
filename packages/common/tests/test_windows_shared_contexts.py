"""make_windows' shared-context path (each distinct context tokenised once) against the reference that gives the
tokenizer every (question, context) pair, on the SQuAD sample with a real (bert-base-uncased vocabulary) tokenizer.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
from transformers import PreTrainedTokenizerFast

from qa_common.data import windows
from qa_common.data.examples import Answer, SquadExample
from qa_common.data.windows import ExtractiveFeatures, make_windows

REFERENCE_ENCODE = windows._encode
MOST_SAMPLED_PAIRS = 5  # the self-check encodes at most this many pairs through the tokenizer


@pytest.fixture(scope="module")
def article_examples(examples) -> list[SquadExample]:
    """The same questions, each on the whole text of its article (3 or 4 paragraphs, 400-700 tokens), so even
    384-token windows overflow; answers moved with their paragraph."""
    paragraphs: dict[str, list[str]] = {}
    for example in examples:
        if example.context not in paragraphs.setdefault(example.title, []):
            paragraphs[example.title].append(example.context)
    moved = []
    for example in examples:
        article = paragraphs[example.title]
        shift = sum(len(paragraph) + 1 for paragraph in article[: article.index(example.context)])
        answers = tuple(Answer(text=answer.text, start=answer.start + shift) for answer in example.answers)
        moved.append(replace(example, context="\n".join(article), answers=answers))
    assert all(e.context[a.start : a.end] == a.text for e in moved for a in e.answers)
    return moved


@pytest.fixture
def pair_encodings(monkeypatch) -> list[int]:
    """How many pairs each call of windows._encode (the tokenizer on every pair) was given."""
    calls: list[int] = []

    def spy(tokenizer, questions, contexts, max_length, doc_stride):
        calls.append(len(questions))
        return REFERENCE_ENCODE(tokenizer, questions, contexts, max_length, doc_stride)

    monkeypatch.setattr(windows, "_encode", spy)
    return calls


def reference_windows(tokenizer, examples, **settings) -> ExtractiveFeatures:
    """make_windows with every pair through the tokenizer."""
    return windows._make_windows(tokenizer, examples, encode=REFERENCE_ENCODE, **settings)


def settings(max_length: int, doc_stride: int, max_question_length: int, with_labels: bool = True) -> dict:
    return {"max_length": max_length, "doc_stride": doc_stride, "max_question_length": max_question_length,
            "with_labels": with_labels}


def assert_same_features(features: ExtractiveFeatures, expected: ExtractiveFeatures) -> None:
    assert features.input_ids == expected.input_ids
    assert features.token_type_ids == expected.token_type_ids
    assert features.example_index.dtype == expected.example_index.dtype
    np.testing.assert_array_equal(features.example_index, expected.example_index)
    assert len(features.offsets) == len(expected.offsets)
    for offsets, expected_offsets in zip(features.offsets, expected.offsets, strict=True):
        assert offsets.dtype == expected_offsets.dtype
        np.testing.assert_array_equal(offsets, expected_offsets)
    for name in ("start_positions", "end_positions"):
        got, want = getattr(features, name), getattr(expected, name)
        assert (got is None) == (want is None)
        if want is not None:
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)


class RecordingTokenizer:
    """A tokenizer that counts every text it is given (both texts of a pair) and otherwise is ``tokenizer``."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.texts: Counter[str] = Counter()

    def __call__(self, text, text_pair=None, **kwargs):
        for texts in (text, text_pair):
            if texts is not None:
                self.texts.update([texts] if isinstance(texts, str) else texts)
        return self.tokenizer(text, text_pair, **kwargs)

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)


@pytest.mark.parametrize(("data", "max_length", "doc_stride", "max_question_length"), [
    ("examples", 128, 32, 32),
    ("article_examples", 384, 128, 64),
    ("article_examples", 96, 32, 32),
])
def test_windows_of_shared_contexts_are_those_of_every_pair(request, tokenizer, pair_encodings, data, max_length,
                                                            doc_stride, max_question_length) -> None:
    examples = request.getfixturevalue(data)
    chosen = settings(max_length, doc_stride, max_question_length)
    expected = reference_windows(tokenizer, examples, **chosen)
    counts = np.bincount(expected.example_index, minlength=len(examples))
    assert counts.min() >= 1 and counts.max() >= 3 and np.sum(counts > 1) > len(examples) // 3  # real overflow
    assert expected.start_positions.max() > 0 and np.sum(expected.start_positions > 0) > 150

    features = make_windows(tokenizer, examples, **chosen)

    # Only the self-check's sample went through the tokenizer as pairs: the windows are the shared path's own.
    assert pair_encodings and max(pair_encodings) <= MOST_SAMPLED_PAIRS
    assert_same_features(features, expected)


def test_each_distinct_context_is_tokenised_once(tokenizer, examples) -> None:
    contexts = {example.context for example in examples}
    assert len(examples) >= 10 * len(contexts)
    chosen = settings(128, 32, 32)
    every_pair = RecordingTokenizer(tokenizer)
    expected = reference_windows(every_pair, examples, **chosen)
    assert sum(every_pair.texts[context] for context in contexts) == len(examples)  # once a question

    shared = RecordingTokenizer(tokenizer)
    features = make_windows(shared, examples, **chosen)

    assert all(shared.texts[context] >= 1 for context in contexts)
    assert sum(shared.texts[context] for context in contexts) <= len(contexts) + MOST_SAMPLED_PAIRS
    questions = [example.question.lstrip() for example in examples]
    assert sum(shared.texts[question] for question in set(questions)) <= len(questions) + MOST_SAMPLED_PAIRS
    assert_same_features(features, expected)


def test_over_long_questions_are_cut_as_with_every_pair(tokenizer, examples, pair_encodings) -> None:
    """One question over its 32-token budget (cut after a first pass), one longer than the window (the tokenizer
    fails first), in a batch whose other questions keep theirs."""
    mixed = list(examples[:60])
    over_budget = " ".join([mixed[5].question] * 4)
    over_window = " ".join([mixed[30].question] * 16)
    over_budget_ids = tokenizer(over_budget, add_special_tokens=False)["input_ids"]
    assert 32 < len(over_budget_ids) < 128 - 32 - 3 and len(tokenizer(over_window)["input_ids"]) > 128
    mixed[5], mixed[30] = replace(mixed[5], question=over_budget), replace(mixed[30], question=over_window)
    chosen = settings(128, 32, 32)
    expected = reference_windows(tokenizer, mixed, **chosen)

    features = make_windows(tokenizer, mixed, **chosen)

    assert max(pair_encodings) <= MOST_SAMPLED_PAIRS
    assert_same_features(features, expected)
    for feature in np.flatnonzero(features.example_index == 5):
        ids = features.input_ids[feature]
        assert ids[1:33] == over_budget_ids[:32] and ids[33] == tokenizer.sep_token_id
    kept = tokenizer(mixed[6].question.lstrip(), add_special_tokens=False)["input_ids"]
    assert features.input_ids[np.flatnonzero(features.example_index == 6)[0]][1 : len(kept) + 1] == kept


def test_a_question_leaving_at_most_doc_stride_context_tokens_is_cut_to_its_budget(tokenizer, examples) -> None:
    """With 100 question tokens a 128-token window has 25 for the context, no more than doc_stride: the pair
    tokenizer panics there (pyo3's PanicException, which ``except Exception`` does not catch). The shared path
    cuts the question to its budget like any other over-long one."""
    batch = [example for example in examples if example.context == examples[0].context][:12]
    question = " ".join(["why"] * 100)
    batch[3] = replace(batch[3], question=question)
    chosen = settings(128, 32, 32)
    cut = [replace(example, question=q) for example, q in
           zip(batch, windows._truncated_questions(tokenizer, [e.question for e in batch], 32), strict=True)]
    assert cut[3].question == " ".join(["why"] * 32) and cut[4].question == batch[4].question
    expected = reference_windows(tokenizer, cut, **chosen)
    assert np.sum(expected.example_index == 3) >= 2

    features = make_windows(tokenizer, batch, **chosen)

    assert_same_features(features, expected)


def test_a_single_question_that_makes_the_pair_tokenizer_panic_is_cut_to_its_budget(tokenizer, examples) -> None:
    """One served question goes through pair encoding (too few to share contexts), where 300 question tokens at
    384/128 leave 81 context tokens a window, under doc_stride: the tokenizer panics (a BaseException). It is cut
    to its 64-token budget instead, as an over-long question is."""
    question = " ".join(["what"] * 300)
    single = [replace(examples[0], question=question)]
    with pytest.raises(BaseException, match="stride"):  # what the tokenizer does with the pair as it is
        windows._encode(tokenizer, [question], [single[0].context], 384, 128)

    features = make_windows(tokenizer, single, max_length=384, doc_stride=128, max_question_length=64)

    question_tokens = [int((offsets[:, 0] == windows.NOT_CONTEXT).sum()) for offsets in features.offsets]
    assert len(features) == 1 and question_tokens == [64 + 3]  # 64 question tokens, [CLS] and two [SEP]
    assert features.input_ids[0][1:65] == [tokenizer.convert_tokens_to_ids("what")] * 64


def test_a_failed_self_check_falls_back_to_every_pair(tokenizer, article_examples, pair_encodings, monkeypatch,
                                                      caplog) -> None:
    chosen = settings(128, 32, 32)
    expected = reference_windows(tokenizer, article_examples, **chosen)
    learnt = windows._pair_template
    monkeypatch.setattr(windows, "_pair_template",
                        lambda encoded, feature: replace(learnt(encoded, feature), middle=[tokenizer.unk_token_id]))
    monkeypatch.setattr(windows, "_warned", set())

    with caplog.at_level(logging.WARNING, logger=windows.__name__):
        features = make_windows(tokenizer, article_examples, **chosen)
        again = make_windows(tokenizer, article_examples[:40], **chosen)

    assert pair_encodings[-1] == 40 and pair_encodings[-3] == len(article_examples)  # every pair after the check
    assert [record.getMessage() for record in caplog.records] == [
        f"make_windows: {type(tokenizer).__name__}'s pair encoding differs from the windows built from shared "
        "contexts; encoding every pair (slower, same windows)"]  # once
    assert_same_features(features, expected)
    assert_same_features(again, reference_windows(tokenizer, article_examples[:40], **chosen))


def test_the_fallback_warning_names_a_tokenizers_release_that_cuts_overflow_short(tokenizer, monkeypatch,
                                                                                   caplog) -> None:
    monkeypatch.setattr(windows, "_warned", set())
    monkeypatch.setattr(windows, "_tokenizers_version", lambda: "0.23.2")
    with caplog.at_level(logging.WARNING, logger=windows.__name__):
        windows._warn_once(tokenizer, "pair encoding differs")
    assert caplog.records[0].getMessage().endswith(
        "encoding every pair (slower, same windows); tokenizers 0.23.2 cuts overflow windows short "
        "(huggingface/tokenizers#2091): install tokenizers 0.23.3 or later, or 0.22")
    monkeypatch.setattr(windows, "_tokenizers_version", lambda: "0.23.3")
    with caplog.at_level(logging.WARNING, logger=windows.__name__):
        windows._warn_once(tokenizer, "another reason")
    assert caplog.records[1].getMessage().endswith("(slower, same windows)")


def test_windows_stepping_other_than_the_tokenizers_fail_the_self_check(tokenizer, article_examples, pair_encodings,
                                                                       monkeypatch) -> None:
    chosen = settings(128, 32, 32)
    expected = reference_windows(tokenizer, article_examples, **chosen)
    spans = windows._context_spans
    monkeypatch.setattr(windows, "_context_spans", lambda n_question, n_context, n_special, max_length, doc_stride:
                        spans(n_question, n_context, n_special, max_length, doc_stride - 1))

    features = make_windows(tokenizer, article_examples, **chosen)

    assert pair_encodings[-1] == len(article_examples)
    assert_same_features(features, expected)


def test_batches_sharing_too_little_go_through_every_pair(tokenizer, examples, pair_encodings, monkeypatch) -> None:
    distinct = list({example.context: example for example in examples}.values())
    chosen = settings(128, 32, 32)
    for batch in (distinct, examples[:5]):
        pair_encodings.clear()
        assert_same_features(make_windows(tokenizer, batch, **chosen), reference_windows(tokenizer, batch, **chosen))
        assert pair_encodings == [len(batch)]
    monkeypatch.setattr(tokenizer, "truncation_side", "left")  # windows from the end: not what spans model
    pair_encodings.clear()
    batch = examples[:40]
    assert_same_features(make_windows(tokenizer, batch, **chosen), reference_windows(tokenizer, batch, **chosen))
    assert pair_encodings == [len(batch)]


def test_context_spans_follow_the_tokenizers_overflow_windows(tokenizer, article_examples) -> None:
    assert windows._context_spans(2, 10, 3, 15, 2) == [(0, 10)]  # fits
    assert windows._context_spans(2, 10, 3, 11, 2) == [(0, 6), (4, 10)]  # 6 context tokens a window, step 4
    assert windows._context_spans(2, 11, 3, 11, 2) == [(0, 6), (4, 10), (8, 11)]
    assert windows._context_spans(2, 11, 3, 11, 0) == [(0, 6), (6, 11)]
    for doc_stride in (6, 7):  # a stride not under the 6-token budget: the tokenizer panics
        with pytest.raises(windows._QuestionTooLong):
            windows._context_spans(2, 11, 3, 11, doc_stride)
    example = max(article_examples, key=lambda e: len(e.context))
    question = tokenizer(example.question, add_special_tokens=False)["input_ids"]
    context = tokenizer(example.context, add_special_tokens=False)["input_ids"]
    for max_length, doc_stride in ((64, 0), (64, 16), (128, 32), (384, 128), (96, 96 - len(question) - 3 - 1)):
        encoded = tokenizer(example.question, example.context, truncation="only_second", max_length=max_length,
                            stride=doc_stride, return_overflowing_tokens=True)
        windows_context = [[token for token, sid in zip(encoded["input_ids"][f], encoded.sequence_ids(f)) if sid == 1]
                           for f in range(len(encoded["input_ids"]))]
        spans = windows._context_spans(len(question), len(context), 3, max_length, doc_stride)
        assert len(spans) >= 2
        assert windows_context == [context[start:stop] for start, stop in spans], (max_length, doc_stride)


def roberta_like(examples: list[SquadExample], add_prefix_space: bool) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with RoBERTa's pair template (<s> q </s></s> c </s>, no token types), trained
    here on the sample: no other tokenizer is at hand offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    backend.decoder = decoders.ByteLevel()
    texts = sorted({example.context for example in examples}) + [example.question for example in examples]
    backend.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=2000,
                                                           special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                                           initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    backend.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True,
                                                          add_prefix_space=add_prefix_space)
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                   cls_token="<s>", pad_token="<pad>", unk_token="<unk>",
                                   model_input_names=["input_ids", "attention_mask"])


@pytest.mark.parametrize("add_prefix_space", [False, True])
def test_a_roberta_style_tokenizer_gets_the_same_windows_or_every_pair(examples, pair_encodings,
                                                                        add_prefix_space) -> None:
    """Without a prefix space the template and windows carry over. With one, RobertaProcessing trims the space off
    the first token's offsets of a whole context but not of an overflow window's: the self-check sees it."""
    roberta = roberta_like(examples, add_prefix_space)
    chosen = settings(128, 32, 32)
    expected = reference_windows(roberta, examples, **chosen)
    assert expected.token_type_ids is None
    assert expected.input_ids[0][0] == roberta.cls_token_id and expected.input_ids[0][-1] == roberta.sep_token_id
    assert np.bincount(expected.example_index).max() >= 3

    features = make_windows(roberta, examples, **chosen)

    assert_same_features(features, expected)
    if add_prefix_space:
        assert pair_encodings[-1] == len(examples)
    else:
        assert max(pair_encodings) <= MOST_SAMPLED_PAIRS
