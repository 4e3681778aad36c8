"""k-shot prompts of generative readers as text: the template, solved examples (shots) drawn from training data
without giving the question away, the stop rule, and the answer a generation stands for. No model, no files.

A prompt is ``k`` solved examples followed by the question being asked::

    <shot context>\\n\\nQ: <shot question>\\nA: <shot answer>\\n\\n      (k times)
    <context>\\n\\nQ: <question>\\nA:

with the default template ``"{context}\\n\\nQ: {question}\\nA:"``; the model continues with `` <answer>\\n``,
or `` I don't know\\n`` when the context does not hold the answer. mamba_qa trains on these prompts; the
prompting study (``qa_common.jobs.prompt_eval``) asks any causal language model with them.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from qa_common.data.examples import SquadExample
from qa_common.decoding.generated import is_no_answer

DEFAULT_TEMPLATE = "{context}\n\nQ: {question}\nA:"
DEFAULT_NO_ANSWER_TEXT = "I don't know"

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


def answer_from_generation(generated: str, no_answer_text: str) -> str:
    """The answer a generation stands for: its text up to the first newline, stripped; "" for the no-answer text
    ("I don't know" means no answer)."""
    answer = generated.split("\n", 1)[0].strip()
    return "" if is_no_answer(answer, no_answer_text) else answer


def stop_token_ids(tokenizer) -> list[int]:
    """Tokens that end an answer: eos and every token whose text holds a newline (the answer stop rule)."""
    texts = tokenizer.batch_decode([[index] for index in range(len(tokenizer))])
    stops = {index for index, text in enumerate(texts) if "\n" in text}
    if tokenizer.eos_token_id is not None:
        stops.add(tokenizer.eos_token_id)
    return sorted(stops)
