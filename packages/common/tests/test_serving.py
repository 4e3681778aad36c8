"""Tests of qa_common.serving.parse_requests: the request shapes MLflow serving passes, and refused requests."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest

from qa_common.serving import InvalidRequestError, ServingLimits, parse_requests

FIRST = {"question": "Who wrote it?", "context": "It was written by Ada."}
SECOND = {"question": "When?", "context": "In 1843."}
PAIRS = [("Who wrote it?", "It was written by Ada."), ("When?", "In 1843.")]


def refused(data, message: str, limits: ServingLimits = ServingLimits()) -> None:
    with pytest.raises(InvalidRequestError, match=f"^{re.escape(message)}$"):
        parse_requests(data, limits)


def test_a_dataframe() -> None:
    frame = pd.DataFrame([FIRST, SECOND])
    assert parse_requests(frame) == PAIRS
    assert parse_requests(frame[["context", "question"]].assign(extra=1)) == PAIRS  # column order and extras


def test_a_list_of_records() -> None:
    assert parse_requests([FIRST, SECOND]) == PAIRS
    assert parse_requests((FIRST, {**SECOND, "id": "q2"})) == PAIRS


def test_a_dict_of_columns() -> None:
    columns = {"question": [FIRST["question"], SECOND["question"]], "context": (FIRST["context"], SECOND["context"])}
    assert parse_requests(columns) == PAIRS


def test_a_single_record() -> None:
    assert parse_requests(FIRST) == PAIRS[:1]


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([FIRST, {"question": "Who?"}], "record 1: missing field 'context'"),
        ([{"context": "c"}], "record 0: missing field 'question'"),
        ([FIRST, SECOND, {"question": None, "context": "c"}], "record 2: missing field 'question'"),
        ([FIRST, {"question": 3, "context": "c"}], "record 1: field 'question' must be a string, got int"),
        ([{"question": "q", "context": b"bytes"}], "record 0: field 'context' must be a string, got bytes"),
        ([FIRST, {"question": "q", "context": ["c"]}], "record 1: field 'context' must be a string, got list"),
        ([{"question": "", "context": "c"}], "record 0: field 'question' is empty"),
        ([FIRST, {"question": "q", "context": " \n\t"}], "record 1: field 'context' is empty"),
        ([FIRST, "just text"], "record 1: expected an object, got str"),
    ],
)
def test_bad_records_are_refused_naming_the_record_and_field(records, message: str) -> None:
    refused(records, message)


def test_a_missing_value_in_a_dataframe_is_a_missing_field() -> None:
    frame = pd.DataFrame({"question": ["q1", None, "q3"], "context": ["c1", "c2", math.nan]})
    refused(frame, "record 1: missing field 'question'")
    refused(frame.iloc[[0, 2]], "record 1: missing field 'context'")  # positions in the request, not the index


def test_a_numeric_column_is_not_text() -> None:
    refused(pd.DataFrame({"question": ["q"], "context": [42]}), "record 0: field 'context' must be a string, got int")


def test_too_long_fields_are_refused() -> None:
    limits = ServingLimits(max_question_chars=10, max_context_chars=20)
    assert parse_requests([{"question": "q" * 10, "context": "c" * 20}], limits) == [("q" * 10, "c" * 20)]
    refused([{"question": "q", "context": "c"}, {"question": "q" * 11, "context": "c"}],
            "record 1: question has 11 characters; the limit is 10", limits)
    refused([{"question": "q", "context": "c"}, {"question": "q", "context": "c" * 21}],
            "record 1: context has 21 characters; the limit is 20", limits)


def test_too_many_records_are_refused() -> None:
    limits = ServingLimits(max_records=2)
    assert len(parse_requests([FIRST, SECOND], limits)) == 2
    refused([FIRST, SECOND, FIRST], "3 records in one request; the limit is 2", limits)
    refused({"question": ["q"] * 3, "context": ["c"] * 3}, "3 records in one request; the limit is 2", limits)
    assert ServingLimits().max_records == 256
    refused([FIRST] * 257, "257 records in one request; the limit is 256")


def test_ragged_columns_are_refused() -> None:
    refused({"question": ["q1", "q2"], "context": ["c1"]}, "columns of the request have different lengths")


@pytest.mark.parametrize("empty", [[], pd.DataFrame(columns=["question", "context"]), {"question": [], "context": []}])
def test_an_empty_request_is_refused(empty) -> None:
    refused(empty, "the request holds no records")


@pytest.mark.parametrize(("data", "kind"), [("Who?", "str"), (42, "int"), (None, "NoneType")])
def test_something_other_than_records_is_refused(data, kind: str) -> None:
    refused(data, f"expected records with fields question, context, got {kind}")


def test_the_error_is_a_value_error() -> None:
    assert issubclass(InvalidRequestError, ValueError)
