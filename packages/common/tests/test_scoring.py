"""Tests of qa_common.scoring: hand-computed values, and agreement with the official SQuAD 2.0 script."""

from __future__ import annotations

import io
import json
import os
import random
import re
import subprocess
import sys
from collections.abc import Sequence
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from qa_common.cli_score import main as score_main
from qa_common.data import Answer, SquadExample, read_squad_json, write_squad_json
from qa_common.scoring import (
    answer_in_generation,
    apply_no_answer_threshold,
    choose_no_answer_threshold,
    exact_match_score,
    f1_score,
    find_best_threshold,
    normalize_answer,
    one_standard_error_threshold,
    per_question_scores,
    score_predictions,
)

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_DATA = Path(os.environ.get("SQUAD_SHARED_DATA", "/work/shared/data/squad"))
REPOSITORY_ROOT = Path(__file__).resolve().parents[3]
OFFICIAL_SCRIPT = REPOSITORY_ROOT / "tests" / "reference" / "squad_v2_official_eval.py"

# ---------------------------------------------------------------------------------------------------------
# Hand-computed values


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("The Eiffel Tower!", "eiffel tower"),
        ("  A  cat,\tan   apple. ", "cat apple"),
        ("Theatre and another", "theatre and another"),  # articles only as whole words
        ("the-end", "theend"),  # punctuation goes before articles are matched
        ("U.S. $5,000", "us 5000"),
        ("Ça  VA", "ça va"),
        ("“quoted”", "“quoted”"),  # only ASCII punctuation is removed
        (".", ""),
        ("", ""),
    ],
)
def test_normalize_answer(text: str, normalized: str) -> None:
    assert normalize_answer(text) == normalized


@pytest.mark.parametrize(
    ("prediction", "golds", "exact"),
    [
        ("the Denver Broncos", ["Denver Broncos"], 1),
        ("Denver Broncos.", ["denver broncos"], 1),
        ("Broncos", ["Denver Broncos"], 0),
        ("Broncos", ["Denver Broncos", "Broncos"], 1),  # max over golds
        ("", [], 1),  # unanswerable, predicted unanswerable
        ("Paris", [], 0),
        ("", ["Paris"], 0),
        ("", ["."], 1),  # golds that normalise to nothing are dropped: only "" is right
        ("the", [], 1),  # "the" normalises to "" too
    ],
)
def test_exact_match_score(prediction: str, golds: list[str], exact: int) -> None:
    assert exact_match_score(prediction, golds) == exact


@pytest.mark.parametrize(
    ("prediction", "golds", "f1"),
    [
        ("red blue green", ["red blue yellow"], 2 / 3),  # precision 2/3, recall 2/3
        ("Denver Broncos team", ["Denver Broncos"], 0.8),  # precision 2/3, recall 1
        ("the cat sat", ["a cat on the mat"], 0.4),  # 1 common token: precision 1/2, recall 1/3
        ("cat cat the", ["cat"], 2 / 3),  # repeated tokens count once per gold occurrence
        ("Denver Broncos team", ["Broncos", "Denver Broncos"], 0.8),  # max over golds
        ("", [], 1.0),  # empty vs empty
        ("", ["Paris"], 0.0),
        ("Paris", [], 0.0),
        ("London", ["Paris"], 0.0),
        ("interventionism", ["interventionism", "."], 1.0),
    ],
)
def test_f1_score(prediction: str, golds: list[str], f1: float) -> None:
    assert f1_score(prediction, golds) == pytest.approx(f1, abs=1e-15)


def _answer(context: str, text: str) -> Answer:
    return Answer(text, context.index(text))


def _hand_examples() -> list[SquadExample]:
    context = "The Denver Broncos beat the Carolina Panthers; red blue yellow flags flew in Paris."
    return [
        SquadExample(
            "q1", "Who won?", context, (_answer(context, "Denver Broncos"), _answer(context, "Broncos")), "t"
        ),
        SquadExample("q2", "Which flags?", context, (_answer(context, "red blue yellow"),), "t"),
        SquadExample("q3", "Who lost in 1990?", context, (), "t"),
        SquadExample("q4", "Where was the draft?", context, (), "t"),
    ]


