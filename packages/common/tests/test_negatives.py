from pathlib import Path

from qa_common.data.negatives import make_synthetic_negatives
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
