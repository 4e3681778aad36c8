"""Text-to-text features for T5: windowed inputs with their targets (generated text is mapped back to the context by
qa_common.decoding.generated).

Pure functions: no model, no files. A window's input is ``question_prefix + question + context_prefix +``
a stretch of context tokens ``+ eos``; windows of a long context overlap by ``doc_stride`` tokens (the HF
``stride`` convention, as in ``qa_common.data.windows``), so an answer cut by one window boundary lies whole in
the next.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from qa_common.data.examples import SquadExample
from qa_common.decoding.generated import align_to_context, is_no_answer


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


# align_to_context and is_no_answer are qa_common.decoding.generated's (shared with mamba_qa), re-exported here.
__all__ = ["Seq2SeqFeatures", "align_to_context", "is_no_answer", "make_windows"]
