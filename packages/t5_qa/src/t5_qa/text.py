"""Text-to-text features for T5: windowed inputs with their targets, and generated text mapped back to the context.

Pure functions: no model, no files. A window's input is ``question_prefix + question + context_prefix +``
a stretch of context tokens ``+ eos``; windows of a long context overlap by ``doc_stride`` tokens (the HF
``stride`` convention, as in ``qa_common.data.windows``), so an answer cut by one window boundary lies whole in
the next.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from qa_common.data.examples import SquadExample
from qa_common.scoring import normalize_answer


@dataclass
class Seq2SeqFeatures:
    """Windows of a list of examples.

    ``example_index[f]`` is the example window ``f`` came from; ``window_ids[f]`` the context tokens of the
    window (for constrained decoding); ``targets[f]`` the target text (the answer, or the no-answer text) when
    built with labels, else None.
    """

    input_ids: list[list[int]]
    window_ids: list[list[int]]
    example_index: list[int]
    targets: list[str] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


def make_windows(
    tokenizer,
    examples: Sequence[SquadExample],
    *,
    eos_token_id: int,
    max_length: int,
    doc_stride: int,
    max_question_length: int,
    question_prefix: str = "question: ",
    context_prefix: str = " context: ",
    no_answer_text: str | None = None,
) -> Seq2SeqFeatures:
    """Tokenise ``examples`` into overlapping windows; with ``no_answer_text`` each window gets a target: the
    first gold answer when it lies whole inside the window, else ``no_answer_text``."""
    prefixes = tokenizer([f"{question_prefix}{example.question.strip()}{context_prefix}".rstrip()
                          for example in examples], add_special_tokens=False)["input_ids"]
    contexts = tokenizer([example.context for example in examples], add_special_tokens=False,
                         return_offsets_mapping=True)
    features = Seq2SeqFeatures(input_ids=[], window_ids=[], example_index=[],
                               targets=[] if no_answer_text is not None else None)
    for index, example in enumerate(examples):
        prefix = prefixes[index][:max_question_length]
        context_ids, offsets = contexts["input_ids"][index], contexts["offset_mapping"][index]
        room = max_length - len(prefix) - 1  # one for eos
        if doc_stride >= room:
            raise ValueError(f"doc_stride ({doc_stride}) must be smaller than max_length ({max_length}) minus the "
                             f"question ({len(prefix)} tokens) and eos")
        start = 0
        while True:
            end = min(start + room, len(context_ids))
            window = list(context_ids[start:end])
            features.input_ids.append([*prefix, *window, eos_token_id])
            features.window_ids.append(window)
            features.example_index.append(index)
            if features.targets is not None:
                features.targets.append(_target(example, offsets, start, end, no_answer_text))
            if end >= len(context_ids):
                break
            start = end - doc_stride
    return features


def _target(example: SquadExample, offsets, start: int, end: int, no_answer_text: str) -> str:
    if not example.answers or start >= end:
        return no_answer_text
    answer = example.answers[0]
    window_start, window_end = offsets[start][0], offsets[end - 1][1]
    inside = window_start <= answer.start and answer.end <= window_end
    return answer.text if inside else no_answer_text


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
