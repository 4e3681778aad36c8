"""Static Model Pruning: binary masks learned over frozen pretrained weights.

Every ``nn.Linear`` of the encoder becomes a ``MaskedLinear``: its pretrained weight and bias are frozen, and a
score per weight is learned. In the forward pass the scores are binarised, keeping the top ``density`` share of
each matrix (or, with the 2:4 pattern, the top 2 of every 4 consecutive weights of a row, the layout NVIDIA's
sparse tensor cores run), and the layer computes with ``weight * mask``. The binarisation passes gradients
straight through to the scores. Only the scores and the QA head learn; no pretrained weight changes.

The density can be reached gradually (``pruning_schedule`` "cubic", Sanh et al., 2020, "Movement Pruning"): all
weights are kept for the first ``warmup`` share of the steps, then the density falls along a cubic to the
target, which the last ``cooldown`` share of the steps trains at. That gives the scores a dense phase to learn
which weights matter before any are dropped.

Which weights count against the density (``mask_scope``): "layer" keeps ``density`` of every matrix; "global"
keeps the top ``density`` of all the encoder's scores pooled (one threshold, `GlobalBudget`), so the masks can
give more to the matrices that need it and less to others (as soft movement pruning's and SMP-S's one threshold
do), the whole encoder still at ``density``. Scores start relative to each matrix's mean magnitude, so the first
global mask keeps about ``density`` of each matrix too, and training moves weights between them.

``apply_masks`` then turns each ``MaskedLinear`` back into an ``nn.Linear`` whose weight is ``weight * mask``:
the pruned model is an ordinary checkpoint, its kept weights bit-for-bit the pretrained ones, its others zero.
"""

from __future__ import annotations

import math

import torch
from torch import nn

PATTERNS = ("unstructured", "2:4")
SCHEDULES = ("constant", "cubic")
SCOPES = ("layer", "global")


