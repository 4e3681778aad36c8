"""Word tokenisation with character offsets, the vocabulary, and the reader's windows.

A word reader sees words, not subwords: ``tokenize`` splits text into words and punctuation marks with their
character spans, so a predicted word span maps back to an exact substring of the context. Contexts longer
than a window are cut into overlapping windows of words (consecutive windows share ``doc_stride`` words, the
HF ``stride`` convention), each prefixed by the no-answer position 0, which is where the span pointer points
when the question has no answer in that window.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa_common.data.examples import SquadExample
from qa_common.data.windows import NOT_CONTEXT, ExtractiveFeatures

# Runs of letters/digits, or one other non-space character (punctuation, symbols). Hyphens and apostrophes
# are words of their own: SQuAD answers start and end at them ("third" of "third-most", "Tesla" of "Tesla's").
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)

PAD, UNK, NULL = "<pad>", "<unk>", "<null>"
SPECIAL_TOKENS = (PAD, UNK, NULL)
PAD_ID, UNK_ID, NULL_ID = 0, 1, 2
VOCABULARY_FILE = "vocabulary.json"


def tokenize(text: str) -> tuple[list[str], np.ndarray]:
    """Words of ``text`` and their (start, end) character offsets, an (n, 2) int64 array."""
    words, spans = [], []
    for match in _TOKEN.finditer(text):
        words.append(match.group())
        spans.append(match.span())
    return words, np.asarray(spans, dtype=np.int64).reshape(-1, 2)


def normalize(word: str) -> str:
    """The vocabulary key of a word: lower case."""
    return word.lower()


@dataclass
class Vocabulary:
    """Word to id; ids 0-2 are padding, unknown word and the no-answer position.

    It is also what the shared extractive pipeline asks of a tokenizer (``pad_token_id``, ``vocab_size``).
    """

    words: list[str]
    pad_token_id = PAD_ID

    def __post_init__(self) -> None:
        self.index = {word: position for position, word in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def ids(self, words: Iterable[str]) -> list[int]:
        return [self.index.get(normalize(word), UNK_ID) for word in words]

    @classmethod
    def build(cls, texts: Iterable[str], *, max_size: int, min_count: int = 1) -> Vocabulary:
        """The ``max_size`` most frequent normalised words of ``texts`` seen at least ``min_count`` times (ties
        broken alphabetically, so the same texts always give the same vocabulary)."""
        return cls.from_words((word for sentence in word_lists(texts) for word in sentence), max_size=max_size,
                              min_count=min_count)

    @classmethod
    def from_words(cls, words: Iterable[str], *, max_size: int, min_count: int = 1) -> Vocabulary:
        """As ``build``, from the normalised words of the texts."""
        counts = Counter(words)
        ranked = sorted((word for word, count in counts.items() if count >= min_count),
                        key=lambda word: (-counts[word], word))
        return cls(list(SPECIAL_TOKENS) + ranked[: max(0, max_size - len(SPECIAL_TOKENS))])

    def extended(self, words: Iterable[str]) -> Vocabulary:
        """This vocabulary followed by those of ``words`` (normalised) it lacks, in their order."""
        added = dict.fromkeys(normalize(word) for word in words)
        return Vocabulary(self.words + [word for word in added if word not in self.index])

    def save(self, directory: Path) -> None:
        (Path(directory) / VOCABULARY_FILE).write_text(json.dumps(self.words, ensure_ascii=False))

    @classmethod
    def load(cls, directory: Path) -> Vocabulary:
        path = Path(directory) / VOCABULARY_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{directory} lacks {VOCABULARY_FILE}")
        words = json.loads(path.read_text())
        if list(words[: len(SPECIAL_TOKENS)]) != list(SPECIAL_TOKENS):
            raise ValueError(f"{path}: not an lstm_qa vocabulary (it must start with {SPECIAL_TOKENS})")
        return cls(words)


def word_lists(texts: Iterable[str]) -> list[list[str]]:
    """The normalised words of each text."""
    return [[normalize(word) for word in tokenize(text)[0]] for text in texts]


def training_texts(examples: Sequence[SquadExample]) -> list[str]:
    """Each distinct context once, and every question: what the vocabulary and FastText learn from."""
    return list(dict.fromkeys(example.context for example in examples)) + [e.question for e in examples]


def make_word_windows(
    vocabulary: Vocabulary,
    examples: Sequence[SquadExample],
    *,
    max_length: int,
    doc_stride: int,
    max_question_length: int,
    with_labels: bool = False,
) -> ExtractiveFeatures:
    """Windows of context words for a word reader.

    Each feature's ``input_ids`` are [no-answer position] + up to ``max_length - 1`` context words, its
    ``extra_inputs["question_ids"]`` the question's first ``max_question_length`` words. Labels are word
    positions of the first gold answer (0 when the question has no answer or the answer is not wholly in the
    window).
    """
    window = max_length - 1
    if not 0 <= doc_stride < window:
        raise ValueError(f"doc_stride ({doc_stride}) must be at least 0 and smaller than max_length - 1 ({window})")
    input_ids: list[list[int]] = []
    question_ids: list[list[int]] = []
    offsets: list[np.ndarray] = []
    example_index: list[int] = []
    starts: list[int] = []
    ends: list[int] = []
    step = window - doc_stride
    for index, example in enumerate(examples):
        question_words = tokenize(example.question)[0][:max_question_length] or [UNK]
        question = vocabulary.ids(question_words)
        words, spans = tokenize(example.context)
        ids = vocabulary.ids(words)
        begin = 0
        while True:
            end = min(begin + window, len(words))
            input_ids.append([NULL_ID] + ids[begin:end])
            question_ids.append(question)
            offsets.append(np.concatenate([np.full((1, 2), NOT_CONTEXT, dtype=np.int64), spans[begin:end]]))
            example_index.append(index)
            if with_labels:
                start, stop = _word_label(example, spans, begin, end)
                starts.append(start)
                ends.append(stop)
            if end >= len(words):
                break
            begin += step
    return ExtractiveFeatures(
        input_ids=input_ids,
        token_type_ids=None,
        offsets=offsets,
        example_index=np.asarray(example_index, dtype=np.int64),
        start_positions=np.asarray(starts, dtype=np.int64) if with_labels else None,
        end_positions=np.asarray(ends, dtype=np.int64) if with_labels else None,
        extra_inputs={"question_ids": question_ids},
    )


def _word_label(example: SquadExample, spans: np.ndarray, begin: int, end: int) -> tuple[int, int]:
    """Window positions (1-based: 0 is no answer) of the words covering the first gold answer."""
    if not example.answers or end <= begin:
        return 0, 0
    answer = example.answers[0]
    window = spans[begin:end]
    if window[0, 0] > answer.start or window[-1, 1] < answer.end:
        return 0, 0
    # First word ending after the answer starts; last word starting before the answer ends.
    start = int(np.argmax(window[:, 1] > answer.start))
    stop = int(len(window) - 1 - np.argmax(window[::-1, 0] < answer.end))
    if stop < start:
        return 0, 0
    return start + 1, stop + 1
