"""The exact-match feature of lstm_qa's readers, computed inside the module from the word ids."""

import torch

from lstm_qa.adapter import LstmAdapter
from lstm_qa.modules import occurs_in
from lstm_qa.text import NULL_ID, PAD_ID, UNK_ID
from qa_common.testing.contract import TRAIN_SAMPLE, sample_examples


def test_occurs_in_marks_known_words_found_in_the_other_text_and_never_special_ids():
    context = torch.tensor([[NULL_ID, 7, 8, UNK_ID, 9, 7, PAD_ID]])
    question = torch.tensor([[7, UNK_ID, 9, PAD_ID]])
    found = occurs_in(context, context != PAD_ID, question, question != PAD_ID).squeeze(-1)
    # 7 and 9 are in the question; the no-answer word, <unk> (also in the question) and padding never match.
    assert found.tolist() == [[0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0]]
    # Padding of the other text does not count as a word of it.
    padded_question = torch.tensor([[PAD_ID, PAD_ID, 8, PAD_ID]])
    found = occurs_in(context, context != PAD_ID, padded_question, padded_question != PAD_ID).squeeze(-1)
    assert found.tolist() == [[0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]]


def test_the_feature_widens_the_encoder_input():
    adapter = LstmAdapter()
    with_feature = adapter.build(adapter.config("tiny", {}))
    without = adapter.build(adapter.config("tiny", {"exact_match": False}))
    examples = list(sample_examples(TRAIN_SAMPLE))[:50]
    with_feature.prepare(examples)
    without.prepare(examples)
    encoder_inputs = [model.module.encoder.layers[0][0].input_size for model in (with_feature, without)]
    assert encoder_inputs == [17, 16]  # 16-d embeddings, plus one feature
