"""Tests of the `squad-qa score` command: output, --out-file, the subcommand wiring and bad input (exit 2)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from qa_common.cli_score import add_score_parser, main, run_score
from qa_common.data import read_squad_json
from qa_common.scoring import score_predictions

FIXTURES = Path(__file__).parent / "fixtures"
V2_SLICE = FIXTURES / "squad_v2_slice.json"
V2_JSONL = FIXTURES / "squad_v2_slice.jsonl"
SOURCE_ROOT = Path(__file__).resolve().parents[1] / "src"


def _gold_predictions() -> dict[str, str]:
    """The first gold answer of each question ("" if unanswerable), but "Paris" for all of 1973_oil_crisis."""
    predictions = {}
    for example in read_squad_json(V2_SLICE).examples:
        answer = example.answers[0].text if example.answers else ""
        predictions[example.id] = "Paris" if example.title == "1973_oil_crisis" else answer
    return predictions


def _write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


@pytest.fixture
def predictions_file(tmp_path: Path) -> Path:
    return _write_json(tmp_path / "predictions.json", _gold_predictions())


def test_prints_the_official_result(predictions_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(V2_SLICE), str(predictions_file)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(printed)
    # 87 questions (34 answerable); the 30 of 1973_oil_crisis (10 answerable) are answered "Paris", all wrong
    assert result == {
        "exact": pytest.approx(100 * 57 / 87, abs=1e-12),
        "f1": pytest.approx(100 * 57 / 87, abs=1e-12),
        "total": 87,
        "HasAns_exact": pytest.approx(100 * 24 / 34, abs=1e-12),
        "HasAns_f1": pytest.approx(100 * 24 / 34, abs=1e-12),
        "HasAns_total": 34,
        "NoAns_exact": pytest.approx(100 * 33 / 53, abs=1e-12),
        "NoAns_f1": pytest.approx(100 * 33 / 53, abs=1e-12),
        "NoAns_total": 53,
    }
    assert printed == json.dumps(result, indent=2) + "\n"


def test_reads_jsonl_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    jsonl_ids = {json.loads(line)["id"] for line in V2_JSONL.read_text(encoding="utf-8").splitlines()}
    predictions = {key: value for key, value in _gold_predictions().items() if key in jsonl_ids}
    assert main([str(V2_JSONL), str(_write_json(tmp_path / "p.json", predictions))]) == 0
    result = json.loads(capsys.readouterr().out)
    # 19 Sky_(United_Kingdom) questions right, 30 1973_oil_crisis questions wrong
    assert (result["total"], result["exact"]) == (49, pytest.approx(100 * 19 / 49, abs=1e-12))


def test_out_file_is_written_like_the_official_script(
    predictions_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    probabilities = {key: 0.9 if not text else 0.2 for key, text in _gold_predictions().items()}
    probabilities_file = _write_json(tmp_path / "na_probs.json", probabilities)
    out_file = tmp_path / "eval.json"
    arguments = [
        str(V2_SLICE),
        str(predictions_file),
        "--na-prob-file",
        str(probabilities_file),
        "-o",
        str(out_file),
    ]
    assert main([*arguments, "--na-prob-thresh", "0.5"]) == 0
    assert capsys.readouterr().out == ""
    expected = score_predictions(read_squad_json(V2_SLICE).examples, _gold_predictions(), probabilities, 0.5)
    assert out_file.read_text(encoding="utf-8") == json.dumps(expected)
    assert json.loads(out_file.read_text(encoding="utf-8"))["best_f1_thresh"] == 0.2


def test_add_score_parser_registers_the_subcommand(
    predictions_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser(prog="squad-qa")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_score_parser(subparsers)
    args = parser.parse_args(["score", str(V2_SLICE), str(predictions_file), "--na-prob-thresh", "0.3"])
    assert (args.command, args.no_answer_threshold, args.no_answer_probability_file) == ("score", 0.3, None)
    assert args.func is run_score
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["total"] == 87


def _error_of(arguments: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(arguments) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("squad-qa score: error: ") and captured.err.count("\n") == 1
    return captured.err


def test_missing_and_invalid_data_file(
    predictions_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "absent.json"
    assert f"data file: {missing}: file not found" in _error_of([str(missing), str(predictions_file)], capsys)

    document = json.loads(V2_SLICE.read_text(encoding="utf-8"))
    question = document["data"][0]["paragraphs"][0]["qas"][0]
    question["answers"][0]["answer_start"] = 0
    data_file = _write_json(tmp_path / "bad.json", document)
    error = _error_of([str(data_file), str(predictions_file)], capsys)
    assert f"{data_file}, article 'Sky_(United_Kingdom)', question '{question['id']}'" in error
    assert "is not at answer_start 0" in error


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "file not found"),
        ('{"a": "x",}', "malformed JSON at line 1, column 11"),
        ('["BSkyB"]', "must be a JSON object keyed by question id, got list"),
        (
            '{"57092322efce8f15003a7db0": 3, "57092322efce8f15003a7db1": null}',
            "2 value(s) are not answer strings: ",
        ),
    ],
)
def test_bad_predictions_file(
    content: str | None, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "predictions.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    error = _error_of([str(V2_SLICE), str(path)], capsys)
    assert f"predictions file {path}: {expected}" in error


def test_missing_predictions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    predictions = _gold_predictions()
    first_ids = list(predictions)[:2]
    for question_id in first_ids:
        del predictions[question_id]
    error = _error_of([str(V2_SLICE), str(_write_json(tmp_path / "p.json", predictions))], capsys)
    assert f"missing predictions for 2 of 87 questions: {first_ids[0]!r}, {first_ids[1]!r}" in error


@pytest.mark.parametrize(
    ("probabilities", "expected"),
    [
        ({"q": "high"}, "1 value(s) are not finite numbers: 'q'"),
        ({"q": True}, "1 value(s) are not finite numbers: 'q'"),
        ({"q": float("nan")}, "1 value(s) are not finite numbers: 'q'"),
        ([0.5], "must be a JSON object keyed by question id, got list"),
    ],
)
def test_bad_no_answer_probability_file(
    probabilities: Any,
    expected: str,
    predictions_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = _write_json(tmp_path / "na_probs.json", probabilities)
    error = _error_of([str(V2_SLICE), str(predictions_file), "--na-prob-file", str(path)], capsys)
    assert f"no-answer probability file {path}: {expected}" in error


def test_probabilities_missing_for_some_questions(
    predictions_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    probabilities = dict.fromkeys(list(_gold_predictions())[:80], 0.5)
    path = _write_json(tmp_path / "na_probs.json", probabilities)
    error = _error_of([str(V2_SLICE), str(predictions_file), "--na-prob-file", str(path)], capsys)
    assert "missing no-answer probabilities for 7 of 87 questions" in error


def test_module_entry_point_reports_errors_without_traceback(tmp_path: Path) -> None:
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SOURCE_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    completed = subprocess.run(
        [sys.executable, "-m", "qa_common.cli_score", str(V2_SLICE), str(tmp_path / "absent.json")],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
    )
    assert completed.returncode == 2
    assert (
        completed.stderr
        == f"squad-qa score: error: predictions file {tmp_path / 'absent.json'}: file not found\n"
    )
    assert "Traceback" not in completed.stderr
