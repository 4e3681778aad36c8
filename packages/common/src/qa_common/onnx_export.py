"""ONNX export of extractive readers with parity checked against PyTorch on real features."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch


class _LogitsOnly(torch.nn.Module):
    """Wraps a HF-style QA module so the graph takes positional inputs and returns two tensors."""

    def __init__(self, module: torch.nn.Module, input_names: Sequence[str]):
        super().__init__()
        self.module = module
        self.input_names = tuple(input_names)

    def forward(self, *inputs):
        output = self.module(**dict(zip(self.input_names, inputs, strict=True)))
        return output.start_logits, output.end_logits


def parity_difference(expected: np.ndarray, actual: np.ndarray, mask: np.ndarray) -> float:
    """Max |expected - actual| over the positions of ``mask``; infinite where either side is not finite.

    (A plain ``max`` with NaN in it would return the other operand and report a broken export as exact.)
    """
    expected, actual = expected[mask], actual[mask]
    if not (np.isfinite(expected).all() and np.isfinite(actual).all()):
        return float("inf")
    return float(np.abs(expected - actual).max()) if expected.size else 0.0


def export_extractive_onnx(
    module: torch.nn.Module,
    input_names: Sequence[str],
    sample_batch: dict[str, np.ndarray],
    path: Path,
    *,
    parity_batches: Sequence[dict[str, np.ndarray]] = (),
    opset: int = 18,
    sequence_axes: Mapping[str, str] | None = None,
    dynamo: bool = True,
) -> dict[str, float]:
    """Export ``module`` (fp32, CPU) to ``path`` with dynamic batch and sequence axes.

    Every input's axis 1 is the dynamic ``sequence`` axis unless ``sequence_axes`` names another for it (an
    input of a different length, such as a separate question sequence).

    Returns ``onnx_max_abs_logit_diff`` (max |torch - onnxruntime| start/end logit difference over the
    real tokens of ``parity_batches``), ``onnx_parity_features`` and ``onnx_size_bytes``.
    """
    import onnxruntime

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    original_device = next(module.parameters()).device
    was_training = module.training
    module = module.to("cpu").float().eval()
    wrapper = _LogitsOnly(module, input_names).eval()
    sample = tuple(torch.from_numpy(sample_batch[name]) for name in input_names)
    # The dynamo exporter keeps batch and sequence symbolic; the legacy tracer froze transformers' mask code
    # to the sample's shapes (logits off by 0.4 on other shapes).
    sequence_axes = dict(sequence_axes or {})
    axes = {name: sequence_axes.get(name, "sequence") for name in input_names}
    outputs = ["start_logits", "end_logits"]
    if dynamo:
        dims = {axis: torch.export.Dim(axis) for axis in {"batch", *axes.values()}}
        shapes = {"dynamic_shapes": (tuple({0: dims["batch"], 1: dims[axes[name]]} for name in input_names),)}
    else:
        shapes = {"dynamic_axes": {**{name: {0: "batch", 1: axes[name]} for name in input_names},
                                   **{output: {0: "batch", 1: "sequence"} for output in outputs}}}
    with torch.no_grad():
        torch.onnx.export(wrapper, sample, str(path), input_names=list(input_names), output_names=outputs,
                          opset_version=opset, dynamo=dynamo, **shapes)

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    max_difference = 0.0
    checked = 0
    with torch.no_grad():
        for batch in parity_batches or [sample_batch]:
            reference = wrapper(*(torch.from_numpy(batch[name]) for name in input_names))
            exported = session.run(["start_logits", "end_logits"], {name: batch[name] for name in input_names})
            real = batch["attention_mask"].astype(bool)
            for expected, actual in zip(reference, exported, strict=True):
                max_difference = max(max_difference, parity_difference(expected.numpy(), actual, real))
            checked += len(batch["input_ids"])
    module.to(original_device).train(was_training)
    return {
        "onnx_max_abs_logit_diff": max_difference,
        "onnx_parity_features": float(checked),
        "onnx_size_bytes": float(sum(item.stat().st_size for item in path.parent.glob(path.name + "*"))),
    }
