"""Windowing of long contexts into model-sized features for extractive readers with HF fast tokenizers.

Each (question, context) pair becomes one or more features of at most ``max_length`` tokens; consecutive
windows of a long context overlap by ``doc_stride`` tokens (the HF ``stride`` convention), so an answer cut by
one window boundary lies whole in the next. Context tokens keep their character offsets, which is how a
decoded token span maps back to an exact substring of the context.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from qa_common.data.examples import SquadExample

NOT_CONTEXT = -1


@dataclass
class ExtractiveFeatures:
    """Token windows of a list of examples.

    ``example_index[f]`` is the example feature ``f`` came from; ``offsets[f]`` is an (n_tokens, 2) array of
    character offsets into that example's context, NOT_CONTEXT for question, special and padding tokens.
    ``start_positions``/``end_positions`` are token labels (0, the [CLS] position, when the answer is not in
    the window or the question has none) when built with labels. ``extra_inputs`` are further per-feature token
    lists an architecture feeds its model (e.g. the question as its own sequence), padded per key in a batch.
    """

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    offsets: list[np.ndarray]
    example_index: np.ndarray
    start_positions: np.ndarray | None = None
    end_positions: np.ndarray | None = None
    extra_inputs: dict[str, list[list[int]]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> np.ndarray:
        return np.fromiter((len(ids) for ids in self.input_ids), dtype=np.int64, count=len(self.input_ids))


def _truncated_questions(tokenizer, questions: Sequence[str], max_question_length: int) -> list[str]:
    """Cut questions longer than ``max_question_length`` tokens at a token boundary, so the context fits."""
    encoded = tokenizer(list(questions), add_special_tokens=False, return_offsets_mapping=True)
    truncated = []
    for question, offsets in zip(questions, encoded["offset_mapping"], strict=True):
        if len(offsets) > max_question_length:
            question = question[: offsets[max_question_length - 1][1]]
        truncated.append(question)
    return truncated


def make_windows(
    tokenizer,
    examples: Sequence[SquadExample],
    *,
    max_length: int,
    doc_stride: int,
    max_question_length: int = 64,
    with_labels: bool = False,
) -> ExtractiveFeatures:
    """Tokenise ``examples`` into overlapping windows (see module docstring).

    ``tokenizer`` is a HF fast tokenizer (offsets are needed). With ``with_labels`` every feature gets the token
    positions of the first gold answer, or the [CLS] position when the answer is absent from the window.
    """
    if doc_stride >= max_length - max_question_length - 3:
        raise ValueError(
            f"doc_stride ({doc_stride}) must be smaller than max_length ({max_length}) minus the question "
            f"budget ({max_question_length}) and special tokens"
        )
    questions = [example.question.lstrip() for example in examples]
    contexts = [example.context for example in examples]
    # Questions are cut to their budget only when one is over it (rare): the windows' own tokens say so, which
    # saves tokenising every question twice. A question too long to leave room for any context fails the
    # tokenizer; cut first then.
    try:
        encoded, offsets, context_masks, longest_question = _encode(tokenizer, questions, contexts, max_length,
                                                                   doc_stride)
    except Exception:  # noqa: BLE001 - tokenizers' truncation error for a question longer than max_length
        longest_question = max_question_length + 1
    if longest_question > max_question_length:
        questions = _truncated_questions(tokenizer, questions, max_question_length)
        encoded, offsets, context_masks, _ = _encode(tokenizer, questions, contexts, max_length, doc_stride)
    example_index = np.asarray(encoded["overflow_to_sample_mapping"], dtype=np.int64)
    starts: list[int] = []
    ends: list[int] = []
    if with_labels:
        for feature, sample in enumerate(example_index):
            start, end = _label(examples[sample], offsets[feature], context_masks[feature],
                                encoded["input_ids"][feature])
            starts.append(start)
            ends.append(end)
    token_type_ids = encoded.get("token_type_ids")
    return ExtractiveFeatures(
        input_ids=encoded["input_ids"],
        token_type_ids=token_type_ids,
        offsets=offsets,
        example_index=example_index,
        start_positions=np.asarray(starts, dtype=np.int64) if with_labels else None,
        end_positions=np.asarray(ends, dtype=np.int64) if with_labels else None,
    )


def _encode(tokenizer, questions: list[str], contexts: list[str], max_length: int, doc_stride: int):
    """The windows of (question, context) pairs, each window's offsets (NOT_CONTEXT outside the context) and
    context mask, and the most question tokens of any window."""
    encoded = tokenizer(questions, contexts, truncation="only_second", max_length=max_length, stride=doc_stride,
                        return_overflowing_tokens=True, return_offsets_mapping=True, padding=False)
    offsets: list[np.ndarray] = []
    context_masks: list[np.ndarray] = []
    longest_question = 0
    for feature in range(len(encoded["input_ids"])):
        sequence_ids = np.array([-1 if sid is None else sid for sid in encoded.sequence_ids(feature)],
                                dtype=np.int64)
        feature_offsets = np.array(encoded["offset_mapping"][feature], dtype=np.int64).reshape(-1, 2)
        is_context = sequence_ids == 1
        feature_offsets[~is_context] = NOT_CONTEXT
        offsets.append(feature_offsets)
        context_masks.append(is_context)
        longest_question = max(longest_question, int((sequence_ids == 0).sum()))
    return encoded, offsets, context_masks, longest_question


def _label(example: SquadExample, offsets: np.ndarray, is_context: np.ndarray, input_ids) -> tuple[int, int]:
    """Token (start, end) of the first gold answer in this window; (cls, cls) when not in it."""
    cls_position = 0
    if not example.answers:
        return cls_position, cls_position
    answer = example.answers[0]
    answer_start, answer_end = answer.start, answer.start + len(answer.text)
    context_positions = np.flatnonzero(is_context)
    if len(context_positions) == 0:
        return cls_position, cls_position
    first, last = context_positions[0], context_positions[-1]
    if offsets[first, 0] > answer_start or offsets[last, 1] < answer_end:
        return cls_position, cls_position
    # First token whose span ends after the answer start; last token that starts before the answer end.
    span_starts, span_ends = offsets[first : last + 1, 0], offsets[first : last + 1, 1]
    start = first + int(np.argmax(span_ends > answer_start))
    end = first + int(len(span_starts) - 1 - np.argmax(span_starts[::-1] < answer_end))
    if end < start:
        return cls_position, cls_position
    return start, end