class _TopK(torch.autograd.Function):
    """1 for the top ``density`` share of ``scores`` (exactly ceil(density x n) of them), else 0; the gradient
    passes straight through."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, density: float) -> torch.Tensor:
        kept = max(1, math.ceil(density * scores.numel()))
        mask = torch.zeros_like(scores)
        mask.view(-1)[scores.flatten().topk(kept, sorted=False).indices] = 1.0
        return mask

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


class _AtLeast(torch.autograd.Function):
    """1 where ``scores`` reach ``threshold``, else 0; the gradient passes straight through."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
        return (scores >= threshold).to(scores.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


class GlobalBudget:
    """One threshold for every ``MaskedLinear`` sharing it (``mask_scope`` "global"): the score above which the top
    ``density`` share of all their scores lie. Worked out once per forward of the model (`add_masks` hooks the
    model to forget it before each, since the optimizer moved the scores) and kept for the layers that follow."""

    def __init__(self) -> None:
        self.layers: list[MaskedLinear] = []
        self._threshold: tuple[float, torch.Tensor] | None = None

    def forget(self, *_) -> None:
        self._threshold = None

    @torch.no_grad()
    def threshold(self, density: float) -> torch.Tensor:
        if self._threshold is None or self._threshold[0] != density:
            scores = torch.cat([(layer.mask_scores * layer.score_scale).flatten() for layer in self.layers])
            kept = max(1, math.ceil(density * scores.numel()))
            self._threshold = (density, scores.kthvalue(scores.numel() - kept + 1).values)  # the kept-th largest
        return self._threshold[1]


class _TwoOfFour(torch.autograd.Function):
    """1 for the 2 highest scores of every 4 consecutive ones along a row, else 0; straight-through gradient."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor) -> torch.Tensor:
        groups = scores.reshape(-1, 4)
        mask = torch.zeros_like(groups)
        mask.scatter_(1, groups.topk(2, dim=1).indices, 1.0)
        return mask.reshape(scores.shape)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad


class MaskedLinear(nn.Module):
    """A frozen ``nn.Linear`` whose weights are gated by a learned binary mask.

    Scores start at each weight's magnitude relative to the matrix's mean magnitude (so the first mask is
    magnitude pruning). They are stored divided by ``score_scale`` and multiplied back in the forward pass:
    Adam moves a parameter by about the learning rate per step whatever its gradient's size, so the scores
    move ``score_scale`` times faster than the QA head, which shares the job's one learning rate.
    """

    def __init__(self, linear: nn.Linear, density: float, pattern: str = "unstructured", score_scale: float = 100.0):
        super().__init__()
        if pattern not in PATTERNS:
            raise ValueError(f"unknown sparsity pattern {pattern!r}; expected one of {', '.join(PATTERNS)}")
        if pattern == "2:4" and linear.in_features % 4:
            raise ValueError(f"2:4 sparsity needs input sizes divisible by 4, not {linear.in_features}")
        self.weight = nn.Parameter(linear.weight.detach().clone(), requires_grad=False)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        magnitude = self.weight.abs()
        self.mask_scores = nn.Parameter(magnitude / magnitude.mean().clamp(min=1e-12) / score_scale)
        self.density = density  # the target: what the pruned model keeps
        self.current_density = density  # what the forward pass keeps now (the pruning schedule moves it)
        self.pattern = pattern
        self.score_scale = score_scale
        self.budget: GlobalBudget | None = None  # mask_scope "global": the threshold shared with the other layers

    def mask(self, density: float | None = None) -> torch.Tensor:
        """The binary mask at ``density`` (default: the target density)."""
        scores = self.mask_scores * self.score_scale
        if self.pattern == "2:4":
            return _TwoOfFour.apply(scores)
        density = self.density if density is None else density
        if self.budget is not None:
            return _AtLeast.apply(scores, self.budget.threshold(density))
        return _TopK.apply(scores, density)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        mask = self.mask(self.current_density if self.training else self.density)
        return nn.functional.linear(values, self.weight * mask.to(self.weight.dtype), self.bias)

    def pruned(self) -> nn.Linear:
        """An ordinary ``nn.Linear`` with the mask applied."""
        linear = nn.Linear(self.weight.shape[1], self.weight.shape[0], bias=self.bias is not None)
        with torch.no_grad():
            linear.weight.copy_(self.weight * self.mask().to(self.weight.dtype))
            if self.bias is not None:
                linear.bias.copy_(self.bias)
        return linear.to(self.weight.device)


def scheduled_density(step: int, total_steps: int, target: float, *, warmup: float, cooldown: float) -> float:
    """The density the cubic schedule keeps at ``step`` of ``total_steps``: 1 through the first ``warmup`` share
    of the steps, ``target`` through the last ``cooldown`` share, and in between
    ``target + (1 - target) x (1 - progress)^3`` (Zhu and Gupta, 2017; Sanh et al., 2020)."""
    if not (0.0 <= warmup and 0.0 <= cooldown and warmup + cooldown < 1.0):
        raise ValueError(f"pruning warmup and cooldown must be non-negative shares of the steps summing to less "
                         f"than 1, not {warmup} and {cooldown}")
    if total_steps <= 0:
        return target
    begin, end = warmup * total_steps, (1.0 - cooldown) * total_steps
    if step <= begin:
        return 1.0
    if step >= end:
        return target
    return target + (1.0 - target) * (1.0 - (step - begin) / (end - begin)) ** 3


def set_training_density(module: nn.Module, step: int, total_steps: int, *, warmup: float, cooldown: float) -> float:
    """Move every ``MaskedLinear`` of ``module`` to its scheduled density at ``step``; returns the mean density."""
    layers = [child for child in module.modules() if isinstance(child, MaskedLinear) and child.pattern != "2:4"]
    for layer in layers:
        layer.current_density = scheduled_density(step, total_steps, layer.density, warmup=warmup, cooldown=cooldown)
    return sum(layer.current_density for layer in layers) / len(layers) if layers else 1.0


def encoder_linears(module: nn.Module) -> dict[str, nn.Module]:
    """The linear layers Static Model Pruning masks: every ``nn.Linear`` (or ``MaskedLinear``) inside the
    encoder (attention projections and feed-forward layers), by qualified name; not embeddings, not the head."""
    encoder = module.base_model.encoder
    prefix = next(name for name, child in module.named_modules() if child is encoder)
    return {f"{prefix}.{name}": child for name, child in encoder.named_modules()
            if isinstance(child, (nn.Linear, MaskedLinear))}


def _replace(module: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child_name = name.rpartition(".")
    setattr(module.get_submodule(parent_name) if parent_name else module, child_name, new)


def add_masks(module: nn.Module, density: float, pattern: str = "unstructured", score_scale: float = 100.0,
              scope: str = "layer") -> None:
    """Make ``module`` (an ``AutoModelForQuestionAnswering``) a Static Model Pruning student, in place: masks on
    the encoder's linear layers (``density`` of each, or with ``scope`` "global" of all of them together), every
    pretrained parameter frozen, only mask scores and the QA head trainable."""
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], not {density}")
    if pattern == "2:4" and density != 0.5:
        raise ValueError(f"2:4 sparsity keeps exactly half the weights: density must be 0.5, not {density}")
    if scope not in SCOPES:
        raise ValueError(f"unknown mask scope {scope!r}; expected one of {', '.join(SCOPES)}")
    if scope == "global" and pattern == "2:4":
        raise ValueError("the 2:4 pattern keeps 2 of every 4 weights in each row: its mask scope is the layer")
    budget = GlobalBudget() if scope == "global" else None
    for name, linear in encoder_linears(module).items():
        masked = MaskedLinear(linear, density, pattern, score_scale)
        if budget is not None:
            masked.budget = budget
            budget.layers.append(masked)
        _replace(module, name, masked)
    if budget is not None:
        module.register_forward_pre_hook(budget.forget)
    head = qa_head(module)
    for name, parameter in module.named_parameters():
        parameter.requires_grad = name.endswith("mask_scores") or any(parameter is p for p in head.parameters())


def qa_head(module: nn.Module) -> nn.Module:
    """The span head of a QA model (``qa_outputs`` in BERT-family models)."""
    head = getattr(module, "qa_outputs", None)
    if head is None:
        raise ValueError(f"{type(module).__name__} has no qa_outputs head to train")
    return head


def apply_masks(module: nn.Module) -> int:
    """Replace every ``MaskedLinear`` of ``module`` by its pruned ``nn.Linear``, in place; returns how many."""
    masked = {name: child for name, child in module.named_modules() if isinstance(child, MaskedLinear)}
    for child in masked.values():
        if child.budget is not None:
            child.budget.forget()  # scores the optimizer moved since the last forward
    for name, child in masked.items():
        _replace(module, name, child.pruned())
    return len(masked)


def has_masks(module: nn.Module) -> bool:
    return any(isinstance(child, MaskedLinear) for child in module.modules())


def is_two_of_four(weight: torch.Tensor) -> bool:
    """Whether at most 2 of every 4 consecutive weights of each row are non-zero (the 2:4 layout)."""
    return weight.shape[-1] % 4 == 0 and bool(((weight.reshape(-1, 4) != 0).sum(1) <= 2).all())


def to_semi_structured(module: nn.Module) -> int:
    """Store every encoder linear weight of a 2:4-pruned ``module`` as a PyTorch semi-structured sparse tensor,
    so its matrix products run on sparse tensor cores; returns how many. Inference only; needs CUDA (compute
    capability 8.0 or newer) and a float16 or bfloat16 module, as ``torch.sparse.to_sparse_semi_structured``
    does. Raises ValueError naming the first layer that is not 2:4 sparse."""
    from torch.sparse import to_sparse_semi_structured

    layers = encoder_linears(module)
    for name, linear in layers.items():
        if not isinstance(linear, nn.Linear):
            raise ValueError(f"{name} still carries its pruning mask: apply the masks first")
        if linear.weight.device.type != "cuda" or linear.weight.dtype not in (torch.float16, torch.bfloat16):
            raise ValueError(f"semi-structured sparsity needs CUDA float16/bfloat16 weights; {name} is "
                             f"{linear.weight.dtype} on {linear.weight.device}")
        if not is_two_of_four(linear.weight):
            raise ValueError(f"{name} is not 2:4 sparse (a row has more than 2 non-zeros in 4): prune it with "
                             "--sparsity-pattern 2:4")
    for linear in layers.values():
        linear.weight = nn.Parameter(to_sparse_semi_structured(linear.weight.detach()), requires_grad=False)
    return len(layers)


def remaining_fraction(weights: dict[str, torch.Tensor], names: list[str]) -> float:
    """Share of non-zero entries among the ``names`` weight tensors (as saved: ``<layer>.weight``)."""
    total = sum(weights[name].numel() for name in names)
    kept = sum(int(torch.count_nonzero(weights[name])) for name in names)
    return kept / total if total else 1.0


__all__ = ["GlobalBudget", "MaskedLinear", "PATTERNS", "SCHEDULES", "SCOPES", "add_masks", "apply_masks",
           "encoder_linears", "has_masks", "is_two_of_four", "qa_head", "remaining_fraction", "scheduled_density",
           "set_training_density", "to_semi_structured"]
