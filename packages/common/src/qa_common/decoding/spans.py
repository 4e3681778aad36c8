"""N-best span decoding with a maximum answer length and the null (no-answer) score, vectorised with numpy.

The model of this module is HF's ``utils_qa.postprocess_qa_predictions`` without its side effects: for every
window (feature) the best (start, end) token pairs inside the context are scored start_logit + end_logit, the
null score is the [CLS] pair, candidates of all windows of an example are merged, and the example's null
score is the smallest over its windows. All pairs of a batch are scored at once as an (F, L, K) array, so
decoding stays cheap next to the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qa_common.data.windows import NOT_CONTEXT


@dataclass(frozen=True)
class SpanCandidate:
    """One answer span: its text, character range, logit score and probability within its window."""

    text: str
    start_char: int
    end_char: int
    score: float
    probability: float


@dataclass(frozen=True)
class ExampleDecoding:
    """The decoding of one example: best spans first, the null score and the no-answer probability."""

    candidates: tuple[SpanCandidate, ...]
    null_score: float
    no_answer_probability: float

    @property
    def best(self) -> SpanCandidate | None:
        return self.candidates[0] if self.candidates else None


def no_answer_probability(null_score: float, best_span_score: float) -> float:
    """sigmoid(null_score - best_span_score): 0.5 where the null and best span scores tie.

    It is monotonic in the score difference HF thresholds on, so thresholds chosen on it are the same
    decisions, and it is a probability the official best-threshold search and the served contract can use.
    """
    difference = null_score - best_span_score
    return float(1.0 / (1.0 + np.exp(-np.clip(difference, -60.0, 60.0))))


def _log_softmax(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    masked = np.where(mask, logits, -np.inf)
    top = masked.max(axis=-1, keepdims=True)
    return masked - top - np.log(np.exp(masked - top).sum(axis=-1, keepdims=True))


def decode_spans(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    offsets: np.ndarray,
    attention_mask: np.ndarray,
    feature_example_index: np.ndarray,
    contexts: Sequence[str],
    *,
    n_best: int = 20,
    max_answer_length: int = 30,
    null_index: int = 0,
) -> list[ExampleDecoding]:
    """Decode the best answer spans of every example from per-window start/end logits.

    Args:
        start_logits, end_logits: (F, L) float arrays, one row per window, padded to a common length L.
        offsets: (F, L, 2) int array of character offsets into the example's context, NOT_CONTEXT (-1) for
            tokens outside the context (question, special tokens, padding).
        attention_mask: (F, L) array, 1 for real tokens; probabilities are softmaxes over real tokens.
        feature_example_index: (F,) int array, the example each window belongs to.
        contexts: the context of every example, indexed by ``feature_example_index``.
        n_best: how many candidates to keep per window and per example.
        max_answer_length: the longest span in tokens.
        null_index: the token position whose start+end logits are the null (no-answer) score.

    Returns:
        One ExampleDecoding per context, in order. An example whose windows hold no valid span gets no
        candidates and a no-answer probability of 1.
    """
    start_logits = np.asarray(start_logits, dtype=np.float32)
    end_logits = np.asarray(end_logits, dtype=np.float32)
    num_features, length = start_logits.shape
    span_lengths = min(max_answer_length, length)
    is_context = offsets[..., 0] != NOT_CONTEXT  # (F, L)
    real = np.asarray(attention_mask, dtype=bool)

    start_index = np.arange(length)[:, None]  # (L, 1)
    end_index = start_index + np.arange(span_lengths)[None, :]  # (L, K)
    in_range = end_index < length
    end_index = np.minimum(end_index, length - 1)
    # (F, L, K) scores of every span starting at i of length k+1; invalid spans are -inf.
    scores = start_logits[:, :, None] + end_logits[:, end_index]
    valid = in_range[None] & is_context[:, :, None] & is_context[:, end_index]
    scores = np.where(valid, scores, -np.inf)

    start_log_probs = _log_softmax(start_logits, real)
    end_log_probs = _log_softmax(end_logits, real)
    null_scores = start_logits[:, null_index] + end_logits[:, null_index]

    keep = min(n_best, length * span_lengths)
    flat = scores.reshape(num_features, -1)
    top = np.argpartition(-flat, keep - 1, axis=1)[:, :keep] if keep < flat.shape[1] else np.tile(
        np.arange(flat.shape[1]), (num_features, 1)
    )

    per_example: dict[int, list[SpanCandidate]] = {}
    example_null: dict[int, float] = {}
    for feature in range(num_features):
        example = int(feature_example_index[feature])
        example_null[example] = min(example_null.get(example, np.inf), float(null_scores[feature]))
        context = contexts[example]
        candidates = per_example.setdefault(example, [])
        for flat_index in top[feature]:
            score = flat[feature, flat_index]
            if not np.isfinite(score):
                continue
            start_token, width = divmod(int(flat_index), span_lengths)
            end_token = start_token + width
            start_char = int(offsets[feature, start_token, 0])
            end_char = int(offsets[feature, end_token, 1])
            probability = float(np.exp(start_log_probs[feature, start_token] + end_log_probs[feature, end_token]))
            text = context[start_char:end_char]
            candidates.append(SpanCandidate(text, start_char, end_char, float(score), probability))

    decodings = []
    for example in range(len(contexts)):
        candidates = per_example.get(example, [])
        null_score = example_null.get(example, 0.0)
        # Several windows can propose the same characters; keep the best-scoring copy of each span.
        unique: dict[tuple[int, int], SpanCandidate] = {}
        for candidate in sorted(candidates, key=lambda c: c.score, reverse=True):
            if candidate.text.strip() and (candidate.start_char, candidate.end_char) not in unique:
                unique[(candidate.start_char, candidate.end_char)] = candidate
        best = tuple(list(unique.values())[:n_best])
        probability = no_answer_probability(null_score, best[0].score) if best else 1.0
        decodings.append(ExampleDecoding(candidates=best, null_score=null_score, no_answer_probability=probability))
    return decodings


def pad_offsets(offsets: Sequence[np.ndarray], length: int) -> np.ndarray:
    """Stack per-window (n, 2) offset arrays into (F, length, 2), padding with NOT_CONTEXT."""
    padded = np.full((len(offsets), length, 2), NOT_CONTEXT, dtype=np.int64)
    for row, feature_offsets in enumerate(offsets):
        padded[row, : len(feature_offsets)] = feature_offsets
    return padded