HAND_PREDICTIONS = {"q1": "Denver Broncos team", "q2": "red blue green", "q3": "", "q4": "Paris"}
HAND_PROBABILITIES = {"q1": 0.1, "q2": 0.6, "q3": 0.9, "q4": 0.7}


def test_score_predictions_on_hand_computed_example() -> None:
    # per question: exact (0, 0, 1, 0), F1 (0.8, 2/3, 1, 0)
    result = score_predictions(_hand_examples(), HAND_PREDICTIONS)
    assert list(result) == [
        "exact", "f1", "total",
        "HasAns_exact", "HasAns_f1", "HasAns_total",
        "NoAns_exact", "NoAns_f1", "NoAns_total",
    ]  # fmt: skip
    assert result["exact"] == 25.0
    assert result["f1"] == pytest.approx(100 * (0.8 + 2 / 3 + 1) / 4, abs=1e-12)
    assert (result["total"], result["HasAns_total"], result["NoAns_total"]) == (4, 2, 2)
    assert result["HasAns_exact"] == 0.0
    assert result["HasAns_f1"] == pytest.approx(100 * (0.8 + 2 / 3) / 2, abs=1e-12)
    assert (result["NoAns_exact"], result["NoAns_f1"]) == (50.0, 50.0)


def test_score_predictions_with_probabilities_and_threshold() -> None:
    result = score_predictions(
        _hand_examples(), HAND_PREDICTIONS, HAND_PROBABILITIES, no_answer_threshold=0.5
    )
    # q2, q3, q4 have probability > 0.5, so they count as answered "": F1 (0.8, 0, 1, 1)
    assert result["exact"] == 50.0
    assert result["f1"] == pytest.approx(70.0, abs=1e-12)
    assert (result["NoAns_exact"], result["NoAns_f1"]) == (100.0, 100.0)
    # threshold search from 2 points (all ""): +0.8 at 0.1, +2/3 at 0.6, -1 at 0.7, 0 at 0.9
    assert result["best_f1"] == pytest.approx(100 * (2 + 0.8 + 2 / 3) / 4, abs=1e-12)
    assert result["best_f1_thresh"] == 0.6
    # for exact the answerable ones add 0 and "Paris" loses a point: never better than all ""
    assert (result["best_exact"], result["best_exact_thresh"]) == (50.0, 0.0)
    assert list(result)[-4:] == ["best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh"]


def test_threshold_scores_a_no_answer_as_right_only_for_unanswerable_questions() -> None:
    # an answerable question whose only gold answer normalises to nothing: "" matches the [""] gold list,
    # but when the threshold says "no answer" the official script scores it 0 because it has answers
    context = "It ended. Then it began."
    examples = [SquadExample("dot", "What?", context, (Answer(".", 8),))]
    assert score_predictions(examples, {"dot": ""})["exact"] == 100.0
    thresholded = score_predictions(examples, {"dot": ""}, {"dot": 0.9}, no_answer_threshold=0.5)
    assert (thresholded["exact"], thresholded["f1"]) == (0.0, 0.0)


def test_missing_predictions_are_listed_and_extra_ones_ignored() -> None:
    examples = _hand_examples()
    with pytest.raises(ValueError, match=r"missing predictions for 2 of 4 questions: 'q2', 'q4'"):
        score_predictions(examples, {"q1": "Broncos", "q3": ""})
    with_extra = {**HAND_PREDICTIONS, "not-a-question": "x"}
    assert score_predictions(examples, with_extra) == score_predictions(examples, HAND_PREDICTIONS)
    with pytest.raises(ValueError, match=r"missing no-answer probabilities for 1 of 4 questions: 'q3'"):
        score_predictions(examples, HAND_PREDICTIONS, {"q1": 0.1, "q2": 0.2, "q4": 0.3})
    with pytest.raises(TypeError, match=r"1 prediction\(s\) are not strings: 'q2'"):
        score_predictions(examples, {**HAND_PREDICTIONS, "q2": None})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="no examples"):
        score_predictions([], {})
    with pytest.raises(ValueError, match="1 duplicate question id"):
        score_predictions(examples + examples[:1], HAND_PREDICTIONS)


