"""The in-memory SQuAD example: one question with its context and gold answers.

Every reader (official JSON, JSONL, Hugging Face hub) produces these, and everything downstream
(windowing, training, scoring) consumes them, so the file layout never leaks past `qa_common.data`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    """One gold answer span.

    Attributes:
        text: The answer text exactly as it appears in the context.
        start: Character offset of `text` in the context, so `context[start:start + len(text)] == text`.
    """

    text: str
    start: int

    @property
    def end(self) -> int:
        """Character offset one past the last character of the answer in the context."""
        return self.start + len(self.text)


@dataclass(frozen=True)
class SquadExample:
    """One SQuAD question.

    Attributes:
        id: The question id, unique within a data set.
        question: The question text.
        context: The paragraph the answer must be found in.
        answers: All gold answers as given by the annotators (duplicates kept, as in the official data,
            because scoring takes the maximum over them). An empty tuple means the question is unanswerable.
        title: The title of the article the paragraph comes from ("" when unknown); used to split by article.
    """

    id: str
    question: str
    context: str
    answers: tuple[Answer, ...]
    title: str = ""

    @property
    def is_impossible(self) -> bool:
        """True when the question has no answer in its context (SQuAD 2.0 unanswerable question)."""
        return not self.answers
