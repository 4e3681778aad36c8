"""The one served-model contract of every squad-qa architecture.

Input: records with string fields ``question`` and ``context``. Output: one record per input with ``answer``
(empty string when the model finds no answer), ``no_answer_probability`` and ``score``. The calibrated
no-answer threshold stored with the model decides between the best span and no answer. Bad requests raise
``InvalidRequestError`` with a message naming the record and the field, requests over a limit its subclass
``RequestTooLargeError``; the MLflow wrapper turns them into HTTP 400 and 413.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from qa_common.adapter import QAModel, load_model
from qa_common.data.examples import SquadExample

INPUT_FIELDS = ("question", "context")
OUTPUT_FIELDS = ("answer", "no_answer_probability", "score")


class InvalidRequestError(ValueError):
    """A request that does not follow the contract; the message says which record and field."""


class RequestTooLargeError(InvalidRequestError):
    """A well-formed request over one of the `ServingLimits`; the message names the limit."""


@dataclass(frozen=True)
class ServingLimits:
    """Request limits; over them a request is refused rather than slowing every other caller down.

    The worst request within the defaults is bounded: at most ``max_request_chars`` characters of questions and
    contexts in all (a full batch of 256 typical SQuAD paragraphs, about 750 characters each, is 200,000).
    Each limit can be set when the model is loaded (`from_settings`): by the model config key of its name, or
    by the environment variable in `LIMIT_VARIABLES`, e.g. ``SQUAD_QA_MAX_CONTEXT_CHARS=20000 mlflow models
    serve ...``.
    """

    max_records: int = 256
    max_question_chars: int = 1_000
    max_context_chars: int = 100_000
    max_request_chars: int = 1_000_000

    def __post_init__(self) -> None:
        for limit in fields(self):
            value = getattr(self, limit.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"serving limit {limit.name} must be a whole number of at least 1, got {value!r}")

    @classmethod
    def from_settings(cls, config: Mapping[str, Any] | None = None,
                      environ: Mapping[str, str] | None = None) -> ServingLimits:
        """The limits of a served model: a key of ``config`` (the pyfunc model config), else the environment
        variable of `LIMIT_VARIABLES`, else the default. Raises ValueError for a value that is not a whole
        number of at least 1, so a mistyped setting stops the server from starting instead of being ignored."""
        config = config or {}
        environ = os.environ if environ is None else environ
        chosen: dict[str, int] = {}
        for name, variable in LIMIT_VARIABLES.items():
            if name in config:
                raw, origin = config[name], f"model config {name}"
            elif environ.get(variable, "").strip():
                raw, origin = environ[variable].strip(), variable
            else:
                continue
            value = _whole_number(raw)
            if value is None or value < 1:
                raise ValueError(f"{origin}={raw!r}: expected a whole number of at least 1")
            chosen[name] = value
        return cls(**chosen)


def _whole_number(raw: Any) -> int | None:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().isdigit():
        return int(raw)
    return None


LIMIT_VARIABLES = {
    "max_records": "SQUAD_QA_MAX_RECORDS",
    "max_question_chars": "SQUAD_QA_MAX_QUESTION_CHARS",
    "max_context_chars": "SQUAD_QA_MAX_CONTEXT_CHARS",
    "max_request_chars": "SQUAD_QA_MAX_REQUEST_CHARS",
}
"""The environment variable that sets each limit of `ServingLimits` when a model is loaded."""


def _as_records(data: Any) -> list[Mapping[str, Any]]:
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # a pandas DataFrame
        return data.to_dict(orient="records")
    if isinstance(data, Mapping):
        values = list(data.values())
        if values and all(isinstance(value, (list, tuple)) for value in values):
            lengths = {len(value) for value in values}
            if len(lengths) != 1:
                raise InvalidRequestError("columns of the request have different lengths")
            return [dict(zip(data.keys(), row, strict=True)) for row in zip(*values, strict=True)]
        return [data]
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        return list(data)
    raise InvalidRequestError(f"expected records with fields {', '.join(INPUT_FIELDS)}, got {type(data).__name__}")


def parse_requests(data: Any, limits: ServingLimits = ServingLimits()) -> list[tuple[str, str]]:
    """Validate a request and return its (question, context) pairs in order."""
    records = _as_records(data)
    if not records:
        raise InvalidRequestError("the request holds no records")
    if len(records) > limits.max_records:
        raise RequestTooLargeError(f"{len(records)} records in one request; the limit is {limits.max_records}")
    pairs = []
    request_chars = 0
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise InvalidRequestError(f"record {index}: expected an object, got {type(record).__name__}")
        for field in INPUT_FIELDS:
            value = record.get(field)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                raise InvalidRequestError(f"record {index}: missing field '{field}'")
            if not isinstance(value, str):
                raise InvalidRequestError(
                    f"record {index}: field '{field}' must be a string, got {type(value).__name__}"
                )
            if not value.strip():
                raise InvalidRequestError(f"record {index}: field '{field}' is empty")
        if len(record["question"]) > limits.max_question_chars:
            raise RequestTooLargeError(
                f"record {index}: question has {len(record['question'])} characters; "
                f"the limit is {limits.max_question_chars}"
            )
        if len(record["context"]) > limits.max_context_chars:
            raise RequestTooLargeError(
                f"record {index}: context has {len(record['context'])} characters; "
                f"the limit is {limits.max_context_chars}"
            )
        request_chars += len(record["question"]) + len(record["context"])
        pairs.append((record["question"], record["context"]))
    if request_chars > limits.max_request_chars:
        raise RequestTooLargeError(
            f"the request holds {request_chars} characters of questions and contexts; "
            f"the limit is {limits.max_request_chars}"
        )
    return pairs


class QAService:
    """Answers contract requests with a loaded model and its calibrated no-answer threshold."""

    def __init__(self, model: QAModel, no_answer_threshold: float, *, batch_size: int = 32,
                 limits: ServingLimits = ServingLimits()):
        self.model = model
        self.no_answer_threshold = no_answer_threshold
        self.batch_size = batch_size
        self.limits = limits
        # MLflow's scoring server runs each request in a thread of its own. Models are not safe to share between
        # threads: a fast tokenizer's truncation settings are state of the one Rust tokenizer, and concurrent
        # requests got each other's spans (3 wrong answers in 2,250 under scripts/reliability_load.py). One
        # request at a time uses the model; its forward pass already uses every core. Validation stays outside.
        self._model_lock = threading.Lock()

    @classmethod
    def from_directory(cls, directory: Path, *, runtime: str = "torch", device: str | None = None,
                       limits: ServingLimits = ServingLimits(), inference: Any = None) -> QAService:
        """Load a saved model; ``inference`` (`qa_common.extractive.InferenceOptions`, default: its defaults,
        bf16 weights on a GPU) says how it answers."""
        from qa_common.extractive import InferenceOptions

        model, info = load_model(Path(directory), runtime=runtime)
        if device:
            model.to(device)
        model.configure_inference(inference if inference is not None else InferenceOptions())
        return cls(model, info.no_answer_threshold, limits=limits)

    def answer(self, data: Any) -> list[dict[str, Any]]:
        pairs = parse_requests(data, self.limits)
        examples = [
            SquadExample(id=str(index), question=question, context=context, answers=())
            for index, (question, context) in enumerate(pairs)
        ]
        with self._model_lock:
            raw = self.model.predict(examples, batch_size=self.batch_size)
        results = []
        for example in examples:
            prediction = raw[example.id]
            answered = bool(prediction.text) and prediction.no_answer_probability <= self.no_answer_threshold
            results.append({
                "answer": prediction.text if answered else "",
                "no_answer_probability": float(prediction.no_answer_probability),
                "score": float(prediction.score if answered else prediction.no_answer_probability),
            })
        return results
