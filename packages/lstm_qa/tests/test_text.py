"""Word tokenisation, vocabulary and windows of lstm_qa on real SQuAD contexts."""

import re

import numpy as np
import pytest

from lstm_qa.text import NULL_ID, PAD_ID, SPECIAL_TOKENS, UNK_ID, Vocabulary, make_word_windows, tokenize
from qa_common.data.windows import NOT_CONTEXT
from qa_common.testing.contract import TRAIN_SAMPLE, VALIDATION_SAMPLE, sample_examples


def test_offsets_round_trip_to_exact_context_substrings_on_real_contexts():
    contexts = {e.context for e in (*sample_examples(TRAIN_SAMPLE), *sample_examples(VALIDATION_SAMPLE))}
    assert len(contexts) > 50
    for context in contexts:
        words, spans = tokenize(context)
        assert len(words) == len(spans) > 0
        assert all(context[start:end] == word for word, (start, end) in zip(words, spans))
        assert np.all(spans[1:, 0] >= spans[:-1, 1])  # in order, not overlapping
        # Nothing but white space is left between the words.
        assert "".join(words) == re.sub(r"\s", "", context)


def test_tokenize_splits_punctuation_hyphens_and_apostrophes():
    words, spans = tokenize("Tesla's third-most famous idea (1891), cost $5.")
    assert words == ["Tesla", "'", "s", "third", "-", "most", "famous", "idea", "(", "1891", ")", ",", "cost", "$",
                     "5", "."]
    assert spans[3].tolist() == [8, 13]
    assert tokenize("") == ([], pytest.approx(np.zeros((0, 2))))


def test_vocabulary_is_deterministic_with_special_words_first(tmp_path):
    texts = ["The cat sat.", "the dog sat", "A bird"]
    vocabulary = Vocabulary.build(texts, max_size=5)
    assert vocabulary.words == [*SPECIAL_TOKENS, "sat", "the"]  # most frequent first, ties alphabetical
    assert vocabulary.ids(["The", "SAT", "zebra"]) == [4, 3, UNK_ID]
    assert Vocabulary.build(reversed(texts), max_size=5).words == vocabulary.words
    assert Vocabulary.build(texts, max_size=6).words == [*SPECIAL_TOKENS, "sat", "the", "."]
    assert Vocabulary.build(texts, max_size=100, min_count=2).words == [*SPECIAL_TOKENS, "sat", "the"]
    vocabulary.save(tmp_path)
    assert Vocabulary.load(tmp_path).words == vocabulary.words
    (tmp_path / "vocabulary.json").write_text('["a", "b"]')
    with pytest.raises(ValueError, match="not an lstm_qa vocabulary"):
        Vocabulary.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="lacks vocabulary.json"):
        Vocabulary.load(tmp_path / "nowhere")


def test_windows_overlap_by_doc_stride_and_label_the_answer_words():
    examples = list(sample_examples(TRAIN_SAMPLE))
    longest = max((e for e in examples if e.answers), key=lambda e: len(tokenize(e.context)[0]))
    words, spans = tokenize(longest.context)
    vocabulary = Vocabulary.build([e.context for e in examples], max_size=100000)
    max_length, stride = 64, 16
    features = make_word_windows(vocabulary, [longest], max_length=max_length, doc_stride=stride,
                                 max_question_length=8, with_labels=True)
    step = max_length - 1 - stride
    assert len(features) == 1 + -(-(len(words) - (max_length - 1)) // step)
    for index in range(len(features)):
        ids, offsets = features.input_ids[index], features.offsets[index]
        assert ids[0] == NULL_ID and offsets[0].tolist() == [NOT_CONTEXT, NOT_CONTEXT]
        assert len(ids) <= max_length and PAD_ID not in ids
        first = index * step
        assert offsets[1:].tolist() == spans[first : first + max_length - 1].tolist()
        assert features.extra_inputs["question_ids"][index] == vocabulary.ids(tokenize(longest.question)[0][:8])
    labelled = [(i, s, e) for i, (s, e) in enumerate(zip(features.start_positions, features.end_positions)) if s]
    assert labelled, "the answer is in some window"
    for index, start, end in labelled:
        offsets = features.offsets[index]
        text = longest.context[offsets[start, 0] : offsets[end, 1]]
        assert text == longest.answers[0].text
    # Windows without the answer point at the no-answer position.
    assert all(e == 0 for s, e in zip(features.start_positions, features.end_positions) if s == 0)
    with pytest.raises(ValueError, match="doc_stride"):
        make_word_windows(vocabulary, [longest], max_length=10, doc_stride=9, max_question_length=8)


def test_a_vocabulary_extended_with_pretrained_words_keeps_its_ids_and_adds_only_new_words():
    vocabulary = Vocabulary.from_words(["the", "the", "tesla", "coil"], max_size=10)
    extended = vocabulary.extended(["The", "of", "Tesla", "edison", "of", "<unk>"])
    assert extended.words == [*vocabulary.words, "of", "edison"]
    assert extended.ids(["coil", "Edison", "unseen"]) == [vocabulary.index["coil"], len(vocabulary) + 1, UNK_ID]