def test_many_missing_predictions_list_the_first_few() -> None:
    examples = [SquadExample(f"q{index}", "?", "context", ()) for index in range(12)]
    with pytest.raises(ValueError) as raised:
        score_predictions(examples, {"q0": ""})
    assert (
        str(raised.value) == "missing predictions for 11 of 12 questions: 'q1', 'q2', 'q3', 'q4', 'q5', ..."
    )


def test_best_threshold_breaks_ties_in_mapping_order_like_the_official_script() -> None:
    predictions = {"answerable": "Paris", "unanswerable": "London"}
    raw_scores = {"answerable": 1, "unanswerable": 0}
    has_answer = {"answerable": True, "unanswerable": False}
    answerable_first = {"answerable": 0.5, "unanswerable": 0.5}
    unanswerable_first = {"unanswerable": 0.5, "answerable": 0.5}
    assert find_best_threshold(predictions, raw_scores, answerable_first, has_answer) == (100.0, 0.5)
    assert find_best_threshold(predictions, raw_scores, unanswerable_first, has_answer) == (50.0, 0.0)


def test_apply_no_answer_threshold_uses_strictly_greater() -> None:
    predictions = {"a": "Paris", "b": "London", "c": "Rome"}
    probabilities = {"a": 0.3, "b": 0.7, "c": 0.5}
    assert apply_no_answer_threshold(predictions, probabilities, 0.5) == {"a": "Paris", "b": "", "c": "Rome"}
    with pytest.raises(ValueError, match="missing no-answer probabilities for 1 of 3 predictions: 'c'"):
        apply_no_answer_threshold(predictions, {"a": 0.3, "b": 0.7}, 0.5)


def test_choose_no_answer_threshold() -> None:
    examples = _hand_examples()
    assert choose_no_answer_threshold(examples, HAND_PREDICTIONS, HAND_PROBABILITIES) == 0.6
    assert choose_no_answer_threshold(examples, HAND_PREDICTIONS, HAND_PROBABILITIES, metric="exact") == 0.0
    with pytest.raises(ValueError, match="unknown metric 'em'"):
        choose_no_answer_threshold(examples, HAND_PREDICTIONS, HAND_PROBABILITIES, metric="em")
    # the chosen threshold gives the best F1 when applied to the predictions
    chosen = apply_no_answer_threshold(HAND_PREDICTIONS, HAND_PROBABILITIES, 0.6)
    assert score_predictions(examples, chosen)["f1"] == pytest.approx(100 * (2 + 0.8 + 2 / 3) / 4, abs=1e-12)


def _ranked_examples(kinds: str) -> tuple[list[SquadExample], dict[str, str]]:
    """One question per letter, in rising no-answer probability: "c" answerable and predicted right,
    "w" answerable and predicted wrong, "n" unanswerable (with a non-empty prediction)."""
    examples, predictions = [], {}
    for index, kind in enumerate(kinds):
        answers = () if kind == "n" else (Answer(f"word{index}", 4),)
        examples.append(SquadExample(f"q{index}", "Which word?", f"The word{index} here.", answers, "t"))
        predictions[f"q{index}"] = "wrong" if kind != "c" else f"word{index}"
    return examples, predictions


def test_one_standard_error_threshold_answers_least_among_thresholds_tied_with_the_best() -> None:
    examples, predictions = _ranked_examples("ccncncnnwn")
    probabilities = {f"q{i}": (i + 1) / 10 for i in range(10)}
    # Answering the k most confident: 5 (k=0), 6, 7, 6, 7, 6, 7, 6, 5, 5, 4 right of 10; the best is 7 at
    # k=2 (threshold 0.2, the official best_exact_thresh). Its per-question scores are seven 1s and three 0s:
    # SE of the total = sqrt(10 * 0.21 / 9 / 10) * 10 = 1.53, so every k scoring 6 or more is tied with it
    # and the lowest such threshold, 0.1 (k=1), is chosen.
    assert choose_no_answer_threshold(examples, predictions, probabilities, metric="exact") == 0.2
    assert choose_no_answer_threshold(examples, predictions, probabilities, metric="exact", rule="one-se") == 0.1
    exact, _ = per_question_scores(examples, predictions)
    has_answer = {example.id: bool(example.answers) for example in examples}
    assert one_standard_error_threshold(predictions, exact, probabilities, has_answer) == (60.0, 0.1)
    # A threshold never splits questions of equal probability: with q0 and q1 tied, k=1 is no option.
    probabilities["q1"] = 0.1
    assert one_standard_error_threshold(predictions, exact, probabilities, has_answer) == (70.0, 0.1)
    # When answering nothing is within one SE of the best, nothing is answered (threshold 0.0): 3 right at
    # k=0, the best 4 at k=1 with SE of the total sqrt(6 * (2/9) / 5 / 6) * 6 = 1.26.
    examples, predictions = _ranked_examples("cnwnwn")
    probabilities = {f"q{i}": (i + 1) / 10 for i in range(6)}
    assert choose_no_answer_threshold(examples, predictions, probabilities, metric="exact", rule="one-se") == 0.0
    with pytest.raises(ValueError, match="unknown threshold rule 'lowest'"):
        choose_no_answer_threshold(examples, predictions, probabilities, rule="lowest")


