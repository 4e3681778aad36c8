"""Synthetic unanswerable questions for training, made from answerable ones.

- `make_synthetic_negatives`: a question paired with another paragraph of its own article (easy negatives).
- `make_perturbed_negatives`: the question edited the way SQuAD 2.0's authors made unanswerable questions
  (entity or number swap, antonym, negation), with its own paragraph (hard negatives).

Training on answerable-only data (SQuAD 1.1, extra articles) teaches a reader that every question has an
answer and shifts its null scores; pairing some of those questions with a sibling paragraph that does not
contain any of their answers keeps the answerable/unanswerable balance of SQuAD 2.0. Same-article
paragraphs keep the topic, so the negative is not trivially off-topic.
"""

from __future__ import annotations

import random
import re
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


# Word pairs whose swap turns a question about the paragraph into one it does not answer (the "antonym"
# edits of SQuAD 2.0's crowdworkers). Both directions are used.
_ANTONYMS = {
    "first": "last", "before": "after", "earliest": "latest", "largest": "smallest", "biggest": "smallest",
    "highest": "lowest", "most": "least", "more": "fewer", "increase": "decrease", "increased": "decreased",
    "maximum": "minimum", "north": "south", "east": "west", "northern": "southern", "eastern": "western",
    "officially": "unofficially", "legal": "illegal", "won": "lost", "win": "lose", "begin": "end",
    "began": "ended", "start": "end", "started": "ended", "above": "below", "inside": "outside",
    "major": "minor", "public": "private", "positive": "negative", "longest": "shortest", "oldest": "newest",
    "older": "younger", "early": "late", "rise": "fall", "accepted": "rejected", "allowed": "banned",
    "include": "exclude", "included": "excluded", "strongest": "weakest", "best": "worst", "same": "different",
}
_ANTONYMS.update({value: key for key, value in list(_ANTONYMS.items()) if value not in _ANTONYMS})
_WH_AUXILIARY = re.compile(
    r"^(?:what|who|which|where|when|how many|how much)\s+(?:\w+\s+)?(is|was|are|were|can|could|will|would)\b", re.I
)
_YEAR = re.compile(r"\b(?:1\d{3}|20\d{2})\b")
_NUMBER = re.compile(r"\b\d[\d,.]*\d\b|\b\d\b")
_NAME = re.compile(r"\b[A-Z][\w'’-]*(?:\s+(?:of|the|de|von|van)?\s*[A-Z][\w'’-]*)*")



def _words(text: str) -> set[str]:
    return set(re.findall(r"[\w'’-]+", text.lower()))


def _swap_antonym(question: str, context: str, generator: random.Random) -> str | None:
    context_words = _words(context)
    found = [match for match in re.finditer(r"[A-Za-z]+", question) if match.group().lower() in _ANTONYMS]
    generator.shuffle(found)
    for match in found:
        replacement = _ANTONYMS[match.group().lower()]
        if replacement in context_words:
            continue  # the paragraph may answer the swapped question too
        if match.group()[0].isupper():
            replacement = replacement.capitalize()
        return question[: match.start()] + replacement + question[match.end():]
    return None


def _negate(question: str, context: str, generator: random.Random) -> str | None:
    """"What is the ..." becomes "What is not the ...": only right after the question word, where it reads."""
    del generator
    if re.search(r"\bnot\b|n't\b|\bnever\b", question + " " + context, re.I):
        return None  # a paragraph with negations may well answer the negated question
    match = _WH_AUXILIARY.search(question)
    if not match:
        return None
    return question[: match.end()] + " not" + question[match.end():]


def _kind(text: str) -> str:
    return "year" if _YEAR.fullmatch(text) else "number" if text[0].isdigit() else "name"


def _mentions(context: str) -> list[str]:
    """Names (capitalised phrases not opening a sentence) and numbers of a paragraph."""
    names = [match.group() for match in _NAME.finditer(context)
             if match.start() > 0 and context[max(0, match.start() - 2) : match.start()].strip() not in (".", "")]
    return names + _NUMBER.findall(context)


def _swap_entity(question: str, context: str, pools: list[list[str]], generator: random.Random) -> str | None:
    """Replace a name or number of the question that the paragraph mentions by one it does not mention.

    ``pools`` are candidate replacements, nearest first (the article's own mentions, then all); a replacement
    has the same kind (name, year, other number) as what it replaces.
    """
    spans = list(_NUMBER.finditer(question)) + [match for match in _NAME.finditer(question) if match.start() > 0]
    spans = [match for match in spans if match.group() in context]
    generator.shuffle(spans)
    for match in spans:
        kind = _kind(match.group())
        for pool in pools:
            candidates = [text for text in pool if _kind(text) == kind and text not in context
                          and text.lower() not in question.lower()]
            if candidates:
                return question[: match.start()] + generator.choice(candidates) + question[match.end():]
    return None


def make_perturbed_negatives(examples: Sequence[SquadExample], ratio: float, seed: int) -> list[SquadExample]:
    """Unanswerable twins of about ``ratio`` x (answerable examples) questions, made by editing the question.

    SQuAD 2.0's unanswerable questions were written by editing answerable ones so that the paragraph no
    longer answers them while still looking relevant: swapping an entity or number for one the paragraph
    does not mention, swapping a word for its antonym, inserting a negation. This makes the same edits by
    rule on answerable training questions (the context stays the same, the answers are dropped), which gives
    a reader hard negatives instead of off-topic ones. Each question gets one edit, chosen at random among
    those that apply; questions no edit applies to are passed over. Ids get the suffix ``-perturbed``.
    Deterministic for a given ``seed``.
    """
    if ratio <= 0:
        return []
    by_title: dict[str, list[str]] = defaultdict(list)
    seen: set[tuple[str, str]] = set()
    for example in examples:
        if (example.title, example.context) not in seen:  # one paragraph may appear under two titles
            seen.add((example.title, example.context))
            by_title[example.title].extend(_mentions(example.context))
    everything = sorted({text for mentions in by_title.values() for text in mentions})
    by_title = {title: sorted(set(mentions)) for title, mentions in by_title.items()}
    answerable = [example for example in examples if example.answers]
    generator = random.Random(seed)
    wanted = min(len(answerable), round(ratio * len(answerable)))
    negatives: list[SquadExample] = []
    for example in generator.sample(answerable, len(answerable)):
        if len(negatives) == wanted:
            break
        pools = [by_title[example.title], everything]
        edits = ["entity", "antonym", "negation"]
        generator.shuffle(edits)
        for edit in edits:
            if edit == "entity":
                question = _swap_entity(example.question, example.context, pools, generator)
            elif edit == "antonym":
                question = _swap_antonym(example.question, example.context, generator)
            else:
                question = _negate(example.question, example.context, generator)
            if question and question != example.question:
                negatives.append(SquadExample(id=f"{example.id}-perturbed", question=question,
                                              context=example.context, answers=(), title=example.title))
                break
    return negatives
