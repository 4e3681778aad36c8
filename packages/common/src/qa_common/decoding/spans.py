"""N-best span decoding with a maximum answer length and the null (no-answer) score, vectorised with numpy.

The model of this module is HF's ``utils_qa.postprocess_qa_predictions`` without its side effects: for every
window (feature) the best (start, end) token pairs inside the context are scored start_logit + end_logit, the
null score is the [CLS] pair, candidates of all windows of an example are merged, and the example's null
score is the smallest over its windows. All pairs of a batch are scored at once as an (F, L, K) array, so
decoding stays cheap next to the model.

``span_scores="window_probabilities"`` scores as transformers' ``pipeline("question-answering")`` does instead:
each window's start and end logits become log-softmaxes over the tokens a span may use there (its context and
the null position), so a span's score is log(p_start x p_end) within its window; when merging, the windows
whose best spans have the same text (ignoring case) add their probabilities, and the null is the smallest
p_start[null] x p_end[null] over the windows. Within one window both rules rank spans alike; across windows they
can differ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

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
    difference = min(max(float(null_score) - float(best_span_score), -60.0), 60.0)
    return 1.0 / (1.0 + math.exp(-difference))


def _log_softmax(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    masked = np.where(mask, logits, -np.inf)
    top = masked.max(axis=-1, keepdims=True)
    return masked - top - np.log(np.exp(masked - top).sum(axis=-1, keepdims=True))


SpanScores = Literal["logits", "window_probabilities"]
SPAN_SCORES: tuple[str, ...] = ("logits", "window_probabilities")


def _pipeline_rule(span_scores: str) -> bool:
    """Whether ``span_scores`` asks for the QA pipeline's window probabilities; refuses an unknown rule."""
    if span_scores not in SPAN_SCORES:
        raise ValueError(f"span_scores must be one of {', '.join(SPAN_SCORES)}, not {span_scores!r}")
    return span_scores == "window_probabilities"


def _span_positions(is_context, null_index: int):
    """The positions a window's span probabilities are normalised over: its context and the null position."""
    allowed = is_context.copy() if isinstance(is_context, np.ndarray) else is_context.clone()
    allowed[:, null_index] = True
    return allowed


@dataclass(frozen=True)
class WindowSpans:
    """The best spans of every window, as token positions: the first stage of decoding.

    Row ``f`` holds window ``f``'s ``k`` best (start, end) token pairs by score, best first; a row with fewer
    valid spans is filled with score -inf. ``probability`` is softmax(start)[start] x softmax(end)[end] over the
    window's real tokens; ``null_score`` the window's null (no-answer) score.
    """

    start_token: np.ndarray  # (F, k) int64
    end_token: np.ndarray  # (F, k) int64
    score: np.ndarray  # (F, k) float32
    probability: np.ndarray  # (F, k) float32
    null_score: np.ndarray  # (F,) float32