def test_per_question_scores_follow_example_order() -> None:
    exact, f1 = per_question_scores(_hand_examples(), HAND_PREDICTIONS)
    assert exact == {"q1": 0, "q2": 0, "q3": 1, "q4": 0}
    assert list(f1) == ["q1", "q2", "q3", "q4"]
    assert f1["q1"] == pytest.approx(0.8) and f1["q2"] == pytest.approx(2 / 3)


# ---------------------------------------------------------------------------------------------------------
# Agreement with the official script on real data and predictions that look like real systems' output


def _oracle_data_file() -> Path:
    real = SHARED_DATA / "validation-v2.0.json"
    return real if real.exists() else FIXTURES / "squad_v2_slice.json"


def _context_span(context: str, rng: random.Random) -> str:
    words = list(re.finditer(r"\S+", context))
    first = rng.randrange(len(words))
    last = min(len(words) - 1, first + rng.randrange(4))
    return context[words[first].start() : words[last].end()]


def _widen(example: SquadExample, answer: Answer, rng: random.Random) -> str:
    context = example.context
    if rng.random() < 0.5:
        previous = list(re.finditer(r"\S+", context[: answer.start]))
        start = previous[-1].start() if previous else answer.start
        return context[start : answer.end]
    following = re.search(r"\S+", context[answer.end :])
    return context[answer.start : answer.end + following.end()] if following else answer.text


def _narrow(answer: Answer, rng: random.Random) -> str:
    words = answer.text.split()
    if len(words) < 2:
        return answer.text
    return " ".join(words[1:] if rng.random() < 0.5 else words[:-1])


def _system_predictions(
    examples: Sequence[SquadExample], seed: int, answer_rate: float, gold_rate: float
) -> dict[str, str]:
    """Predictions like a trained system's: mostly gold spans, some too wide or narrow, some wrong or ""."""
    rng = random.Random(seed)
    predictions = {}
    for example in examples:
        draw = rng.random()
        if example.answers:
            answer = rng.choice(example.answers)
            if draw < gold_rate:
                text = answer.text
                style = rng.random()
                if style < 0.1:
                    text = f"the {text}."
                elif style < 0.2:
                    text = text.lower()
            elif draw < gold_rate + 0.1:
                text = _widen(example, answer, rng)
            elif draw < gold_rate + 0.2:
                text = _narrow(answer, rng)
            elif draw < answer_rate:
                text = _context_span(example.context, rng)
            else:
                text = ""
        else:
            text = _context_span(example.context, rng) if draw < answer_rate - gold_rate else ""
        predictions[example.id] = text
    return predictions


def _no_answer_probabilities(examples: Sequence[SquadExample], seed: int) -> dict[str, float]:
    """Probabilities leaning towards the truth, rounded to one decimal so that many tie, in shuffled order."""
    rng = random.Random(seed)
    probabilities = [
        (example.id, round(min(1.0, rng.random() * 0.7 + (0.3 if example.is_impossible else 0.0)), 1))
        for example in examples
    ]
    rng.shuffle(probabilities)
    return dict(probabilities)


