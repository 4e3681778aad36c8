"""The functions of the ``squad_qa_v2`` lm-eval task: local SQuAD JSON read by squad-qa's reader, the shared
prompt template, and per-question scores from squad-qa's official scorer (the no-answer text means no answer)."""

from __future__ import annotations

import math

from qa_common.prompts import DEFAULT_NO_ANSWER_TEXT, DEFAULT_TEMPLATE, answer_from_generation, split_template
from qa_common.scoring import answer_in_generation, exact_match_score, f1_score


def _rows(path: str) -> list[dict]:
    from qa_common.data.readers import load_squad

    return [{"id": example.id, "title": example.title, "context": example.context, "question": example.question,
             "answers": [answer.text for answer in example.answers]} for example in load_squad(path).examples]


def load_dataset(eval_data: str | None = None, train_data: str | None = None, **_metadata):
    """A ``datasets.DatasetDict`` with the questions of ``eval_data`` (validation) and ``train_data`` (train, for
    shots; the evaluation file when none is given). Both come from the task's metadata."""
    import datasets

    if not eval_data:
        raise ValueError("squad_qa_v2 needs the evaluation file: metadata {\"eval_data\": \"path/to/file.json\"}")
    splits = {"validation": _rows(eval_data), "train": _rows(train_data or eval_data)}
    features = datasets.Features({"id": datasets.Value("string"), "title": datasets.Value("string"),
                                  "context": datasets.Value("string"), "question": datasets.Value("string"),
                                  "answers": datasets.Sequence(datasets.Value("string"))})
    return datasets.DatasetDict({name: datasets.Dataset.from_list(rows, features=features)
                                 for name, rows in splits.items()})


def doc_to_text(doc: dict) -> str:
    before, after = split_template(DEFAULT_TEMPLATE, doc["question"].strip())
    return f"{before}{doc['context']}{after}"


def doc_to_target(doc: dict) -> str:
    return doc["answers"][0] if doc["answers"] else DEFAULT_NO_ANSWER_TEXT


def process_results(doc: dict, results: list[str]) -> dict:
    """Scores of one generation: exact and f1 in [0, 1] as the official script computes them, the seed study's
    accuracy, and the same paired with answerability for the HasAns/NoAns means."""
    answer = answer_from_generation(results[0], DEFAULT_NO_ANSWER_TEXT)
    gold = list(doc["answers"])
    exact, f1 = float(exact_match_score(answer, gold)), float(f1_score(answer, gold))
    answerable = bool(gold)
    return {"exact": exact, "f1": f1, "accuracy": float(answer_in_generation(answer, gold)),
            "HasAns_exact": (exact, answerable), "HasAns_f1": (f1, answerable), "NoAns_exact": (exact, not answerable)}


def mean_of_subset(items: list[tuple[float, bool]]) -> float:
    """The mean score of the questions flagged True (NaN when there are none)."""
    chosen = [score for score, keep in items if keep]
    return sum(chosen) / len(chosen) if chosen else math.nan
