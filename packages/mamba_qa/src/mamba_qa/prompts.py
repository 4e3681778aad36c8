"""Prompts, solved examples (shots) and synthetic negatives of mamba_qa, as text: no tokenizer, no model, no files.

A prompt is ``k`` solved examples followed by the question being asked::

    <shot context>\\n\\nQ: <shot question>\\nA: <shot answer>\\n\\n      (k times)
    <context>\\n\\nQ: <question>\\nA:

with the default template ``"{context}\\n\\nQ: {question}\\nA:"``; the model continues with `` <answer>\\n`` and eos,
or `` I don't know\\n`` when the context does not hold the answer.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from qa_common.data.examples import SquadExample
from qa_common.decoding.generated import is_no_answer

CONTEXT_FIELD, QUESTION_FIELD = "{context}", "{question}"
SHOT_SEPARATOR = "\n\n"


def check_template(template: str) -> None:
    """Raise ValueError unless ``template`` holds ``{context}`` and ``{question}`` once each and no other field."""
    for field in (CONTEXT_FIELD, QUESTION_FIELD):
        if template.count(field) != 1:
            raise ValueError(f"prompt_template must contain {field} exactly once: {template!r}")
    others = set(re.findall(r"\{[^{}]*\}", template)) - {CONTEXT_FIELD, QUESTION_FIELD}
    if others:
        raise ValueError(f"prompt_template has unknown field(s) {', '.join(sorted(others))}; "
                         f"only {CONTEXT_FIELD} and {QUESTION_FIELD} are filled in")


def split_template(template: str, question: str) -> tuple[str, str]:
    """The prompt text before and after the context, with the question filled in (the context is windowed)."""
    check_template(template)
    before, after = template.split(CONTEXT_FIELD)
    return before.replace(QUESTION_FIELD, question), after.replace(QUESTION_FIELD, question)


@dataclass(frozen=True)
class Shot:
    """A solved example shown in the prompt: its answer is the gold answer or the no-answer text."""

    question: str
    context: str
    answer: str
    question_id: str = ""


def render_shot(template: str, shot: Shot) -> str:
    """``template`` filled with the shot, its answer after a space, and a blank line."""
    before, after = split_template(template, shot.question.strip())
    return f"{before}{shot.context}{after} {shot.answer}{SHOT_SEPARATOR}"


def shot_from_example(example: SquadExample, no_answer_text: str) -> Shot:
    answer = example.answers[0].text if example.answers else no_answer_text
    return Shot(question=example.question.strip(), context=example.context, answer=answer, question_id=example.id)


def shot_pool(
    examples: Sequence[SquadExample], size: int, *, seed: int, no_answer_text: str, fits=lambda context: True
) -> list[Shot]:
    """``size`` shots of distinct paragraphs of ``examples`` whose context ``fits``, chosen at random (``seed``).

    One question is drawn per paragraph; paragraphs are distinct so that leaving out the paragraph of the question
    being asked removes at most one shot. Raises ValueError when too few paragraphs fit.
    """
    if size <= 0:
        return []
    by_context: dict[str, list[SquadExample]] = {}
    for example in examples:
        by_context.setdefault(example.context, []).append(example)
    generator = random.Random(seed)
    contexts = list(by_context)
    generator.shuffle(contexts)
    pool = []
    for context in contexts:
        if len(pool) == size:
            break
        if fits(context):
            pool.append(shot_from_example(generator.choice(by_context[context]), no_answer_text))
    if len(pool) < size:
        raise ValueError(f"a pool of {size} shots needs {size} training paragraphs that fit the shot length limit; "
                         f"found {len(pool)} of {len(contexts)}: raise max_shot_context_tokens or lower shots")
    return pool


def shots_for(example: SquadExample, pool: Sequence[Shot], k: int) -> list[Shot]:
    """The first ``k`` shots of ``pool`` that do not give away ``example``: never its own question (by id or by
    text) and never its paragraph. Raises ValueError when fewer than ``k`` remain."""
    if k <= 0:
        return []
    question = " ".join(example.question.lower().split())
    chosen = [shot for shot in pool
              if shot.question_id != example.id and shot.context != example.context
              and " ".join(shot.question.lower().split()) != question][:k]
    if len(chosen) < k:
        raise ValueError(f"question {example.id!r}: {k} shots wanted but the shot pool holds only {len(chosen)} "
                         "that are not this question or its paragraph (was the model prepared with training data?)")
    return chosen


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


def answer_from_generation(generated: str, no_answer_text: str) -> str:
    """The answer a generation stands for: its text up to the first newline, stripped; "" for the no-answer text
    ("I don't know" means no answer)."""
    answer = generated.split("\n", 1)[0].strip()
    return "" if is_no_answer(answer, no_answer_text) else answer