def _run_official(data_file: Path, predictions_file: Path, extra_arguments: list[str]) -> str:
    completed = subprocess.run(
        [sys.executable, str(OFFICIAL_SCRIPT), str(data_file), str(predictions_file), *extra_arguments],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return completed.stdout


def _assert_same_result(ours: dict[str, Any], official: dict[str, Any]) -> None:
    assert list(ours) == list(official)
    for key, value in official.items():
        assert type(ours[key]) is type(value) or {type(ours[key]), type(value)} <= {int, float}, key
        assert ours[key] == pytest.approx(value, abs=1e-9, rel=0), key


ORACLE_CASES = {
    # name: (system, with probability file, --na-prob-thresh or None)
    "strong system": ("strong", False, None),
    "strong system, probabilities": ("strong", True, None),
    "strong system, probabilities, threshold 0.4": ("strong", True, 0.4),
    "weak system, probabilities, threshold 0.7": ("weak", True, 0.7),
    "weak system, threshold -1 without probabilities": ("weak", False, -1.0),
    "always no answer, probabilities": ("empty", True, None),
}


@pytest.fixture(scope="module")
def oracle_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data_file = _oracle_data_file()
    examples = read_squad_json(data_file).examples
    directory = tmp_path_factory.mktemp("oracle")
    systems = {
        "strong": {**_system_predictions(examples, seed=1, answer_rate=0.85, gold_rate=0.6), "extra-id": "x"},
        "weak": _system_predictions(examples, seed=2, answer_rate=0.95, gold_rate=0.3),
        "empty": dict.fromkeys((example.id for example in examples), ""),
    }
    inputs: dict[str, Any] = {"data_file": data_file, "examples": examples, "systems": {}}
    for index, (name, predictions) in enumerate(systems.items()):
        probabilities = _no_answer_probabilities(examples, seed=100 + index)
        predictions_file = directory / f"{name}_predictions.json"
        probabilities_file = directory / f"{name}_na_probs.json"
        predictions_file.write_text(json.dumps(predictions), encoding="utf-8")
        probabilities_file.write_text(json.dumps({**probabilities, "extra-id": 0.5}), encoding="utf-8")
        inputs["systems"][name] = (predictions, predictions_file, probabilities, probabilities_file)
    return inputs


@pytest.mark.parametrize("case", list(ORACLE_CASES))
def test_agrees_with_the_official_script(case: str, oracle_inputs: dict[str, Any]) -> None:
    system, with_probabilities, threshold = ORACLE_CASES[case]
    predictions, predictions_file, probabilities, probabilities_file = oracle_inputs["systems"][system]
    arguments = []
    if with_probabilities:
        arguments += ["--na-prob-file", str(probabilities_file)]
    if threshold is not None:
        arguments += ["--na-prob-thresh", str(threshold)]
    official_output = _run_official(oracle_inputs["data_file"], predictions_file, arguments)
    official = json.loads(official_output)

    ours = score_predictions(
        oracle_inputs["examples"],
        predictions,
        probabilities if with_probabilities else None,
        no_answer_threshold=1.0 if threshold is None else threshold,
    )
    _assert_same_result(ours, official)

    printed = io.StringIO()
    with redirect_stdout(printed):
        exit_code = score_main([str(oracle_inputs["data_file"]), str(predictions_file), *arguments])
    assert exit_code == 0
    assert printed.getvalue() == official_output  # byte for byte what the official script prints


def test_oracle_cases_exercise_what_they_claim(oracle_inputs: dict[str, Any]) -> None:
    """Guards the comparison above against degenerate inputs that would agree trivially."""
    examples = oracle_inputs["examples"]
    strong = oracle_inputs["systems"]["strong"][0]
    result = score_predictions(examples, strong, oracle_inputs["systems"]["strong"][2])
    assert 0 < result["HasAns_exact"] < result["HasAns_f1"] < 100  # partial overlaps exist
    assert 0 < result["NoAns_exact"] < 100
    assert result["best_f1_thresh"] not in (0.0, 1.0)
    probabilities = list(oracle_inputs["systems"]["strong"][2].values())
    assert len(set(probabilities)) < len(probabilities) / 10  # many ties
    assert probabilities != sorted(probabilities)
    # the null baseline scores exactly the share of unanswerable questions
    empty = score_predictions(examples, oracle_inputs["systems"]["empty"][0])
    unanswerable = sum(example.is_impossible for example in examples)
    assert empty["exact"] == empty["f1"] == 100.0 * unanswerable / len(examples)
    if oracle_inputs["data_file"].name == "validation-v2.0.json":
        assert empty["exact"] == pytest.approx(100 * 834 / 1426, abs=1e-12)


def test_agrees_with_the_official_script_on_edge_cases(tmp_path: Path) -> None:
    """Golds that normalise to nothing, thresholds at tied probabilities, the threshold exactly at a value."""
    context = "It ended. Then the war began in 1756, and it ended in 1763."
    examples = [
        SquadExample("dot", "What?", context, (_answer(context, "."),), "Edge"),
        SquadExample(
            "war", "When?", context, (_answer(context, "1756"), _answer(context, "in 1756")), "Edge"
        ),
        SquadExample("end", "When did it end?", context, (_answer(context, "1763"),), "Edge"),
        SquadExample("none1", "Who won?", context, (), "Edge"),
        SquadExample("none2", "Where?", context, (), "Edge"),
    ]
    data_file = tmp_path / "edge.json"
    write_squad_json(examples, data_file)
    predictions = {"dot": "", "war": "began in 1756", "end": "1763.", "none1": "the war", "none2": ""}
    probabilities = {"none2": 0.5, "war": 0.5, "dot": 0.9, "none1": 0.5, "end": 0.2}
    predictions_file = tmp_path / "predictions.json"
    predictions_file.write_text(json.dumps(predictions), encoding="utf-8")
    probabilities_file = tmp_path / "na_probs.json"
    probabilities_file.write_text(json.dumps(probabilities), encoding="utf-8")
    for threshold in (None, 0.5, 0.2, 0.0):
        arguments = ["--na-prob-file", str(probabilities_file)]
        if threshold is not None:
            arguments += ["--na-prob-thresh", str(threshold)]
        official = json.loads(_run_official(data_file, predictions_file, arguments))
        ours = score_predictions(
            examples, predictions, probabilities, 1.0 if threshold is None else threshold
        )
        _assert_same_result(ours, official)


REAL_SYSTEMS = FIXTURES / "real_system_predictions.json.gz"


@pytest.mark.parametrize("system", ["minilm_textbook", "minilm_extra_two_stage"])
@pytest.mark.parametrize("extra", [[], ["--na-prob-file"], ["--na-prob-file", "--na-prob-thresh", "0.05"]])
def test_score_cli_equals_the_official_script_on_real_systems(system: str, extra: list[str], tmp_path: Path) -> None:
    import gzip

    from qa_common.cli_score import main as score_main

    data_file = SHARED_DATA / "validation-v2.0.json"
    if not data_file.exists():
        pytest.skip("../shared/data/squad/validation-v2.0.json is not present")
    recorded = json.loads(gzip.decompress(REAL_SYSTEMS.read_bytes()))[system]
    predictions_file = tmp_path / "predictions.json"
    predictions_file.write_text(json.dumps(recorded["predictions"]))
    arguments = list(extra)
    if arguments:
        probabilities_file = tmp_path / "na_probs.json"
        probabilities_file.write_text(json.dumps(recorded["na_probs"]))
        arguments[0:1] = ["--na-prob-file", str(probabilities_file)]
    official = _run_official(data_file, predictions_file, arguments)
    out_file = tmp_path / "ours.json"
    assert score_main([str(data_file), str(predictions_file), *arguments, "--out-file", str(out_file)]) == 0
    ours = json.loads(out_file.read_text())
    _assert_same_result(ours, json.loads(official))
    assert ours["total"] == 1426 and ours["HasAns_total"] == 592


def test_answer_in_generation_is_the_seed_studys_looser_accuracy():
    golds = ["Denver Broncos", "the Broncos"]
    assert answer_in_generation("It was the Denver Broncos, in 2016.", golds) == 1  # exact match would be 0
    assert answer_in_generation("Broncos", golds) == 1  # "the Broncos" normalises to "broncos"
    assert answer_in_generation("Denver", golds) == 0
    assert answer_in_generation("Broncosville", ["Broncos"]) == 0  # whole words only
    assert answer_in_generation("", golds) == 0
    # Unanswerable: right only when nothing is answered (as exact match scores it).
    assert answer_in_generation("", []) == 1 and answer_in_generation("Denver", []) == 0
    assert answer_in_generation("", ["."]) == 1  # a gold that normalises to nothing counts as none
