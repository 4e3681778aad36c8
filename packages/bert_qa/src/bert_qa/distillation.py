"""Knowledge distillation of a bert_qa student from a trained teacher.

The loss is ``alpha x hard + (1 - alpha) x soft``: ``hard`` is the student's own span loss on the gold labels,
``soft`` the temperature-scaled KL divergence from the teacher's to the student's start and end distributions
over the window (the no-answer position [CLS] included; padding excluded), multiplied by T^2 so its gradients
keep their size as T changes (Hinton et al., 2015).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers.modeling_outputs import QuestionAnsweringModelOutput

MASKED = -1e4


def soft_span_loss(student_start, student_end, teacher_start, teacher_end, mask, temperature: float) -> torch.Tensor:
    """T^2 x mean over start and end of KL(teacher || student) at temperature T, over ``mask``ed positions."""
    def divergence(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        student = student.float().masked_fill(~mask, MASKED) / temperature
        teacher = teacher.float().masked_fill(~mask, MASKED) / temperature
        return nn.functional.kl_div(nn.functional.log_softmax(student, -1), nn.functional.log_softmax(teacher, -1),
                                    log_target=True, reduction="batchmean")

    return temperature**2 * (divergence(student_start, teacher_start) + divergence(student_end, teacher_end)) / 2


class Distiller(nn.Module):
    """What the Trainer trains under distillation: the student, with the teacher's outputs in its loss.

    The teacher is frozen, in eval mode, and not a submodule: it is neither trained, nor in the student's
    checkpoints, nor counted in its parameters. Without labels the student's outputs pass through unchanged.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, *, alpha: float, temperature: float):
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"distill_alpha must be in [0, 1], not {alpha}")
        if temperature <= 0:
            raise ValueError(f"distill_temperature must be positive, not {temperature}")
        self.student = student
        self._teacher = [teacher.eval().requires_grad_(False)]
        self.alpha = alpha
        self.temperature = temperature
        self.last_losses: dict[str, float] = {}

    @property
    def teacher(self) -> nn.Module:
        return self._teacher[0]

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, start_positions=None, end_positions=None):
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        output = self.student(**inputs, start_positions=start_positions, end_positions=end_positions)
        if start_positions is None or end_positions is None:
            return output
        teacher = self.teacher
        device = input_ids.device
        if next(teacher.parameters()).device != device:
            teacher.to(device)
        with torch.no_grad():
            taught = teacher(**inputs)
        mask = attention_mask.bool() if attention_mask is not None else torch.ones_like(input_ids, dtype=torch.bool)
        soft = soft_span_loss(output.start_logits, output.end_logits, taught.start_logits, taught.end_logits, mask,
                              self.temperature)
        self.last_losses = {"hard": float(output.loss.detach()), "soft": float(soft.detach())}
        loss = self.alpha * output.loss + (1 - self.alpha) * soft
        return QuestionAnsweringModelOutput(loss=loss, start_logits=output.start_logits, end_logits=output.end_logits)


def load_teacher(spec: str):
    """The teacher named by ``spec``: a saved squad-qa model directory, a plain Hugging Face QA checkpoint
    directory, or an MLflow model URI (``runs:/<run id>/model``, ``models:/<name>@champion``). A bare run id
    (32 hex digits) means ``runs:/<id>/model``. Returns ``(module, tokenizer)``."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    if len(spec) == 32 and all(c in "0123456789abcdef" for c in spec) and not Path(spec).exists():
        spec = f"runs:/{spec}/model"
    from qa_common.tracking.models import resolve_model_directory

    local, _ = resolve_model_directory(spec)  # a directory as it is; a URI downloaded; anything else refused
    if not (local / "config.json").is_file():
        raise ValueError(f"teacher {spec!r}: {local} is not a transformers QA checkpoint (no config.json); "
                         "distillation needs a bert_qa-style teacher")
    module = AutoModelForQuestionAnswering.from_pretrained(local, use_safetensors=True).eval()
    return module, AutoTokenizer.from_pretrained(local, use_fast=True)


__all__ = ["Distiller", "load_teacher", "soft_span_loss"]