def top_window_spans(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    is_context: np.ndarray,
    attention_mask: np.ndarray,
    *,
    n_best: int = 20,
    max_answer_length: int = 30,
    null_index: int = 0,
    span_scores: SpanScores = "logits",
) -> WindowSpans:
    """The ``n_best`` spans of every window with numpy: the reference of `top_window_spans_torch`.

    Args:
        start_logits, end_logits: (F, L) float arrays, one row per window, padded to a common length L.
        is_context: (F, L) bool array, True for context tokens (the only tokens a span may start or end on).
        attention_mask: (F, L) array, 1 for real tokens; probabilities are softmaxes over real tokens.
        n_best: how many spans to keep per window.
        max_answer_length: the longest span in tokens.
        null_index: the token position whose start+end logits are the null (no-answer) score.
        span_scores: "logits" (start + end logits) or "window_probabilities" (the QA pipeline's rule; module
            docstring).
    """
    start_logits = np.asarray(start_logits, dtype=np.float32)
    end_logits = np.asarray(end_logits, dtype=np.float32)
    num_features, length = start_logits.shape
    span_lengths = min(max_answer_length, length)
    is_context = np.asarray(is_context, dtype=bool)
    real = np.asarray(attention_mask, dtype=bool)
    if _pipeline_rule(span_scores):
        allowed = _span_positions(is_context, null_index) & real
        start_logits, end_logits = _log_softmax(start_logits, allowed), _log_softmax(end_logits, allowed)

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
    top_scores = np.take_along_axis(flat, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    top, top_scores = np.take_along_axis(top, order, axis=1), np.take_along_axis(top_scores, order, axis=1)
    start_token, width = np.divmod(top, span_lengths)
    end_token = np.minimum(start_token + width, length - 1)  # past the end only for -inf (invalid) spans
    probability = np.exp(np.take_along_axis(start_log_probs, start_token, axis=1)
                         + np.take_along_axis(end_log_probs, end_token, axis=1))
    return WindowSpans(start_token.astype(np.int64), end_token.astype(np.int64), top_scores.astype(np.float32),
                       probability.astype(np.float32), null_scores.astype(np.float32))


def top_window_spans_torch(
    start_logits,
    end_logits,
    is_context,
    attention_mask,
    *,
    n_best: int = 20,
    max_answer_length: int = 30,
    null_index: int = 0,
    span_scores: SpanScores = "logits",
    to_host: bool = True,
):
    """`top_window_spans` with torch tensors on the logits' device (a GPU): only (F, n_best) arrays leave it.

    The same arithmetic in float32 (scores are start + end logits, as in the reference), ``topk`` instead of
    ``argpartition``; tests hold both to the same spans and null scores on real windows. With ``to_host``
    False it returns the results packed in one tensor still on the device, without waiting for the GPU
    (`unpack_window_spans` of its ``.cpu().numpy()`` gives the WindowSpans).
    """
    import torch

    start = start_logits.float()
    end = end_logits.float()
    num_features, length = start.shape
    device = start.device
    span_lengths = min(max_answer_length, length)
    is_context = is_context.to(device=device, dtype=torch.bool)
    real = attention_mask.to(device=device, dtype=torch.bool)
    if _pipeline_rule(span_scores):
        allowed = _span_positions(is_context, null_index) & real
        start = start.masked_fill(~allowed, float("-inf")).log_softmax(dim=-1)
        end = end.masked_fill(~allowed, float("-inf")).log_softmax(dim=-1)
    start_index = torch.arange(length, device=device)[:, None]
    end_index = start_index + torch.arange(span_lengths, device=device)[None, :]
    in_range = end_index < length
    end_index = end_index.clamp(max=length - 1)
    scores = start[:, :, None] + end[:, end_index]
    valid = in_range[None] & is_context[:, :, None] & is_context[:, end_index]
    scores = scores.masked_fill(~valid, float("-inf"))
    keep = min(n_best, length * span_lengths)
    top_scores, top = scores.reshape(num_features, -1).topk(keep, dim=1, sorted=True)
    start_token = torch.div(top, span_lengths, rounding_mode="floor")
    end_token = (start_token + top % span_lengths).clamp(max=length - 1)  # past the end only for -inf spans
    start_log_probs = start.masked_fill(~real, float("-inf")).log_softmax(dim=-1)
    end_log_probs = end.masked_fill(~real, float("-inf")).log_softmax(dim=-1)
    probability = (start_log_probs.gather(1, start_token) + end_log_probs.gather(1, end_token)).exp()
    null_scores = start[:, null_index] + end[:, null_index]
    # One transfer for the five small results (`unpack_window_spans`), left to the caller with ``to_host=False``
    # so it can queue more GPU work first.
    packed = torch.cat([start_token.float(), end_token.float(), top_scores, probability, null_scores[:, None]],
                       dim=1)
    return unpack_window_spans(packed.cpu().numpy()) if to_host else packed


def unpack_window_spans(packed: np.ndarray) -> WindowSpans:
    """The `WindowSpans` of `top_window_spans_torch`'s packed (F, 4k + 1) array (on the host)."""
    k = (packed.shape[1] - 1) // 4
    return WindowSpans(packed[:, :k].astype(np.int64), packed[:, k:2 * k].astype(np.int64),
                       packed[:, 2 * k:3 * k], packed[:, 3 * k:4 * k], packed[:, 4 * k])


def merge_window_spans(
    spans: WindowSpans,
    offsets: Sequence[np.ndarray] | np.ndarray,
    feature_example_index: np.ndarray,
    contexts: Sequence[str],
    *,
    n_best: int = 20,
    span_scores: SpanScores = "logits",
) -> list[ExampleDecoding]:
    """The second stage of decoding: the windows' spans merged per example, mapped to context characters.

    ``offsets[f]`` is window ``f``'s (n_tokens, 2) character offsets. An example's candidates are sorted by
    score (ties: earlier window, then earlier start, then shorter span), the same characters proposed by
    several windows are kept once, empty texts dropped, and the ``n_best`` best kept; its null score is the
    smallest over its windows. An example whose windows hold no valid span gets no candidates and a no-answer
    probability of 1. With ``span_scores="window_probabilities"`` (scores are log-probabilities), the first
    candidate of every text that is some window's best span scores the log of the sum of those windows'
    probabilities, as the QA pipeline merges them.
    """
    contexts = list(contexts)
    num_features, keep = spans.score.shape
    example_of_feature = np.asarray(feature_example_index, dtype=np.int64)[:num_features]
    # Null scores: the smallest over each example's windows (0.0 for an example without windows).
    null = np.full(len(contexts), np.inf)
    np.minimum.at(null, example_of_feature, spans.null_score.astype(np.float64))
    null[~np.isfinite(null)] = 0.0

    # Every finite (window, rank) candidate, flattened, with its example and character range (vectorised).
    feature, rank = np.nonzero(np.isfinite(spans.score))
    start_token = spans.start_token[feature, rank]
    end_token = spans.end_token[feature, rank]
    score = spans.score[feature, rank].astype(np.float64)
    probability = spans.probability[feature, rank]
    example = example_of_feature[feature]
    if isinstance(offsets, np.ndarray) and offsets.ndim == 3:
        start_char = offsets[feature, start_token, 0]
        end_char = offsets[feature, end_token, 1]
    else:
        lengths = np.fromiter((len(o) for o in offsets), dtype=np.int64, count=len(offsets))
        flat = np.concatenate([np.asarray(o, dtype=np.int64).reshape(-1, 2) for o in offsets]) if len(offsets) \
            else np.zeros((0, 2), np.int64)
        first = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        start_char = flat[first[feature] + start_token, 0]
        end_char = flat[first[feature] + end_token, 1]
    # Best first within each example; ties: earlier window, then earlier start, then shorter span.
    order = np.lexsort((end_token, start_token, feature, -score, example))
    example, feature, rank = example[order], feature[order], rank[order]
    start_char, end_char = start_char[order], end_char[order]
    score, probability = score[order], probability[order]
    # The same characters proposed by several windows: keep the first (best) copy of each span.
    span_key = np.stack([example, start_char, end_char], axis=1)
    _, first_copy = np.unique(span_key, axis=0, return_index=True)
    unique = np.zeros(len(order), dtype=bool)
    unique[first_copy] = True
    # Windows' best spans, for the pipeline's rule (texts of equal lowercase add their probabilities).
    summed: dict[int, dict[str, float]] = {}
    if _pipeline_rule(span_scores):
        for index in np.flatnonzero(rank == 0):
            text = contexts[example[index]][start_char[index]:end_char[index]].lower()
            texts = summed.setdefault(int(example[index]), {})
            texts[text] = texts.get(text, 0.0) + float(np.exp(score[index]))

    bounds = np.searchsorted(example, np.arange(len(contexts) + 1)).tolist()
    # Python lists: element access in the loop below is several times faster than on numpy arrays.
    unique, start_char, end_char = unique.tolist(), start_char.tolist(), end_char.tolist()
    score, probability, null = score.tolist(), probability.tolist(), null.tolist()
    decodings = []
    for index, context in enumerate(contexts):
        kept: list[SpanCandidate] = []
        texts = summed.get(index)
        for row in range(bounds[index], bounds[index + 1]):
            if not unique[row]:
                continue
            text = context[start_char[row]:end_char[row]]
            if not text.strip():
                continue
            kept.append(SpanCandidate(text, start_char[row], end_char[row], score[row], probability[row]))
            if len(kept) == n_best and not texts:  # summed scores can reorder all candidates: keep them all
                break
        if texts:
            for position, candidate in enumerate(kept):
                if candidate.text.lower() in texts:
                    kept[position] = replace(candidate, score=float(np.log(texts.pop(candidate.text.lower()))))
            kept.sort(key=lambda candidate: -candidate.score)  # stable: ties keep the order above
        best = tuple(kept[:n_best])
        null_score = null[index]
        probability_none = no_answer_probability(null_score, best[0].score) if best else 1.0
        decodings.append(ExampleDecoding(candidates=best, null_score=null_score,
                                         no_answer_probability=probability_none))
    return decodings


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
        One ExampleDecoding per context, in order (`merge_window_spans` says how candidates are merged).
    """
    offsets = np.asarray(offsets)
    spans = top_window_spans(start_logits, end_logits, offsets[..., 0] != NOT_CONTEXT, attention_mask,
                             n_best=n_best, max_answer_length=max_answer_length, null_index=null_index)
    return merge_window_spans(spans, offsets, feature_example_index, contexts, n_best=n_best)


def pad_offsets(offsets: Sequence[np.ndarray], length: int) -> np.ndarray:
    """Stack per-window (n, 2) offset arrays into (F, length, 2), padding with NOT_CONTEXT."""
    padded = np.full((len(offsets), length, 2), NOT_CONTEXT, dtype=np.int64)
    for row, feature_offsets in enumerate(offsets):
        padded[row, : len(feature_offsets)] = feature_offsets
    return padded
