import random
from pathlib import Path

from qa_common.data.examples import Answer, SquadExample
from qa_common.data.negatives import (
    _ANTONYMS,
    _negate,
    _swap_antonym,
    _swap_entity,
    make_perturbed_negatives,
    make_synthetic_negatives,
)
from qa_common.data.readers import load_squad
from qa_common.scoring import normalize_answer

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "sample" / "train-v2.0-sample.json"


def test_negatives_pair_questions_with_sibling_paragraphs_without_their_answers():
    examples = load_squad(str(SAMPLE)).examples
    answerable = [e for e in examples if e.answers]
    negatives = make_synthetic_negatives(examples, 0.5, seed=3)
    assert len(negatives) == round(0.5 * len(answerable))
    by_id = {e.id: e for e in examples}
    contexts_by_title = {}
    for e in examples:
        contexts_by_title.setdefault(e.title, set()).add(e.context)
    for negative in negatives:
        original = by_id[negative.id.removesuffix("-negative")]
        assert negative.id.endswith("-negative") and not negative.answers
        assert negative.question == original.question and negative.title == original.title
        assert negative.context != original.context and negative.context in contexts_by_title[original.title]
        assert not any(normalize_answer(a.text) in normalize_answer(negative.context) for a in original.answers)
    assert make_synthetic_negatives(examples, 0.5, seed=3) == negatives
    assert make_synthetic_negatives(examples, 0.5, seed=4) != negatives
    assert make_synthetic_negatives(examples, 0.0, seed=3) == []


def _bare(word: str) -> str:
    return word.lower().strip("?,.!;:")


def test_perturbed_negatives_edit_the_question_and_keep_the_paragraph():
    examples = load_squad(str(SAMPLE)).examples
    answerable = [e for e in examples if e.answers]
    negatives = make_perturbed_negatives(examples, 0.5, seed=3)
    assert len(negatives) == round(0.5 * len(answerable))
    by_id = {e.id: e for e in examples}
    edits = {"entity": 0, "antonym": 0, "negation": 0}
    for negative in negatives:
        original = by_id[negative.id.removesuffix("-perturbed")]
        assert negative.id.endswith("-perturbed") and not negative.answers and original.answers
        assert negative.context == original.context and negative.title == original.title
        assert negative.question != original.question
        before, after = original.question.split(), negative.question.split()
        if " not " in f" {negative.question} " and " not " not in f" {original.question} ":
            edits["negation"] += 1
            assert after.count("not") == 1 and [w for w in after if w != "not"] == before
        elif len(before) == len(after) and sum(a != b for a, b in zip(before, after, strict=True)) == 1 and any(
                _ANTONYMS.get(_bare(a)) == _bare(b) for a, b in zip(before, after, strict=True)):
            edits["antonym"] += 1
            swapped = next(b for a, b in zip(before, after, strict=True) if a != b)
            assert _bare(swapped) not in normalize_answer(original.context).split()
        else:
            edits["entity"] += 1
            # the inserted name or number is not in the paragraph
            inserted = set(after) - set(before)
            assert inserted and any(word.strip("?,.") not in original.context for word in inserted), inserted
    assert all(count > 0 for count in edits.values()), edits
    assert make_perturbed_negatives(examples, 0.5, seed=3) == negatives
    assert make_perturbed_negatives(examples, 0.5, seed=4) != negatives
    assert make_perturbed_negatives(examples, 0.0, seed=3) == []


def test_perturbed_negative_edits_by_example():
    context = "In 1998 the Rhine flooded Basel, the largest city on the river, and Cologne was spared."
    example = SquadExample("q", "What is the largest city on the Rhine?", context, (Answer("Basel", 26),), "Rhine")
    other = SquadExample("o", "Where is Strasbourg?", "Strasbourg lies on the Ill, near Kehl.", (Answer("Ill", 24),),
                         "Rhine")
    generator = random.Random(0)
    assert _negate(example.question, "A paragraph without negations.", generator) == \
        "What is not the largest city on the Rhine?"
    assert _negate(example.question, context + " It was not rebuilt.", generator) is None
    assert _swap_antonym(example.question, context, generator) == "What is the smallest city on the Rhine?"
    assert _swap_antonym(example.question, context + " The smallest is Kehl.", generator) is None
    swapped = _swap_entity("When did the Rhine flood in 1998?", context, [["Strasbourg", "Ill", "2003"], []],
                           random.Random(1))
    assert swapped in ("When did the Strasbourg flood in 1998?", "When did the Ill flood in 1998?",
                       "When did the Rhine flood in 2003?")
    negatives = make_perturbed_negatives([example, other], 1.0, seed=0)
    assert sorted(n.id for n in negatives) == ["o-perturbed", "q-perturbed"]


def test_perturbed_negatives_handle_one_paragraph_under_two_titles():
    # SQuAD files concatenated from two sources can repeat a paragraph under another title; the second title
    # must still get its mentions (this raised KeyError with the title as its only message).
    examples = load_squad(str(SAMPLE)).examples
    copies = [SquadExample(id=f"copy-{e.id}", question=e.question, context=e.context, answers=e.answers,
                           title=f"copy of {e.title}") for e in examples]
    negatives = make_perturbed_negatives(examples + copies, 1.0, seed=1)
    titles = {negative.title for negative in negatives}
    assert any(title.startswith("copy of ") for title in titles)
    assert any(not title.startswith("copy of ") for title in titles)
