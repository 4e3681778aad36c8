"""The `squad-qa score` command: official SQuAD 2.0 scoring of a predictions file.

A drop-in for the official evaluation script, with the same arguments and the same printed JSON, that also
reads JSONL and hub data and reports bad input as a one-line error (exit code 2) instead of a traceback:

    squad-qa score data/validation-v2.0.json predictions.json --na-prob-file na_probs.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qa_common.data.readers import SquadFormatError, load_squad
from qa_common.scoring import score_predictions

USAGE_ERROR = 2
_MAX_LISTED_IDS = 5


class _InputError(Exception):
    """Bad input to the command, reported as one line on stderr."""


def _configure(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "data_file",
        metavar="DATA",
        help="questions with gold answers: official SQuAD JSON, .jsonl records, or hub:NAME[:SPLIT]",
    )
    parser.add_argument(
        "predictions_file", metavar="PREDICTIONS", help='JSON object {question_id: "answer text"}'
    )
    parser.add_argument(
        "--na-prob-file",
        "-n",
        dest="no_answer_probability_file",
        metavar="FILE",
        help="JSON object {question_id: probability of no answer}; adds the best thresholds",
    )
    parser.add_argument(
        "--na-prob-thresh",
        "-t",
        dest="no_answer_threshold",
        type=float,
        default=1.0,
        metavar="T",
        help='score a question as answered "" where its no-answer probability exceeds T (default 1.0)',
    )
    parser.add_argument(
        "--out-file",
        "-o",
        dest="out_file",
        metavar="FILE",
        help="write the result JSON to FILE instead of printing it",
    )
    parser.set_defaults(func=run_score)
    return parser


def add_score_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the `score` subcommand on an `argparse` subparsers object; its handler is `args.func`."""
    parser = subparsers.add_parser(
        "score",
        help="score predictions with the official SQuAD 2.0 metrics",
        description=(
            "Score predictions with the official SQuAD 2.0 procedure (exact match and F1, HasAns/NoAns, "
            "best no-answer thresholds) and print the result as the official script does."
        ),
    )
    return _configure(parser)


def _load_json_object(path: str, what: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise _InputError(f"{what} {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise _InputError(f"{what} {path}: cannot read the file: {error}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise _InputError(
            f"{what} {path}: malformed JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    if not isinstance(value, dict):
        raise _InputError(
            f"{what} {path}: must be a JSON object keyed by question id, got {type(value).__name__}"
        )
    return value


def _list_ids(ids: Sequence[str]) -> str:
    listed = ", ".join(repr(question_id) for question_id in ids[:_MAX_LISTED_IDS])
    return listed + (", ..." if len(ids) > _MAX_LISTED_IDS else "")


def _load_predictions(path: str) -> dict[str, str]:
    predictions = _load_json_object(path, "predictions file")
    not_strings = [question_id for question_id, text in predictions.items() if not isinstance(text, str)]
    if not_strings:
        raise _InputError(
            f"predictions file {path}: {len(not_strings)} value(s) are not answer strings: "
            f"{_list_ids(not_strings)}"
        )
    return predictions


def _is_probability_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _load_no_answer_probabilities(path: str) -> dict[str, float]:
    # kept in file order: the official threshold search breaks ties between equal probabilities by it
    probabilities = _load_json_object(path, "no-answer probability file")
    not_numbers = [
        question_id for question_id, value in probabilities.items() if not _is_probability_number(value)
    ]
    if not_numbers:
        raise _InputError(
            f"no-answer probability file {path}: {len(not_numbers)} value(s) are not finite numbers: "
            f"{_list_ids(not_numbers)}"
        )
    return probabilities


def _score(args: argparse.Namespace) -> dict[str, float | int]:
    try:
        loaded = load_squad(args.data_file)
    except (SquadFormatError, ImportError, OSError, ValueError) as error:
        raise _InputError(f"data file: {error}") from None
    predictions = _load_predictions(args.predictions_file)
    no_answer_probabilities = None
    if args.no_answer_probability_file:
        no_answer_probabilities = _load_no_answer_probabilities(args.no_answer_probability_file)
    try:
        return score_predictions(
            loaded.examples,
            predictions,
            no_answer_probabilities=no_answer_probabilities,
            no_answer_threshold=args.no_answer_threshold,
        )
    except ValueError as error:
        raise _InputError(str(error)) from None


def run_score(args: argparse.Namespace) -> int:
    """Run `squad-qa score` on parsed arguments; returns the exit code (0, or 2 for bad input).

    Prints `json.dumps(result, indent=2)` like the official script, or with --out-file writes the result
    there as the official script does (`json.dump`, no indent) and prints nothing.
    """
    try:
        result = _score(args)
        if args.out_file:
            try:
                with open(args.out_file, "w", encoding="utf-8") as file:
                    json.dump(result, file)
            except OSError as error:
                raise _InputError(f"cannot write --out-file {args.out_file}: {error}") from None
        else:
            print(json.dumps(result, indent=2))
    except _InputError as error:
        print(f"squad-qa score: error: {error}", file=sys.stderr)
        return USAGE_ERROR
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command on its own: `python -m qa_common.cli_score DATA PREDICTIONS [options]`."""
    parser = _configure(
        argparse.ArgumentParser(prog="squad-qa score", description="Official SQuAD 2.0 scoring.")
    )
    return run_score(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
