"""Prompts, solved examples (shots) and synthetic negatives of mamba_qa, as text: no tokenizer, no model, no files.

The prompt format, the shots and the stop rule are shared with the prompting study and live in
``qa_common.prompts``; this module adds the seed study's synthetic negatives.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from qa_common.data.examples import SquadExample
from qa_common.prompts import (  # noqa: F401  (mamba_qa's names for the shared prompt pieces)
    CONTEXT_FIELD,
    QUESTION_FIELD,
    SHOT_SEPARATOR,
    Shot,
    answer_from_generation,
    check_template,
    render_shot,
    shot_from_example,
    shot_pool,
    shots_for,
    split_template,
)


def make_random_question_negatives(examples: Sequence[SquadExample], ratio: float, seed: int) -> list[SquadExample]:
    """The seed study's synthetic negatives: round(``ratio`` x answerable examples) paragraphs of ``examples``, each
    asked a random question of another article (of another paragraph when there is one article only), with no
    answer. Answerable examples are taken in a random order (again from the start when ``ratio`` > 1). Ids get the
    suffix ``-random-question-N``. Deterministic for a given ``seed``.
    """
    if ratio < 0:
        raise ValueError(f"negatives_ratio must be at least 0, got {ratio}")
    answerable = [example for example in examples if example.answers]
    wanted = round(ratio * len(answerable))
    if wanted == 0:
        return []
    one_article = len({example.title for example in examples}) < 2
    if len({example.context for example in examples}) < 2:
        raise ValueError("synthetic negatives need questions of at least two paragraphs")
    generator = random.Random(seed)
    order = generator.sample(answerable, len(answerable))
    negatives = []
    for number in range(wanted):
        example = order[number % len(order)]
        while True:
            other = examples[generator.randrange(len(examples))]
            unrelated = other.context != example.context if one_article else other.title != example.title
            if unrelated:
                break
        negatives.append(SquadExample(id=f"{example.id}-random-question-{number}", question=other.question,
                                      context=example.context, answers=(), title=example.title))
    return negatives
