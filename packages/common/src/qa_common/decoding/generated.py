"""Answers of generative readers (T5, Mamba): generated text mapped back to the context, and one prediction per
question from the answers of its windows.

Pure functions: no model, no files, no logging. A generative reader writes an answer in its vocabulary's spelling
and scores it with its own probabilities; SQuAD answers are context substrings with a no-answer probability.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from qa_common.adapter import RawPrediction
from qa_common.data.examples import SquadExample
from qa_common.scoring import normalize_answer


def _compact(text: str) -> tuple[str, list[int]]:
    """Lower-cased letters and digits of ``text`` without accents, and each one's character index in ``text``."""
    characters: list[str] = []
    positions: list[int] = []
    for position, character in enumerate(text):
        for piece in unicodedata.normalize("NFKD", character).lower():
            if piece.isalnum() and not unicodedata.combining(piece):
                characters.append(piece)
                positions.append(position)
    return "".join(characters), positions


def _at_word_edges(context: str, start: int, end: int) -> bool:
    before = start == 0 or not context[start - 1].isalnum() or not context[start].isalnum()
    after = end == len(context) or not context[end].isalnum() or not context[end - 1].isalnum()
    return before and after


def _extend(context: str, edge: int, generated: str, direction: int) -> int:
    """Move a span edge over the punctuation (quotes, brackets) that ``generated`` has at that end too."""
    stripped = generated.strip()
    edge_marks = re.match(r"[^\w\s]*", stripped if direction < 0 else stripped[::-1]).group()
    for mark in edge_marks:  # nearest the words first
        inside = edge - 1 if direction < 0 else edge
        if not 0 <= inside < len(context) or context[inside] != mark:
            break
        edge += direction
    return edge


def align_to_context(generated: str, context: str) -> str:
    """The substring of ``context`` that ``generated`` stands for ("" when ``generated`` has no letter or digit).

    A decoder writes the answer in its vocabulary's spelling (lower-cased, accents dropped, spaces around
    punctuation with a WordPiece vocabulary); SQuAD answers are context substrings, so the text is matched
    against the context on letters and digits alone, preferring a match that starts and ends at word edges,
    then one spelt exactly as generated, then the first.
    Text that is nowhere in the context becomes the span of context words with the best F1 against it.
    """
    wanted, _ = _compact(generated)
    if not wanted:
        return ""
    compact_context, positions = _compact(context)
    matches = []
    found = compact_context.find(wanted)
    while found >= 0:
        start, end = positions[found], positions[found + len(wanted) - 1] + 1
        matches.append((not _at_word_edges(context, start, end), context[start:end] != generated, start, end))
        found = compact_context.find(wanted, found + 1)
    if matches:
        *_, start, end = min(matches)
        return context[_extend(context, start, generated, -1) : _extend(context, end, generated, 1)]
    return _best_overlapping_span(generated, context)


_WORD = re.compile(r"\S+")


def _best_overlapping_span(generated: str, context: str) -> str:
    """The span of whitespace-separated context words with the best SQuAD F1 against ``generated`` (on ties
    the one of fewest words, then the first; the first word when no word is shared)."""
    words = list(_WORD.finditer(context))
    if not words:
        return ""
    wanted = normalize_answer(generated).split()
    longest = len(wanted) + 2
    best, best_key = (0, 0), (0.0, 0)
    wanted_counts: dict[str, int] = {}
    for token in wanted:
        wanted_counts[token] = wanted_counts.get(token, 0) + 1
    normalised = [normalize_answer(word.group()).split() for word in words]
    for first in range(len(words)):
        tokens: list[str] = []
        for last in range(first, min(len(words), first + longest)):
            tokens.extend(normalised[last])
            common = sum(min(tokens.count(token), count) for token, count in wanted_counts.items())
            if not common:
                continue
            key = (2 * common / (len(tokens) + len(wanted)), first - last)  # F1, then fewer words
            if key > best_key:
                best, best_key = (first, last), key
    return context[words[best[0]].start() : words[best[1]].end()]


def is_no_answer(generated: str, no_answer_text: str) -> bool:
    """True when the generated text is the no-answer target (compared as SQuAD normalises answers)."""
    return normalize_answer(generated) == normalize_answer(no_answer_text)


@dataclass(frozen=True)
class WindowAnswer:
    """What a generative reader produced for one window of one question.

    Attributes:
        example_index: Index of the question in the list being predicted.
        text: The answer mapped back to the context ("" when the window produced no letter or digit).
        log_probability: The model's log-probability of that answer (per token or whole sequence: the reader
            chooses, the same for both fields).
        no_answer_log_probability: The model's log-probability of its no-answer text in this window.
    """

    example_index: int
    text: str
    log_probability: float
    no_answer_log_probability: float


def combine_window_answers(
    examples: Sequence[SquadExample], windows: Sequence[WindowAnswer], *, n_best: int = 5
) -> dict[str, RawPrediction]:
    """One raw prediction per question from the answers of all its windows.

    The answer is the window answer with the highest probability (never just the last window's). The no-answer
    probability is p_null / (p_null + p_answer): p_answer that best answer's probability, p_null the no-answer
    text's probability in the window most sure there is an answer (the lowest no-answer probability of the
    question's windows), so a question is answerable when any window is sure of it. ``score`` is the best
    answer's probability, ``n_best`` the next distinct answers. A question none of whose windows produced a
    letter or digit gets the first word of its context with probability 0 (no-answer probability 1), so every
    prediction still names a context substring.

    Args:
        examples: The questions, in the order ``WindowAnswer.example_index`` refers to.
        windows: One entry per window; every question needs at least one.
        n_best: How many runner-up answers to keep.

    Returns:
        ``{question id: RawPrediction}`` for every question of ``examples``.
    """
    candidates: dict[int, list[tuple[float, str]]] = {}
    null_log_probability: dict[int, float] = {}
    for window in windows:
        index = window.example_index
        null_log_probability[index] = min(null_log_probability.get(index, math.inf), window.no_answer_log_probability)
        if window.text:
            candidates.setdefault(index, []).append((window.log_probability, window.text))
    predictions: dict[str, RawPrediction] = {}
    for index, example in enumerate(examples):
        if index not in null_log_probability:
            raise ValueError(f"question {example.id!r} has no window answer")
        ranked: dict[str, float] = {}
        for log_probability, text in sorted(candidates.get(index, []), reverse=True):
            ranked.setdefault(text, log_probability)
        if not ranked:
            words = example.context.split()
            ranked = {words[0] if words else "": -math.inf}
        (best, best_log_probability), *rest = ranked.items()
        null = null_log_probability[index]
        no_answer_probability = (1.0 / (1.0 + math.exp(min(best_log_probability - null, 700.0)))
                                 if best_log_probability > -math.inf else 1.0)
        predictions[example.id] = RawPrediction(
            text=best, no_answer_probability=no_answer_probability, score=math.exp(best_log_probability),
            n_best=tuple((text, math.exp(log_probability)) for text, log_probability in rest[:n_best]))
    return predictions
