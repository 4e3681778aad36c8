"""Serving limits: set by model config or SQUAD_QA_MAX_* variables when a model is loaded, a bound on a whole
request's characters, refusals told apart from other bad requests, and the served error keeping its message."""

from __future__ import annotations

import json

import pytest

from qa_common.serving import (
    LIMIT_VARIABLES,
    InvalidRequestError,
    RequestTooLargeError,
    ServingLimits,
    parse_requests,
)

RECORD = {"question": "Who wrote it?", "context": "It was written by Ada."}


def test_defaults_and_the_variable_of_each_limit():
    assert ServingLimits() == ServingLimits(max_records=256, max_question_chars=1_000, max_context_chars=100_000,
                                            max_request_chars=1_000_000)
    assert ServingLimits.from_settings({}, {}) == ServingLimits()
    assert LIMIT_VARIABLES == {
        "max_records": "SQUAD_QA_MAX_RECORDS",
        "max_question_chars": "SQUAD_QA_MAX_QUESTION_CHARS",
        "max_context_chars": "SQUAD_QA_MAX_CONTEXT_CHARS",
        "max_request_chars": "SQUAD_QA_MAX_REQUEST_CHARS",
    }


def test_model_config_wins_over_the_environment_which_wins_over_the_default():
    environ = {"SQUAD_QA_MAX_CONTEXT_CHARS": " 5000 ", "SQUAD_QA_MAX_RECORDS": "8", "SQUAD_QA_MAX_QUESTION_CHARS": ""}
    limits = ServingLimits.from_settings({"max_records": 4, "device": "cpu"}, environ)
    assert limits == ServingLimits(max_records=4, max_context_chars=5000)


def test_the_process_environment_is_read_by_default(monkeypatch):
    monkeypatch.setenv("SQUAD_QA_MAX_REQUEST_CHARS", "123")
    assert ServingLimits.from_settings().max_request_chars == 123


@pytest.mark.parametrize(("config", "environ", "message"), [
    ({}, {"SQUAD_QA_MAX_RECORDS": "lots"}, "SQUAD_QA_MAX_RECORDS='lots': expected a whole number of at least 1"),
    ({}, {"SQUAD_QA_MAX_CONTEXT_CHARS": "0"}, "SQUAD_QA_MAX_CONTEXT_CHARS='0'"),
    ({}, {"SQUAD_QA_MAX_CONTEXT_CHARS": "-5"}, "SQUAD_QA_MAX_CONTEXT_CHARS='-5'"),
    ({"max_records": 2.5}, {}, "model config max_records=2.5"),
    ({"max_records": True}, {}, "model config max_records=True"),
])
def test_a_mistyped_limit_stops_the_model_from_loading(config, environ, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        ServingLimits.from_settings(config, environ)


def test_limits_themselves_are_checked():
    with pytest.raises(ValueError, match="max_records must be a whole number of at least 1, got 0"):
        ServingLimits(max_records=0)


def test_a_request_over_its_total_characters_is_refused_as_too_large():
    limits = ServingLimits(max_request_chars=2 * (len(RECORD["question"]) + len(RECORD["context"])))
    assert len(parse_requests([RECORD, RECORD], limits)) == 2
    with pytest.raises(RequestTooLargeError, match="^the request holds 105 characters of questions and contexts; "
                                                   "the limit is 70$"):
        parse_requests([RECORD] * 3, limits)


@pytest.mark.parametrize(("records", "limits", "too_large"), [
    ([RECORD] * 3, ServingLimits(max_records=2), True),
    ([{**RECORD, "question": "q" * 11}], ServingLimits(max_question_chars=10), True),
    ([{**RECORD, "context": "c" * 31}], ServingLimits(max_context_chars=30), True),
    ([{**RECORD, "context": 3}], ServingLimits(), False),
    ([{"question": "q"}], ServingLimits(), False),
])
def test_over_a_limit_is_told_apart_from_malformed(records, limits, too_large):
    with pytest.raises(InvalidRequestError) as refused:
        parse_requests(records, limits)
    assert isinstance(refused.value, RequestTooLargeError) is too_large


def test_the_served_refusal_keeps_its_message_when_mlflow_rewrites_it():
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    from qa_common.tracking.pyfunc import RequestRefused

    error = RequestRefused("request too large: record 0: context has 9 characters; the limit is 8",
                           error_code=INVALID_PARAMETER_VALUE)
    # What mlflow's scoring server does with an MlflowException from predict, data being the whole request.
    error.message = f"Failed to predict data '{'x' * 1000}'. \nError: {error.message}"
    assert json.loads(error.serialize_as_json())["message"] == (
        "request too large: record 0: context has 9 characters; the limit is 8")
    assert error.get_http_status_code() == 413
    refused = RequestRefused("invalid request: record 0: field 'context' is empty", error_code=INVALID_PARAMETER_VALUE)
    assert refused.get_http_status_code() == 400
