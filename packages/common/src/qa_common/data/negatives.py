"""Synthetic unanswerable questions: a question paired with another paragraph of its own article.

Training on answerable-only data (SQuAD 1.1, extra articles) teaches a reader that every question has an
answer and shifts its null scores; pairing some of those questions with a sibling paragraph that does not
contain any of their answers keeps the answerable/unanswerable balance of SQuAD 2.0. Same-article
paragraphs keep the topic, so the negative is not trivially off-topic.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

from qa_common.data.examples import SquadExample
from qa_common.scoring import normalize_answer


def make_synthetic_negatives(examples: Sequence[SquadExample], ratio: float, seed: int) -> list[SquadExample]:
    """Unanswerable copies of about ``ratio`` x (answerable examples) questions, each with another context.

    A question is paired with a different paragraph of the same article (``title``) in which none of its
    normalised gold answers occurs; questions with no such paragraph are passed over. Ids get the suffix
    ``-negative``. Deterministic for a given ``seed``.
    """
    if ratio <= 0:
        return []
    contexts_by_title: dict[str, list[str]] = defaultdict(list)
    for example in examples:
        contexts = contexts_by_title[example.title]
        if example.context not in contexts:
            contexts.append(example.context)
    answerable = [example for example in examples if example.answers]
    generator = random.Random(seed)
    wanted = min(len(answerable), round(ratio * len(answerable)))
    negatives = []
    for example in generator.sample(answerable, len(answerable)):
        if len(negatives) == wanted:
            break
        answers = {normalize_answer(answer.text) for answer in example.answers}
        candidates = [
            context for context in contexts_by_title[example.title]
            if context != example.context and not any(answer and answer in normalize_answer(context)
                                                      for answer in answers)
        ]
        if candidates:
            negatives.append(SquadExample(id=f"{example.id}-negative", question=example.question,
                                          context=generator.choice(candidates), answers=(), title=example.title))
    return negatives
