"""The typed config of mamba_qa and its presets: the seed study's Mamba SFT, LoRA and prompting are configuration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# LoRA can only adapt layers that transformers' Mamba calls as modules: it reads dt_proj.weight directly on every
# path, so an adapter there would never take part; peft refuses out_proj and conv1d of Mamba models (the fused
# training kernel reads their weights directly); embeddings and lm_head are one tied matrix, which merging
# adapters on either would change for both.
LORA_TARGETS = ("in_proj", "x_proj")


@dataclass
class MambaQAConfig:
    """Which Mamba to fine-tune, how to prompt it, what to train on, and which code path runs it.

    ``model_name`` is a hub name (``state-spaces/mamba-130m-hf``, any transformers Mamba checkpoint) or a local
    checkpoint directory; ``tokenizer_name`` defaults to it (``tiny-bpe``: the small byte-level BPE this package
    ships, GPT-NeoX special tokens, usable offline). With ``from_pretrained`` false the model is built with random
    weights from the size fields below (the tiny presets); ``vocab_size`` then sets its embedding rows (0: the
    tokenizer's size; Mamba-130M has 50,280 rows for GPT-NeoX's 50,277 tokens, so a random model with the tiny
    tokenizer is Mamba-130M-sized, output layer included, with ``vocab_size`` 50280).

    The prompt of a window is ``shots`` solved examples, then ``prompt_template`` filled with the context window
    and the question; the model writes `` <answer>``, a newline and eos, or `` <no_answer_text>`` when the
    window does not hold the answer. Solved examples are ``prompt_template`` + `` <answer>`` and a blank line,
    drawn from the training data (never the question being asked or its paragraph), with contexts of at most
    ``max_shot_context_tokens`` tokens. Contexts longer than ``max_length`` tokens (shots and question included)
    are cut into windows that overlap by ``doc_stride`` tokens.

    Generation (greedy) stops at the first newline or eos, or after ``max_answer_tokens``; with
    ``constrain_to_context`` only tokens of the window may be written, and the answer may not be the no-answer
    text itself. The no-answer probability compares the model's probability of writing ``no_answer_text`` with
    that of its answer, per token with ``score_per_token``.

    ``negatives_ratio``: about that many synthetic unanswerable examples per answerable training example, each a
    random question of another article asked of the example's paragraph, with target ``no_answer_text`` (the seed
    study's balancing). ``sampling_seed`` fixes the shots and the negatives.

    ``variant``: "full" fine-tunes every weight; "lora" trains LoRA adapters (``lora_*``; targets among
    ``LORA_TARGETS``) on a frozen base and ``lora_merge`` merges them into the base when saving.

    ``model_type``: the transformers model type the reader runs: "mamba", or any other causal LM ("gpt2",
    "gpt_neox", ...; the seed study's peft-gpt2 is ``gpt2-lora``), whose checkpoints load through
    ``AutoModelForCausalLM`` and whose random models take ``hidden_size``, ``num_hidden_layers`` and
    ``num_attention_heads`` (0: the architecture's default). Mamba-only settings (``state_size``, ``expand``,
    ``conv_kernel``, ``kernels``, the LoRA target rule) do not apply to the others.

    ``kernels``: "auto" runs the fused CUDA kernels of mamba-ssm and causal-conv1d when the model is on a CUDA
    device and both are installed, else the PyTorch reference path; "fused" requires them; "reference" never
    uses them.
    """

    model_name: str = "state-spaces/mamba-130m-hf"
    model_type: str = "mamba"
    tokenizer_name: str | None = None
    from_pretrained: bool = True
    hidden_size: int = 768
    num_hidden_layers: int = 24
    state_size: int = 16
    expand: int = 2
    conv_kernel: int = 4
    num_attention_heads: int = 0
    vocab_size: int = 0
    prompt_template: str = "{context}\n\nQ: {question}\nA:"
    shots: int = 3
    max_shot_context_tokens: int = 160
    no_answer_text: str = "I don't know"
    negatives_ratio: float = 0.5
    sampling_seed: int = 0
    max_length: int = 1024
    doc_stride: int = 128
    max_question_length: int = 64
    max_answer_tokens: int = 24
    n_best: int = 5
    constrain_to_context: bool = True
    score_per_token: bool = True
    variant: Literal["full", "lora"] = "full"
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] = ("in_proj", "x_proj")
    lora_merge: bool = False
    kernels: Literal["auto", "fused", "reference"] = "auto"


TINY: dict[str, object] = {
    "model_name": "tiny-mamba",
    "tokenizer_name": "tiny-bpe",
    "from_pretrained": False,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "state_size": 8,
    "shots": 0,
    "negatives_ratio": 0.0,
    "max_length": 128,
    "doc_stride": 32,
    "max_question_length": 32,
    "max_answer_tokens": 16,
    "max_shot_context_tokens": 128,
}

# GPT-2 attends to 1,024 positions: prompts of at most 1,000 tokens leave room for the answer.
GPT2: dict[str, object] = {"model_name": "gpt2", "model_type": "gpt2", "max_length": 1000,
                           "lora_target_modules": ("c_attn",)}
TINY_GPT2: dict[str, object] = {**TINY, "model_name": "tiny-gpt2", "model_type": "gpt2", "num_attention_heads": 2,
                                "lora_target_modules": ("c_attn",)}

HUB_SIZES = {"130m": "state-spaces/mamba-130m-hf", "370m": "state-spaces/mamba-370m-hf",
             "790m": "state-spaces/mamba-790m-hf", "1.4b": "state-spaces/mamba-1.4b-hf",
             "2.8b": "state-spaces/mamba-2.8b-hf"}

PRESETS: dict[str, dict[str, object]] = {
    # The seed study's setup: Mamba-130M fine-tuned (SFT) with synthetic negatives and 3-shot prompts.
    **{f"mamba-{size}": {"model_name": name} for size, name in HUB_SIZES.items()},
    **{f"mamba-{size}-lora": {"model_name": name, "variant": "lora"} for size, name in HUB_SIZES.items()},
    # Random 2-layer 32-d Mamba with the shipped 4,096-token BPE (offline): seconds on a CPU.
    "tiny": TINY,
    "tiny-lora": {**TINY, "variant": "lora"},
    # The seed study's peft-gpt2: GPT-2 (124M) with LoRA on its attention projections, the same prompts, shots,
    # negatives and decoding as Mamba; and random 2-layer 32-d GPT-2s with the tiny BPE for tests.
    "gpt2": GPT2,
    "gpt2-lora": {**GPT2, "variant": "lora"},
    "tiny-gpt2": TINY_GPT2,
    "tiny-gpt2-lora": {**TINY_GPT2, "variant": "lora"},
}
