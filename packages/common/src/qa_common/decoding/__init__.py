"""Turning model outputs into answers: extractive span decoding and the no-answer decision."""

from qa_common.decoding.spans import ExampleDecoding, SpanCandidate, decode_spans, no_answer_probability

__all__ = ["ExampleDecoding", "SpanCandidate", "decode_spans", "no_answer_probability"]
