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


def test_the_no_answer_head_scores_position_zero_from_the_whole_window():
    adapter = LstmAdapter()
    model = adapter.build(adapter.config("tiny", {}))
    model.prepare(list(sample_examples(TRAIN_SAMPLE))[:50])
    module = model.module.eval()
    input_ids = torch.tensor([[NULL_ID, 5, 6, 7, 8], [NULL_ID, 9, 6, PAD_ID, PAD_ID]])
    question_ids = torch.tensor([[6, 10], [11, PAD_ID]])
    mask = (input_ids != PAD_ID).long()
    outputs = module(input_ids=input_ids, attention_mask=mask, question_ids=question_ids)
    head = module.no_answer.eval()
    with torch.no_grad():
        context, question, question_mask = module.encode(input_ids, mask.bool(), question_ids)
        summary = module.window_summary(input_ids, mask.bool(), question_ids, question_mask,
                                        _modeling_states(module, input_ids, mask.bool(), question_ids), question)
        # The last feature is the share of the question's words found in the window: 6 of (6, 10); none of (11).
        assert summary[:, -1].tolist() == [0.5, 0.0]
        null = head(summary)
    assert torch.allclose(outputs.start_logits[:, 0], null[:, 0], atol=1e-5)
    assert torch.allclose(outputs.end_logits[:, 0], null[:, 1], atol=1e-5)
    # A word changed past the first position changes the no-answer score: it reads the whole window.
    changed = module(input_ids=input_ids.where(input_ids != 8, 12), attention_mask=mask, question_ids=question_ids)
    assert changed.start_logits[0, 0] != outputs.start_logits[0, 0]


def _modeling_states(module, input_ids, context_mask, question_ids):
    """The modeling and end states BiDAF computes for its pointers (the no-answer head's input)."""
    captured = {}
    hooks = [module.modeling.register_forward_hook(lambda _, __, out: captured.setdefault("modeled", out)),
             module.end_encoder.register_forward_hook(lambda _, __, out: captured.setdefault("ending", out))]
    try:
        module(input_ids=input_ids, attention_mask=context_mask.long(), question_ids=question_ids)
    finally:
        for hook in hooks:
            hook.remove()
    return torch.cat([captured["modeled"], captured["ending"]], dim=-1)


def test_bf16_weights_answer_like_fp32_ones():
    """configure_inference casts a GPU model's weights to bf16: the exact-match feature must follow the
    embeddings' dtype (an fp32 feature made the LSTM refuse its input on the H200). Checked here on the CPU."""
    adapter = LstmAdapter()
    for preset in ("tiny", "bidaf"):
        model = adapter.build(adapter.config(preset, {"embeddings": "random", "pretrained_words": 0}))
        examples = list(sample_examples(TRAIN_SAMPLE))[:40]
        model.prepare(examples)
        assert model.config.exact_match
        full = model.predict(examples[:12], batch_size=4)
        model.module.to(torch.bfloat16)
        half = model.predict(examples[:12], batch_size=4)
        assert half.keys() == full.keys()
        close = sum(abs(half[qid].no_answer_probability - full[qid].no_answer_probability) < 0.05 for qid in full)
        assert close >= 10, preset
