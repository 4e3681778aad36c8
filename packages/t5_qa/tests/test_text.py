"""Windows, targets and the mapping of generated text back to the context (t5_qa.text)."""

import pytest
from transformers import AutoTokenizer

from qa_common.data.examples import Answer, SquadExample
from qa_common.testing.contract import TRAIN_SAMPLE, sample_examples
from t5_qa.model import TOKENIZER_ALIASES
from t5_qa.text import align_to_context, is_no_answer, make_windows


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(TOKENIZER_ALIASES["minilm-l6"]())


def test_align_maps_a_vocabulary_spelling_back_to_the_exact_context_substring():
    context = "The Stade de France in Saint-Denis hosted Beyoncé's show (2016)."
    assert align_to_context("saint - denis", context) == "Saint-Denis"
    assert align_to_context("beyonce", context) == "Beyoncé"
    assert align_to_context("2016", context) == "2016"
    assert align_to_context("stade de france", context) == "Stade de France"
    assert align_to_context("( ).", context) == ""
    # A match at word edges wins over one inside a word.
    assert align_to_context("art", "The party. Art lives on.") == "Art"
    # Text not in the context becomes the context words that overlap it best.
    assert align_to_context("stade of france", context) == "Stade de France"
    assert is_no_answer("Unanswerable", "unanswerable") and not is_no_answer("Saint-Denis", "unanswerable")


def test_long_contexts_become_overlapping_windows_and_only_the_window_holding_the_answer_targets_it(tokenizer):
    context = " ".join(f"word{index}" for index in range(200)) + " Denver Broncos won. " + "tail " * 50
    answer_start = context.index("Denver Broncos")
    example = SquadExample("q1", "Who won?", context, (Answer("Denver Broncos", answer_start),))
    unanswerable = SquadExample("q2", "Who lost?", context, ())
    features = make_windows(tokenizer, [example, unanswerable], eos_token_id=102, max_length=64, doc_stride=16,
                            max_question_length=16, no_answer_text="unanswerable")
    windows = [index for index, example_index in enumerate(features.example_index) if example_index == 0]
    assert len(windows) > 5 and len(features) == 2 * len(windows)
    assert all(len(ids) <= 64 and ids[-1] == 102 for ids in features.input_ids)
    targets = [features.targets[index] for index in windows]
    assert "Denver Broncos" in targets and set(targets) == {"Denver Broncos", "unanswerable"}
    assert all(features.targets[index] == "unanswerable" for index in range(len(windows), len(features)))
    # Consecutive windows overlap by doc_stride tokens, and together they cover the whole context.
    first, second = features.window_ids[windows[0]], features.window_ids[windows[1]]
    assert first[-16:] == second[:16]
    covered = sum(len(features.window_ids[index]) for index in windows) - 16 * (len(windows) - 1)
    assert covered == len(tokenizer(context, add_special_tokens=False)["input_ids"])
    prefix = tokenizer.decode(features.input_ids[0][:6])
    assert prefix.startswith("question : who won? context")


def test_every_answerable_sample_question_has_a_window_targeting_its_answer(tokenizer):
    examples = list(sample_examples(TRAIN_SAMPLE))
    features = make_windows(tokenizer, examples, eos_token_id=102, max_length=128, doc_stride=32,
                            max_question_length=32, no_answer_text="unanswerable")
    targeted = {features.example_index[index] for index, target in enumerate(features.targets)
                if target != "unanswerable"}
    assert targeted == {index for index, example in enumerate(examples) if example.answers}
    assert len(features) > len(examples)  # some sample contexts need more than one window
