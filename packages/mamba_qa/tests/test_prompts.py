"""Prompts, k-shot examples, synthetic negatives and the answer stop rule (mamba_qa.prompts and the features the
model builds from them)."""

import pytest

from mamba_qa.model import IGNORED
from mamba_qa.prompts import (
    Shot,
    answer_from_generation,
    check_template,
    make_random_question_negatives,
    render_shot,
    shot_pool,
    shots_for,
)
from qa_common.adapter import get_adapter
from qa_common.data.examples import Answer, SquadExample
from qa_common.testing.contract import TRAIN_SAMPLE, sample_examples


def test_templates_need_the_context_and_the_question_once_and_nothing_else():
    check_template("{context}\n\nQ: {question}\nA:")
    check_template("Q: {question}\n{context}\nA:")
    with pytest.raises(ValueError, match=r"must contain \{question\} exactly once"):
        check_template("{context}\nA:")
    with pytest.raises(ValueError, match=r"must contain \{context\} exactly once"):
        check_template("{context} {context} {question}")
    with pytest.raises(ValueError, match=r"unknown field\(s\) \{title\}"):
        check_template("{title}: {context} {question}")


def test_the_stop_rule_keeps_the_first_line_and_reads_i_dont_know_as_no_answer():
    assert answer_from_generation(" Denver Broncos\nQ: Who lost?", "I don't know") == "Denver Broncos"
    assert answer_from_generation(" I don't know\n", "I don't know") == ""
    assert answer_from_generation("i dont know.", "I don't know") == ""
    assert answer_from_generation(" 1998", "I don't know") == "1998"


def test_k_shot_prompts_never_show_the_question_being_asked_or_its_paragraph():
    examples = list(sample_examples(TRAIN_SAMPLE))
    pool = shot_pool(examples, 4, seed=0, no_answer_text="I don't know")
    assert len({shot.context for shot in pool}) == 4
    assert pool == shot_pool(examples, 4, seed=0, no_answer_text="I don't know")  # seeded
    for shot in pool:
        asked = next(example for example in examples if example.id == shot.question_id)
        sibling = next(example for example in examples if example.context == asked.context and example is not asked)
        for example in (asked, sibling):
            chosen = shots_for(example, pool, 3)
            assert len(chosen) == 3 and all(s.context != example.context for s in chosen), example.id
            assert all(s.question != example.question for s in chosen)
    # The same question asked of another paragraph (a synthetic negative) does not see its own answer either.
    moved = SquadExample("other", pool[0].question, "Another paragraph.", ())
    assert pool[0] not in shots_for(moved, pool, 3)
    with pytest.raises(ValueError, match="3 shots wanted but the shot pool holds only 2"):
        shots_for(SquadExample(pool[0].question_id, "?", pool[0].context, ()), pool[:3], 3)
    with pytest.raises(ValueError, match="raise max_shot_context_tokens or lower shots"):
        shot_pool(examples, 3, seed=0, no_answer_text="I don't know", fits=lambda context: len(context) < 300)
    shot = Shot("Who won?", "Denver won.", "Denver")
    assert render_shot("{context}\n\nQ: {question}\nA:", shot) == "Denver won.\n\nQ: Who won?\nA: Denver\n\n"


def test_the_model_builds_k_shot_prompts_from_training_data_without_leaking():
    adapter = get_adapter("mamba_qa")
    model = adapter.build(adapter.config("tiny", {"shots": 2, "max_length": 512}))
    examples = list(sample_examples(TRAIN_SAMPLE))
    figures = model.prepare(examples)
    assert figures["prompt_shots"] == 2 and len(model.shot_pool) == 3
    asked = next(example for example in examples if example.id == model.shot_pool[0].question_id)
    prompt = model.tokenizer.decode(model.windows([asked], with_targets=False).prompt_ids[0])
    shots = prompt[: prompt.rindex(asked.context[:40])]
    assert asked.question not in shots and asked.context not in shots
    assert prompt.count("\nQ: ") == 3 and prompt.endswith(f"Q: {asked.question.strip()}\nA:")
    for shot in model.shot_pool[1:]:
        assert f"{shot.context}\n\nQ: {shot.question}\nA: {shot.answer}\n\n" in shots


def test_synthetic_negatives_come_at_the_configured_ratio_with_i_dont_know_as_target():
    examples = list(sample_examples(TRAIN_SAMPLE))
    answerable = [example for example in examples if example.answers]
    for ratio in (0.25, 0.5, 1.0, 1.5):
        negatives = make_random_question_negatives(examples, ratio, seed=3)
        assert len(negatives) == round(ratio * len(answerable)), ratio
        assert len({negative.id for negative in negatives}) == len(negatives)
    negatives = make_random_question_negatives(examples, 0.5, seed=3)
    assert negatives == make_random_question_negatives(examples, 0.5, seed=3)
    questions_by_title = {(example.question, example.title) for example in examples}
    for negative in negatives:
        assert not negative.answers
        original = next(example for example in answerable if negative.id.startswith(example.id + "-"))
        assert negative.context == original.context and negative.title == original.title
        # A question of another article: never one asked of this paragraph's article.
        assert (negative.question, negative.title) not in questions_by_title
    with pytest.raises(ValueError, match="negatives_ratio must be at least 0"):
        make_random_question_negatives(examples, -0.5, seed=3)
    one = SquadExample("a", "Who?", "Ann.", (Answer("Ann", 0),))
    with pytest.raises(ValueError, match="at least two paragraphs"):
        make_random_question_negatives([one], 1.0, seed=3)

    adapter = get_adapter("mamba_qa")
    model = adapter.build(adapter.config("tiny", {"negatives_ratio": 0.5}))
    assert model.prepare(examples)["synthetic_negatives"] == len(negatives)
    dataset = model.training_dataset(answerable)
    assert dataset.negatives == round(0.5 * len(answerable))
    wanted = model.target_ids("I don't know")
    for index in range(len(dataset)):
        if dataset.examples[dataset.features.example_index[index]].id.count("-random-question-"):
            assert dataset[index]["labels"][-len(wanted):] == wanted


def test_padding_is_told_apart_by_position_so_eos_stays_in_the_loss():
    adapter = get_adapter("mamba_qa")
    model = adapter.build(adapter.config("tiny"))
    assert model.pad_token_id == model.eos_token_id == 0  # GPT-NeoX style: pad is eos
    examples = [example for example in sample_examples(TRAIN_SAMPLE) if example.answers][:3]
    dataset = model.training_dataset(examples)
    batch = model.data_collator()([dataset[index] for index in range(len(dataset))])
    for row in range(len(dataset)):
        length = len(dataset[row]["input_ids"])
        assert batch["attention_mask"][row, :length].all() and not batch["attention_mask"][row, length:].any()
        labels = batch["labels"][row]
        assert labels[length - 1] == model.eos_token_id  # the target's last token: eos, kept
        assert (labels[length:] == IGNORED).all()  # padding (also id 0), left out
        assert (batch["input_ids"][row, length:] == model.pad_token_id).all()
        kept = labels[labels != IGNORED].tolist()
        assert model.tokenizer.decode(kept) == f" {dataset.features.targets[row]}\n<|endoftext|>"
    assert {dataset.features.targets[row] for row in range(len(dataset))} >= {e.answers[0].text for e in examples}
