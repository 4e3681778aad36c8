"""The one served-model contract of every squad-qa architecture.

Input: records with string fields ``question`` and ``context``. Output: one record per input with ``answer``
(empty string when the model finds no answer), ``no_answer_probability`` and ``score``. The calibrated
no-answer threshold stored with the model decides between the best span and no answer. Bad requests raise
``InvalidRequestError`` with a message naming the record and the field; the MLflow wrapper turns it into a 4xx.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa_common.adapter import QAModel, load_model
from qa_common.data.examples import SquadExample

INPUT_FIELDS = ("question", "context")
OUTPUT_FIELDS = ("answer", "no_answer_probability", "score")


class InvalidRequestError(ValueError):
    """A request that does not follow the contract; the message says which record and field."""


@dataclass(frozen=True)
class ServingLimits:
    """Request limits; over them a request is refused rather than slowing every other caller down."""

    max_records: int = 256
    max_question_chars: int = 1_000
    max_context_chars: int = 100_000


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
        raise InvalidRequestError(f"{len(records)} records in one request; the limit is {limits.max_records}")
    pairs = []
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
            raise InvalidRequestError(
                f"record {index}: question has {len(record['question'])} characters; "
                f"the limit is {limits.max_question_chars}"
            )
        if len(record["context"]) > limits.max_context_chars:
            raise InvalidRequestError(
                f"record {index}: context has {len(record['context'])} characters; "
                f"the limit is {limits.max_context_chars}"
            )
        pairs.append((record["question"], record["context"]))
    return pairs


class QAService:
    """Answers contract requests with a loaded model and its calibrated no-answer threshold."""

    def __init__(self, model: QAModel, no_answer_threshold: float, *, batch_size: int = 32,
                 limits: ServingLimits = ServingLimits()):
        self.model = model
        self.no_answer_threshold = no_answer_threshold
        self.batch_size = batch_size
        self.limits = limits

    @classmethod
    def from_directory(cls, directory: Path, *, runtime: str = "torch", device: str | None = None) -> QAService:
        model, info = load_model(Path(directory), runtime=runtime)
        if device:
            model.to(device)
        return cls(model, info.no_answer_threshold)

    def answer(self, data: Any) -> list[dict[str, Any]]:
        pairs = parse_requests(data, self.limits)
        examples = [
            SquadExample(id=str(index), question=question, context=context, answers=())
            for index, (question, context) in enumerate(pairs)
        ]
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
