"""Knowledge distillation of a bert_qa student from a trained teacher.

The loss is ``alpha x hard + (1 - alpha) x soft``: ``hard`` is the student's own span loss on the gold labels,
``soft`` the temperature-scaled KL divergence from the teacher's to the student's start and end distributions
over the window (the no-answer position [CLS] included; padding excluded), multiplied by T^2 so its gradients
keep their size as T changes (Hinton et al., 2015).

With ``hidden_weight`` > 0 the loss adds ``hidden_weight x hidden``: the mean over the encoder's layers of the
mean squared difference between the student's and the teacher's hidden states at the window's real tokens
(TinyBERT's layer distillation, Jiao et al., 2020; layer l of the student matched to layer l of the teacher, so
both need the same depth and width). Two span distributions per window are a thin signal for a student that may
only choose which frozen weights to keep; every token's hidden state in every layer is a dense one.
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


def hidden_state_loss(student_states, teacher_states, mask) -> torch.Tensor:
    """Mean over layers of the mean squared difference of (B, L, H) hidden states at ``mask``ed (B, L) tokens;
    the embedding outputs (the first of transformers' ``hidden_states``) are left out."""
    weights = mask.unsqueeze(-1).float()
    count = weights.sum() * student_states[-1].shape[-1]
    losses = [((student.float() - teacher.float()) ** 2 * weights).sum() / count
              for student, teacher in zip(student_states[1:], teacher_states[1:], strict=True)]
    return torch.stack(losses).mean()


class Distiller(nn.Module):
    """What the Trainer trains under distillation: the student, with the teacher's outputs in its loss.

    The teacher is frozen, in eval mode, and not a submodule: it is neither trained, nor in the student's
    checkpoints, nor counted in its parameters. Without labels the student's outputs pass through unchanged.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, *, alpha: float, temperature: float,
                 hidden_weight: float = 0.0):
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"distill_alpha must be in [0, 1], not {alpha}")
        if temperature <= 0:
            raise ValueError(f"distill_temperature must be positive, not {temperature}")
        if hidden_weight < 0:
            raise ValueError(f"distill_hidden must be 0 or more, not {hidden_weight}")
        if hidden_weight:
            shapes = [(getattr(m.config, "num_hidden_layers", None), getattr(m.config, "hidden_size", None))
                      for m in (student, teacher)]
            if shapes[0] != shapes[1]:
                raise ValueError(f"distill_hidden matches the student's layers to the teacher's: the student has "
                                 f"{shapes[0][0]} layers of width {shapes[0][1]}, the teacher {shapes[1][0]} of "
                                 f"width {shapes[1][1]}; use distill_hidden 0 for a teacher of another size")
        self.hidden_weight = hidden_weight
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
        labelled = start_positions is not None and end_positions is not None
        layers = {"output_hidden_states": True} if self.hidden_weight and labelled else {}
        output = self.student(**inputs, start_positions=start_positions, end_positions=end_positions, **layers)
        if not labelled:
            return output
        teacher = self.teacher
        device = input_ids.device
        if next(teacher.parameters()).device != device:
            teacher.to(device)
        with torch.no_grad():
            taught = teacher(**inputs, **layers)
        mask = attention_mask.bool() if attention_mask is not None else torch.ones_like(input_ids, dtype=torch.bool)
        soft = soft_span_loss(output.start_logits, output.end_logits, taught.start_logits, taught.end_logits, mask,
                              self.temperature)
        self.last_losses = {"hard": float(output.loss.detach()), "soft": float(soft.detach())}
        loss = self.alpha * output.loss + (1 - self.alpha) * soft
        if self.hidden_weight:
            hidden = hidden_state_loss(output.hidden_states, taught.hidden_states, mask)
            self.last_losses["hidden"] = float(hidden.detach())
            loss = loss + self.hidden_weight * hidden
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


__all__ = ["Distiller", "hidden_state_loss", "load_teacher", "soft_span_loss"]
