"""Official SQuAD 2.0 scoring: exact match and F1, HasAns/NoAns breakdowns and best no-answer thresholds.

Every function gives the same numbers as the official evaluation script ("Official evaluation script for
SQuAD version 2.0"): the same answer normalisation, the maximum over gold answers, an empty gold list
meaning "unanswerable", the `>` threshold test and the threshold search. `tests/reference/` keeps that
script as the oracle the tests compare against. Pure functions: no I/O, no logging.
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Mapping, Sequence

from qa_common.data.examples import SquadExample

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)
_METRICS = ("exact", "f1")
# Rules of choose_no_answer_threshold, with how a run describes the threshold each chose.
THRESHOLD_RULES = {"best": "best", "one-se": "lowest within one SE of the best"}
_MAX_LISTED_IDS = 5


def normalize_answer(text: str) -> str:
    """Normalise an answer as the official script does before comparing.

    Lower-cases, removes ASCII punctuation, then the articles "a", "an", "the" as whole words, then
    collapses all whitespace to single spaces: `normalize_answer("The  Eiffel-Tower!")` is
    `"eiffeltower"`.
    """
    lowered = text.lower()
    without_punctuation = "".join(character for character in lowered if character not in _PUNCTUATION)
    without_articles = _ARTICLES.sub(" ", without_punctuation)
    return " ".join(without_articles.split())


def _tokens(text: str) -> list[str]:
    return normalize_answer(text).split()


def _exact_against_one(gold: str, prediction: str) -> int:
    return int(normalize_answer(gold) == normalize_answer(prediction))


def _f1_against_one(gold: str, prediction: str) -> float:
    gold_tokens = _tokens(gold)
    prediction_tokens = _tokens(prediction)
    if not gold_tokens or not prediction_tokens:
        # an empty answer means "no answer": full marks only when both are empty
        return float(gold_tokens == prediction_tokens)
    common = collections.Counter(gold_tokens) & collections.Counter(prediction_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(gold_tokens)
    return (2 * precision * recall) / (precision + recall)


def _scorable_golds(gold_answers: Sequence[str]) -> list[str]:
    # golds that normalise to nothing (e.g. ".") are dropped; with none left the only right answer is ""
    golds = [gold for gold in gold_answers if normalize_answer(gold)]
    return golds or [""]


def exact_match_score(prediction: str, gold_answers: Sequence[str]) -> int:
    """Exact match of one prediction: 1 if it equals any gold answer after normalisation, else 0.

    Gold answers that normalise to the empty string are ignored; with no gold answer left (an
    unanswerable question) the only correct prediction is the empty string.

    Example: `exact_match_score("the Broncos", ["Denver Broncos", "Broncos"])` is 1.
    """
    return max(_exact_against_one(gold, prediction) for gold in _scorable_golds(gold_answers))


def f1_score(prediction: str, gold_answers: Sequence[str]) -> float:
    """Token F1 of one prediction: the maximum over gold answers of the bag-of-tokens F1.

    Tokens are the whitespace-separated words of the normalised texts. When either side is empty, F1 is 1
    if both are empty and 0 otherwise. Gold answers are filtered as in `exact_match_score`.

    Example: `f1_score("Denver Broncos team", ["Denver Broncos"])` is 0.8 (precision 2/3, recall 1).
    """
    return max(_f1_against_one(gold, prediction) for gold in _scorable_golds(gold_answers))


def _check_examples(examples: Sequence[SquadExample]) -> None:
    if not examples:
        raise ValueError("no examples to score")
    counts = collections.Counter(example.id for example in examples)
    duplicates = [question_id for question_id, count in counts.items() if count > 1]
    if duplicates:
        raise ValueError(
            f"{len(duplicates)} duplicate question id(s) among the examples: {_list_ids(duplicates)}"
        )


def _list_ids(ids: Sequence[str]) -> str:
    listed = ", ".join(repr(question_id) for question_id in ids[:_MAX_LISTED_IDS])
    return listed + (", ..." if len(ids) > _MAX_LISTED_IDS else "")


def _check_covered(examples: Sequence[SquadExample], values: Mapping[str, object], what: str) -> None:
    missing = [example.id for example in examples if example.id not in values]
    if missing:
        raise ValueError(
            f"missing {what} for {len(missing)} of {len(examples)} questions: {_list_ids(missing)}"
        )


def per_question_scores(
    examples: Sequence[SquadExample], predictions: Mapping[str, str]
) -> tuple[dict[str, int], dict[str, float]]:
    """Exact match and F1 of every question before any no-answer threshold (the official raw scores).

    Args:
        examples: The questions with their gold answers.
        predictions: Question id to predicted answer text ("" for "no answer"); extra ids are ignored.

    Returns:
        (exact_by_id, f1_by_id), both in the order of `examples`.

    Raises:
        ValueError: A question has no prediction (the message gives the count and the first ids).
        TypeError: A prediction is not a string.
    """
    _check_covered(examples, predictions, "predictions")
    not_strings = [example.id for example in examples if not isinstance(predictions[example.id], str)]
    if not_strings:
        raise TypeError(f"{len(not_strings)} prediction(s) are not strings: {_list_ids(not_strings)}")
    exact_by_id: dict[str, int] = {}
    f1_by_id: dict[str, float] = {}
    for example in examples:
        golds = [answer.text for answer in example.answers]
        exact_by_id[example.id] = exact_match_score(predictions[example.id], golds)
        f1_by_id[example.id] = f1_score(predictions[example.id], golds)
    return exact_by_id, f1_by_id


def _thresholded(
    scores: Mapping[str, float],
    no_answer_probabilities: Mapping[str, float],
    has_answer: Mapping[str, bool],
    no_answer_threshold: float,
) -> dict[str, float]:
    # a question predicted unanswerable scores 1 exactly when it is unanswerable, whatever its gold texts
    return {
        question_id: float(not has_answer[question_id])
        if no_answer_probabilities[question_id] > no_answer_threshold
        else score
        for question_id, score in scores.items()
    }


def _summary(
    exact: Mapping[str, float], f1: Mapping[str, float], question_ids: Sequence[str]
) -> dict[str, float]:
    total = len(question_ids)
    return {
        "exact": 100.0 * sum(exact[question_id] for question_id in question_ids) / total,
        "f1": 100.0 * sum(f1[question_id] for question_id in question_ids) / total,
        "total": total,
    }


def find_best_threshold(
    predictions: Mapping[str, str],
    raw_scores: Mapping[str, float],
    no_answer_probabilities: Mapping[str, float],
    has_answer: Mapping[str, bool],
) -> tuple[float, float]:
    """The no-answer threshold that maximises a metric, searched exactly as the official `find_best_thresh`.

    Starting from "every question predicted unanswerable" (score = number of unanswerable questions), the
    questions are visited in ascending no-answer probability and each is switched to its prediction: an
    answerable one adds its raw score, an unanswerable one with a non-empty prediction loses its point.
    The best running score is kept with the probability where it was reached (0.0 if never improved).
    Questions with equal probabilities are visited in the order of `no_answer_probabilities`, as in the
    official script, whose result depends on that order when there are ties.

    Args:
        predictions: Question id to raw predicted text (before any threshold).
        raw_scores: Question id to the raw exact or F1 score (see `per_question_scores`); the score is a
            percentage of `len(raw_scores)`.
        no_answer_probabilities: Question id to the model's probability that the question is unanswerable;
            ids not in `raw_scores` are passed over.
        has_answer: Question id to whether the question has gold answers, for every question.

    Returns:
        (best score in percent, threshold). Predicting "" where probability > threshold gives that score.
    """
    num_no_answer = sum(1 for question_id in has_answer if not has_answer[question_id])
    current_score: float = num_no_answer
    best_score: float = current_score
    best_threshold = 0.0
    for question_id in sorted(no_answer_probabilities, key=lambda key: no_answer_probabilities[key]):
        if question_id not in raw_scores:
            continue
        if has_answer[question_id]:
            difference: float = raw_scores[question_id]
        else:
            difference = -1 if predictions[question_id] else 0
        current_score += difference
        if current_score > best_score:
            best_score = current_score
            best_threshold = no_answer_probabilities[question_id]
    return 100.0 * best_score / len(raw_scores), best_threshold


def apply_no_answer_threshold(
    predictions: Mapping[str, str], no_answer_probabilities: Mapping[str, float], threshold: float
) -> dict[str, str]:
    """Replace a prediction by "" (no answer) where its no-answer probability is greater than `threshold`.

    This is the prediction-side counterpart of the official threshold, to turn calibrated model output
    into final answers. (The official scores of a thresholded question differ only for an answerable
    question whose every gold answer normalises to nothing, which `score_predictions` handles.)

    Raises:
        ValueError: A prediction has no probability.
    """
    missing = [question_id for question_id in predictions if question_id not in no_answer_probabilities]
    if missing:
        raise ValueError(
            f"missing no-answer probabilities for {len(missing)} of {len(predictions)} predictions: "
            f"{_list_ids(missing)}"
        )
    return {
        question_id: "" if no_answer_probabilities[question_id] > threshold else text
        for question_id, text in predictions.items()
    }


def score_predictions(
    examples: Sequence[SquadExample],
    predictions: Mapping[str, str],
    no_answer_probabilities: Mapping[str, float] | None = None,
    no_answer_threshold: float = 1.0,
) -> dict[str, float | int]:
    """Score predictions with the official SQuAD 2.0 procedure.

    Args:
        examples: The questions with their gold answers (no answers = unanswerable).
        predictions: Question id to predicted text ("" for "no answer"), one for every example; extra ids
            are ignored, as by the official script.
        no_answer_probabilities: Question id to the probability that the question is unanswerable, for
            every example. Enables the best-threshold search. Without it every probability counts as 0.0.
        no_answer_threshold: A question whose probability is greater than this is scored as answered "".

    Returns:
        The official result, with its keys in its order: exact, f1, total, then HasAns_exact, HasAns_f1,
        HasAns_total (if any question is answerable), NoAns_exact, NoAns_f1, NoAns_total (if any is
        unanswerable), then best_exact, best_exact_thresh, best_f1, best_f1_thresh (only with
        `no_answer_probabilities`). Scores are percentages.

    Raises:
        ValueError: No examples, duplicate example ids, or a question without prediction or probability
            (the message gives the count and the first ids).
        TypeError: A prediction is not a string.
    """
    _check_examples(examples)
    exact_raw, f1_raw = per_question_scores(examples, predictions)
    if no_answer_probabilities is None:
        probabilities: Mapping[str, float] = dict.fromkeys(exact_raw, 0.0)
    else:
        _check_covered(examples, no_answer_probabilities, "no-answer probabilities")
        probabilities = no_answer_probabilities
    has_answer = {example.id: bool(example.answers) for example in examples}
    exact = _thresholded(exact_raw, probabilities, has_answer, no_answer_threshold)
    f1 = _thresholded(f1_raw, probabilities, has_answer, no_answer_threshold)

    result: dict[str, float | int] = dict(_summary(exact, f1, list(has_answer)))
    for prefix, wanted in (("HasAns", True), ("NoAns", False)):
        question_ids = [question_id for question_id, answerable in has_answer.items() if answerable is wanted]
        if question_ids:
            for key, value in _summary(exact, f1, question_ids).items():
                result[f"{prefix}_{key}"] = value
    if no_answer_probabilities is not None:
        for metric, raw in (("exact", exact_raw), ("f1", f1_raw)):
            best_score, best_threshold = find_best_threshold(
                predictions, raw, no_answer_probabilities, has_answer
            )
            result[f"best_{metric}"] = best_score
            result[f"best_{metric}_thresh"] = best_threshold
    return result


def one_standard_error_threshold(
    predictions: Mapping[str, str],
    raw_scores: Mapping[str, float],
    no_answer_probabilities: Mapping[str, float],
    has_answer: Mapping[str, bool],
) -> tuple[float, float]:
    """The lowest no-answer threshold whose score is within one standard error of the best threshold's.

    The official best threshold is the arg-max of a step curve measured on a few hundred questions, and the
    curve is often flat within its noise over a wide range of thresholds, so the arg-max lands anywhere in
    that range. Among the thresholds that the held-out questions cannot tell apart from the best (score at
    least best - 1 SE, the SE of the mean per-question score at the best threshold), this takes the lowest,
    i.e. the one that answers least: the one-standard-error rule of model selection, resolving ties towards
    abstaining. The curve is the official one (`find_best_threshold`'s sweep); thresholds are cut only
    between distinct probabilities.

    Returns:
        (score in percent at the chosen threshold, threshold).
    """
    order = [question_id for question_id in sorted(no_answer_probabilities,
                                                   key=lambda key: no_answer_probabilities[key])
             if question_id in raw_scores]
    abstain = [0.0 if has_answer[question_id] else 1.0 for question_id in order]
    answer = [raw_scores[question_id] if has_answer[question_id] else (0.0 if predictions[question_id] else 1.0)
              for question_id in order]
    count = len(order)
    totals = [sum(abstain)]  # totals[k]: score when the k lowest-probability questions are answered
    for k in range(count):
        totals.append(totals[-1] + answer[k] - abstain[k])
    cuts = [0] + [k for k in range(1, count + 1)
                  if k == count or no_answer_probabilities[order[k]] > no_answer_probabilities[order[k - 1]]]
    best = max(cuts, key=lambda k: (totals[k], -k))
    per_question = answer[:best] + abstain[best:]
    mean = totals[best] / count
    variance = sum((value - mean) ** 2 for value in per_question) / max(count - 1, 1)
    standard_error_total = (variance / count) ** 0.5 * count
    chosen = min(k for k in cuts if totals[k] >= totals[best] - standard_error_total - 1e-9)
    threshold = no_answer_probabilities[order[chosen - 1]] if chosen else 0.0
    return 100.0 * totals[chosen] / count, threshold


def choose_no_answer_threshold(
    examples: Sequence[SquadExample],
    predictions: Mapping[str, str],
    no_answer_probabilities: Mapping[str, float],
    metric: str = "f1",
    rule: str = "best",
) -> float:
    """The no-answer threshold chosen on these (held-out) examples by `metric` and `rule`.

    Rule "best" is `best_f1_thresh` (or `best_exact_thresh`) of the official procedure; "one-se" is
    `one_standard_error_threshold`. Pass the result as `no_answer_threshold` when scoring other data, or
    to `apply_no_answer_threshold`.

    Args:
        examples: Held-out questions with gold answers.
        predictions: Question id to raw predicted text, for every example.
        no_answer_probabilities: Question id to no-answer probability, for every example.
        metric: "f1" or "exact".
        rule: "best" or "one-se".

    Raises:
        ValueError: Unknown metric or rule, or as `score_predictions`.
    """
    if metric not in _METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(_METRICS)}")
    if rule not in THRESHOLD_RULES:
        raise ValueError(f"unknown threshold rule {rule!r}; expected one of {', '.join(THRESHOLD_RULES)}")
    _check_examples(examples)
    exact_raw, f1_raw = per_question_scores(examples, predictions)
    _check_covered(examples, no_answer_probabilities, "no-answer probabilities")
    has_answer = {example.id: bool(example.answers) for example in examples}
    raw = exact_raw if metric == "exact" else f1_raw
    search = find_best_threshold if rule == "best" else one_standard_error_threshold
    _, threshold = search(predictions, raw, no_answer_probabilities, has_answer)
    return threshold


def answer_in_generation(generation: str, gold_answers: Sequence[str]) -> int:
    """The prompting seed study's looser "accuracy" of one generated answer: 1 when a gold answer appears, as
    normalised text, in the normalised generation (as whole words) ("the Denver Broncos won" contains "Denver Broncos");
    for an unanswerable question (no gold answer left after normalisation) 1 only when the generation is empty
    (the reader said it does not know), as for exact match.

    Example: `answer_in_generation("It was the Denver Broncos.", ["Denver Broncos"])` is 1.
    """
    generated = normalize_answer(generation)
    golds = [normalize_answer(gold) for gold in _scorable_golds(gold_answers)]
    if golds == [""]:
        return int(generated == "")
    return int(any(f" {gold} " in f" {generated} " for gold in golds))
