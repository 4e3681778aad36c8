"""Windowing of long contexts into model-sized features for extractive readers with HF fast tokenizers.

Each (question, context) pair becomes one or more features of at most ``max_length`` tokens; consecutive
windows of a long context overlap by ``doc_stride`` tokens (the HF ``stride`` convention), so an answer cut by
one window boundary lies whole in the next. Context tokens keep their character offsets, which is how a
decoded token span maps back to an exact substring of the context.

SQuAD asks many questions of one paragraph (about 11 in validation), so the windows are built from each distinct
context tokenised once, each question tokenised once, and the pair template (special tokens and token types) read
off the tokenizer's own encoding of a pair; every call checks that against the tokenizer's pair encoding of a few
of its examples and falls back to encoding every pair when anything differs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from qa_common.data.examples import SquadExample

NOT_CONTEXT = -1

logger = logging.getLogger(__name__)


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
    return _make_windows(tokenizer, examples, max_length=max_length, doc_stride=doc_stride,
                         max_question_length=max_question_length, with_labels=with_labels,
                         encode=_encode_shared_contexts)


def _make_windows(
    tokenizer,
    examples: Sequence[SquadExample],
    *,
    max_length: int,
    doc_stride: int,
    max_question_length: int,
    with_labels: bool,
    encode: Callable,
) -> ExtractiveFeatures:
    """`make_windows` with the pair encoder as a parameter: ``_encode`` (every pair through the tokenizer, the
    reference) or ``_encode_shared_contexts`` (each context tokenised once), which give the same windows."""
    if doc_stride >= max_length - max_question_length - 3:
        raise ValueError(
            f"doc_stride ({doc_stride}) must be smaller than max_length ({max_length}) minus the question "
            f"budget ({max_question_length}) and special tokens"
        )
    questions = [example.question.lstrip() for example in examples]
    contexts = [example.context for example in examples]
    # Questions are cut to their budget only when one is over it (rare): the windows' own tokens say so, which
    # saves tokenising every question twice. A question too long to leave room for any context fails the
    # tokenizer; cut first then. One that leaves a window no more context tokens than doc_stride makes the Rust
    # tokenizer panic: pyo3's PanicException is a BaseException (a served question of 253 to 380 tokens at 384/128
    # would otherwise escape every `except Exception` and fail the request without a clear error).
    try:
        encoded, offsets, context_masks, longest_question = encode(tokenizer, questions, contexts, max_length,
                                                                  doc_stride)
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException:  # noqa: BLE001 - tokenizers' truncation error or panic for an over-long question
        longest_question = max_question_length + 1
    if longest_question > max_question_length:
        questions = _truncated_questions(tokenizer, questions, max_question_length)
        encoded, offsets, context_masks, _ = encode(tokenizer, questions, contexts, max_length, doc_stride)
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


# Fewest questions worth `_encode_shared_contexts`' self-check (a few pair encodings). On one SQuAD paragraph at
# max_length 384 it measured 1.01 ms against `_encode`'s 1.30 ms with 6 questions, 0.71 against 0.21 ms with one.
_MIN_SHARED_QUESTIONS = 6


class _QuestionTooLong(ValueError):
    """A question leaves a window no more context tokens than ``doc_stride``: the tokenizer would fail on it."""


@dataclass(frozen=True)
class _PairTemplate:
    """What the tokenizer's post-processor puts around a (question, context) pair: special token ids before the
    question, between the two and after the context, and every token's type id (``types`` False when the
    tokenizer returns no token_type_ids), as read off one real pair encoding."""

    prefix: list[int]
    middle: list[int]
    suffix: list[int]
    types: bool
    prefix_types: list[int]
    question_type: int
    middle_types: list[int]
    context_type: int
    suffix_types: list[int]


def _pair_template(encoded, feature: int) -> _PairTemplate | None:
    """The template of window ``feature`` of a reference pair encoding, None when its layout is not special
    tokens, question, special tokens, context, special tokens (or a sequence is empty, which hides the layout)."""
    sequence_ids = encoded.sequence_ids(feature)
    question = [i for i, sid in enumerate(sequence_ids) if sid == 0]
    context = [i for i, sid in enumerate(sequence_ids) if sid == 1]
    if not question or not context or len(question) + len(context) + sequence_ids.count(None) != len(sequence_ids):
        return None
    q_start, q_stop, c_start, c_stop = question[0], question[-1] + 1, context[0], context[-1] + 1
    if q_stop - q_start != len(question) or c_stop - c_start != len(context) or q_stop > c_start:
        return None
    ids = encoded["input_ids"][feature]
    all_types = encoded.get("token_type_ids")
    types = list(all_types[feature]) if all_types is not None else [0] * len(ids)
    if len(set(types[q_start:q_stop])) != 1 or len(set(types[c_start:c_stop])) != 1:
        return None
    return _PairTemplate(
        prefix=list(ids[:q_start]), middle=list(ids[q_stop:c_start]), suffix=list(ids[c_stop:]),
        types=all_types is not None, prefix_types=types[:q_start], question_type=types[q_start],
        middle_types=types[q_stop:c_start], context_type=types[c_start], suffix_types=types[c_stop:])


def _context_spans(n_question: int, n_context: int, n_special: int, max_length: int,
                   doc_stride: int) -> list[tuple[int, int]]:
    """(start, stop) context tokens of each window of a pair, as the Rust tokenizers truncate ``only_second``
    with overflow: the whole context when the pair fits ``max_length``, else windows of ``budget`` context tokens
    (what the question and special tokens leave) starting every ``budget - doc_stride`` tokens, up to the first
    that reaches the end of the context. The tokenizer fails when ``budget <= 0`` and panics (an exception no
    ``except Exception`` catches) when ``budget <= doc_stride``; both are `_QuestionTooLong` here."""
    if n_question + n_context + n_special <= max_length:
        return [(0, n_context)]
    budget = max_length - n_question - n_special
    if budget <= doc_stride:
        raise _QuestionTooLong(f"a question of {n_question} tokens leaves {budget} context tokens a window")
    spans = []
    start = 0
    while True:
        stop = min(start + budget, n_context)
        spans.append((start, stop))
        if stop == n_context:
            return spans
        start += budget - doc_stride


def _encode_shared_contexts(tokenizer, questions: list[str], contexts: list[str], max_length: int,
                            doc_stride: int):
    """What `_encode` returns, with each distinct context and each question tokenised once.

    `_encode` gives the tokenizer every (question, context) pair, so a context is tokenised once per question
    (about 11 times in SQuAD validation) and every window's tokens, offsets and sequence ids go through Python
    lists. Here the windows are assembled from the single-sequence tokens, the pair template read off the
    tokenizer's own pair encoding of an example, and the spans of `_context_spans`. The reference encoding of a
    sample (the first example, the first with both a question and a context token, the first that overflows, the
    one with the most windows, the longest question) must match exactly, or every pair goes through `_encode`: a
    tokenizer whose pair encoding is not its two single encodings plus a fixed template (or whose truncation
    differs) then still gets the right windows. So do examples of which none has both a question and a context
    token (no pair shows the template), slow tokenizers and tokenizers that truncate on the left.

    That check costs a few pair encodings, so batches that share too little go through `_encode` directly: under
    `_MIN_SHARED_QUESTIONS` questions, or fewer than two questions a context (one served question, a batch of
    distinct paragraphs), where this path measured up to 3x slower rather than faster.
    """
    context_index: dict[str, int] = {}
    example_context = [context_index.setdefault(context, len(context_index)) for context in contexts]
    if len(questions) < max(_MIN_SHARED_QUESTIONS, 2 * len(context_index)) or doc_stride < 0 \
            or not getattr(tokenizer, "is_fast", False) or getattr(tokenizer, "truncation_side", "right") != "right":
        return _encode(tokenizer, questions, contexts, max_length, doc_stride)
    # verbose=False: these untruncated single sequences may be longer than the model, which is not an error here.
    tokenised = tokenizer(list(context_index), add_special_tokens=False, return_offsets_mapping=True,
                          return_attention_mask=False, return_token_type_ids=False, verbose=False)
    context_ids = tokenised["input_ids"]
    context_offsets = [np.asarray(offsets, dtype=np.int64).reshape(-1, 2) for offsets in tokenised["offset_mapping"]]
    question_ids = tokenizer(questions, add_special_tokens=False, return_attention_mask=False,
                             return_token_type_ids=False, verbose=False)["input_ids"]
    n_special = tokenizer.num_special_tokens_to_add(pair=True)
    spans = [_context_spans(len(question), len(context_ids[context]), n_special, max_length, doc_stride)
             for question, context in zip(question_ids, example_context, strict=True)]

    # The template is read off a pair with both sequences non-empty (else where one ends is unknown).
    probe = next((i for i, (question, context) in enumerate(zip(question_ids, example_context, strict=True))
                  if question and context_ids[context]), None)
    if probe is None:
        return _encode(tokenizer, questions, contexts, max_length, doc_stride)
    sample = sorted({0, probe, next((i for i, windows in enumerate(spans) if len(windows) > 1), 0),
                     max(range(len(spans)), key=lambda i: len(spans[i])),
                     max(range(len(question_ids)), key=lambda i: len(question_ids[i]))})
    reference = _encode(tokenizer, [questions[i] for i in sample], [contexts[i] for i in sample], max_length,
                        doc_stride)
    template = _pair_template(reference[0], list(reference[0]["overflow_to_sample_mapping"]).index(sample.index(probe)))
    if template is None or len(template.prefix) + len(template.middle) + len(template.suffix) != n_special:
        _warn_once(tokenizer, "pair encoding is not special tokens around the question and the context")
        return _encode(tokenizer, questions, contexts, max_length, doc_stride)
    encoded = _assemble(template, question_ids, example_context, context_ids, context_offsets, spans)
    if not _same_windows(encoded, reference, sample):
        _warn_once(tokenizer, "pair encoding differs from the windows built from shared contexts")
        return _encode(tokenizer, questions, contexts, max_length, doc_stride)
    return encoded


_warned: set[tuple[str, str]] = set()


def _warn_once(tokenizer, reason: str) -> None:
    """Log a fallback to every pair once per tokenizer class and reason (a server would otherwise log it on every
    request), later ones at debug level."""
    key = (type(tokenizer).__name__, reason)
    level = logging.DEBUG if key in _warned else logging.WARNING
    _warned.add(key)
    logger.log(level, "make_windows: %s's %s; encoding every pair (slower, same windows)%s", *key,
               _BROKEN_OVERFLOW.get(_tokenizers_version(), ""))


# tokenizers releases whose overflow windows stop short of the end of a long context: pair encoding (the fallback)
# then loses context, and the self-check fails on any example with more than one window.
_BROKEN_OVERFLOW = {version: f"; tokenizers {version} cuts overflow windows short (huggingface/tokenizers#2091): "
                             "install tokenizers 0.23.3 or later, or 0.22" for version in ("0.23.1", "0.23.2")}


def _tokenizers_version() -> str:
    try:
        import tokenizers
    except ImportError:
        return ""
    return str(getattr(tokenizers, "__version__", ""))


def _assemble(template: _PairTemplate, question_ids: list[list[int]], example_context: list[int],
              context_ids: list[list[int]], context_offsets: list[np.ndarray],
              spans: list[list[tuple[int, int]]]):
    """The windows of every example, in `_encode`'s layout (a dict in place of the BatchEncoding)."""
    input_ids: list[list[int]] = []
    token_type_ids: list[list[int]] = []
    offsets: list[np.ndarray] = []
    context_masks: list[np.ndarray] = []
    sample_mapping: list[int] = []
    for example, (question, windows) in enumerate(zip(question_ids, spans, strict=True)):
        head = template.prefix + question + template.middle
        head_types = template.prefix_types + [template.question_type] * len(question) + template.middle_types
        ids, context = context_ids[example_context[example]], context_offsets[example_context[example]]
        first = len(head)
        for start, stop in windows:
            length = first + stop - start + len(template.suffix)
            input_ids.append(head + ids[start:stop] + template.suffix)
            if template.types:
                token_type_ids.append(head_types + [template.context_type] * (stop - start) + template.suffix_types)
            feature_offsets = np.full((length, 2), NOT_CONTEXT, dtype=np.int64)
            feature_offsets[first : first + stop - start] = context[start:stop]
            is_context = np.zeros(length, dtype=bool)
            is_context[first : first + stop - start] = True
            offsets.append(feature_offsets)
            context_masks.append(is_context)
            sample_mapping.append(example)
    encoded = {"input_ids": input_ids, "overflow_to_sample_mapping": sample_mapping}
    if template.types:
        encoded["token_type_ids"] = token_type_ids
    return encoded, offsets, context_masks, max((len(question) for question in question_ids), default=0)


def _same_windows(encoded, reference, sample: list[int]) -> bool:
    """Whether the windows of the examples ``sample`` in ``encoded`` (all examples) are exactly ``reference``
    (`_encode` of those examples alone)."""
    ids, offsets, masks, _ = encoded
    reference_encoded, reference_offsets, reference_masks, _ = reference
    mapping = np.asarray(ids["overflow_to_sample_mapping"])
    features = [feature for example in sample for feature in np.flatnonzero(mapping == example)]
    reference_mapping = [sample[i] for i in reference_encoded["overflow_to_sample_mapping"]]
    if [int(mapping[feature]) for feature in features] != reference_mapping:
        return False
    types, reference_types = ids.get("token_type_ids"), reference_encoded.get("token_type_ids")
    if (types is None) != (reference_types is None):
        return False
    for position, feature in enumerate(features):
        if ids["input_ids"][feature] != list(reference_encoded["input_ids"][position]):
            return False
        if types is not None and types[feature] != list(reference_types[position]):
            return False
        if not (np.array_equal(offsets[feature], reference_offsets[position])
                and np.array_equal(masks[feature], reference_masks[position])):
            return False
    return True


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
