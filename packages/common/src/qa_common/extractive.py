"""The extractive reader shared by span-predicting architectures: features, batching, runtimes, decoding.

An architecture subclasses ``ExtractiveQAModel`` with its module, tokenizer and config; this class turns
examples into windows, batches them by length (padding is not paid for), runs the model on PyTorch or ONNX
Runtime, and decodes spans with the shared decoder.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qa_common.adapter import QAModel, RawPrediction
from qa_common.data.examples import SquadExample
from qa_common.data.windows import ExtractiveFeatures, make_windows
from qa_common.decoding.spans import decode_spans, pad_offsets

DECODE_CHUNK_FEATURES = 512


@dataclass
class ExtractiveSettings:
    """The windowing and decoding settings every extractive config carries."""

    max_length: int
    doc_stride: int
    max_question_length: int
    max_answer_length: int
    n_best: int


class FeatureDataset(torch.utils.data.Dataset):
    """Labelled windows as dicts of token lists, for HF ``Trainer``."""

    def __init__(self, features: ExtractiveFeatures, input_names: Sequence[str]):
        self.features = features
        self.input_names = tuple(input_names)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item: dict[str, Any] = {"input_ids": self.features.input_ids[index]}
        if "token_type_ids" in self.input_names and self.features.token_type_ids is not None:
            item["token_type_ids"] = self.features.token_type_ids[index]
        item["attention_mask"] = [1] * len(self.features.input_ids[index])
        for name, values in self.features.extra_inputs.items():
            if name in self.input_names:
                item[name] = values[index]
        if self.features.start_positions is not None:
            item["start_positions"] = int(self.features.start_positions[index])
            item["end_positions"] = int(self.features.end_positions[index])
        return item


def pad_batch(items: Sequence[dict[str, Any]], pad_token_id: int) -> dict[str, np.ndarray]:
    """Pad each key's token lists of one batch to that key's longest list; scalar labels become 1-d arrays.

    ``input_ids`` are padded with ``pad_token_id``, every other list (masks, token types, extra inputs) with 0.
    """
    batch: dict[str, np.ndarray] = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if isinstance(values[0], list):
            length = max(1, max(len(value) for value in values))
            fill = pad_token_id if key == "input_ids" else 0
            array = np.full((len(values), length), fill, dtype=np.int64)
            for row, value in enumerate(values):
                array[row, : len(value)] = value
            batch[key] = array
        else:
            batch[key] = np.asarray(values, dtype=np.int64)
    return batch


class PaddingCollator:
    """Dynamic padding for ``Trainer``: each batch is padded to its own longest window."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, items: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return {key: torch.from_numpy(value) for key, value in pad_batch(items, self.pad_token_id).items()}


class TorchRunner:
    """Start/end logits from a PyTorch module; bf16 autocast on CUDA."""

    def __init__(self, module: torch.nn.Module):
        self.module = module

    def __call__(self, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        device = next(self.module.parameters()).device
        inputs = {key: torch.from_numpy(value).to(device, non_blocking=True) for key, value in batch.items()}
        # A module fresh from build() or mid-training is in training mode: predictions must not use dropout.
        was_training = self.module.training
        self.module.eval()
        try:
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16,
                                                        enabled=device.type == "cuda"):
                output = self.module(**inputs)
        finally:
            self.module.train(was_training)
        return output.start_logits.float().cpu().numpy(), output.end_logits.float().cpu().numpy()


class OnnxRunner:
    """Start/end logits from an exported ONNX graph through ONNX Runtime."""

    def __init__(self, path: Path, providers: Sequence[str] | None = None):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        available = onnxruntime.get_available_providers()
        chosen = [p for p in (providers or ("CUDAExecutionProvider", "CPUExecutionProvider")) if p in available]
        self.session = onnxruntime.InferenceSession(str(path), options, providers=chosen)
        self.input_names = [node.name for node in self.session.get_inputs()]

    def __call__(self, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        start, end = self.session.run(["start_logits", "end_logits"], {k: batch[k] for k in self.input_names})
        return start, end


class ExtractiveQAModel(QAModel):
    """A span-extraction reader: subclasses set ``module``, ``tokenizer``, ``config`` and ``input_names``."""

    input_names: tuple[str, ...] = ("input_ids", "attention_mask", "token_type_ids")
    # Inputs whose second axis is not the window's token axis (the ONNX graph gives them their own dynamic axis).
    sequence_axes: dict[str, str] = {}
    # Export through torch.export (True) or the TorchScript tracer (False; see export_extractive_onnx).
    onnx_dynamo: bool = True

    def __init__(self, module: torch.nn.Module | None, tokenizer, config, runner=None):
        self.module = module
        self.tokenizer = tokenizer
        self.config = config
        self.runner = runner if runner is not None else TorchRunner(module)

    @property
    def settings(self) -> ExtractiveSettings:
        c = self.config
        return ExtractiveSettings(c.max_length, c.doc_stride, c.max_question_length, c.max_answer_length, c.n_best)

    def windows(self, examples: Sequence[SquadExample], *, with_labels: bool) -> ExtractiveFeatures:
        s = self.settings
        return make_windows(
            self.tokenizer,
            examples,
            max_length=s.max_length,
            doc_stride=s.doc_stride,
            max_question_length=s.max_question_length,
            with_labels=with_labels,
        )

    def training_dataset(self, examples: Sequence[SquadExample]) -> FeatureDataset:
        return FeatureDataset(self.windows(examples, with_labels=True), self.input_names)

    def data_collator(self) -> PaddingCollator:
        return PaddingCollator(self.tokenizer.pad_token_id)

    def _batches(self, features: ExtractiveFeatures, batch_size: int) -> Iterator[tuple[np.ndarray, dict]]:
        """Batches of windows of similar length (sorted by length), with the feature indices they hold."""
        dataset = FeatureDataset(features, self.input_names)
        order = np.argsort(features.lengths(), kind="stable")
        for begin in range(0, len(order), batch_size):
            indices = order[begin : begin + batch_size]
            yield indices, pad_batch([dataset[int(i)] for i in indices], self.tokenizer.pad_token_id)

    def logits(self, features: ExtractiveFeatures, batch_size: int, progress: bool = False):
        """(F, L) start and end logits for every window, padded with -inf to the longest window."""
        length = int(features.lengths().max())
        start = np.full((len(features), length), -np.inf, dtype=np.float32)
        end = np.full((len(features), length), -np.inf, dtype=np.float32)
        batches = self._batches(features, batch_size)
        if progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, total=-(-len(features) // batch_size), desc="predict", unit="batch")
        for indices, batch in batches:
            batch_start, batch_end = self.runner(batch)
            width = batch_start.shape[1]
            start[indices, :width] = batch_start
            end[indices, :width] = batch_end
        # Positions past a window's own length are batch padding: not tokens of that window.
        padding = np.arange(length)[None, :] >= features.lengths()[:, None]
        start[padding] = -np.inf
        end[padding] = -np.inf
        return start, end

    def predict(
        self, examples: Sequence[SquadExample], *, batch_size: int = 32, progress: bool = False
    ) -> dict[str, RawPrediction]:
        if not examples:
            return {}
        features = self.windows(examples, with_labels=False)
        start, end = self.logits(features, batch_size, progress)
        attention = np.isfinite(start)
        start = np.where(attention, start, -1e4)
        end = np.where(attention, end, -1e4)
        offsets = pad_offsets(features.offsets, start.shape[1])
        contexts = [example.context for example in examples]
        predictions: dict[str, RawPrediction] = {}
        # Decode in chunks of whole examples to bound the (F, L, K) score array.
        boundaries = np.flatnonzero(np.diff(features.example_index)) + 1
        chunk_starts = [0]
        for boundary in boundaries:
            if boundary - chunk_starts[-1] >= DECODE_CHUNK_FEATURES:
                chunk_starts.append(int(boundary))
        chunk_starts.append(len(features))
        s = self.settings
        for begin, stop in zip(chunk_starts[:-1], chunk_starts[1:], strict=True):
            first_example = int(features.example_index[begin])
            decodings = decode_spans(
                start[begin:stop],
                end[begin:stop],
                offsets[begin:stop],
                attention[begin:stop],
                features.example_index[begin:stop] - first_example,
                contexts[first_example : int(features.example_index[stop - 1]) + 1],
                n_best=s.n_best,
                max_answer_length=s.max_answer_length,
            )
            for offset, decoding in enumerate(decodings):
                example = examples[first_example + offset]
                best = decoding.best
                predictions[example.id] = RawPrediction(
                    text=best.text if best else "",
                    no_answer_probability=decoding.no_answer_probability,
                    score=best.probability if best else 0.0,
                    n_best=tuple((c.text, c.probability) for c in decoding.candidates[1:]),
                )
        return predictions

    def model_only_inputs(self, batch_size: int, sequence_length: int) -> dict[str, np.ndarray]:
        generator = np.random.default_rng(0)
        vocab = int(getattr(self.tokenizer, "vocab_size", 1000))
        inputs = {
            "input_ids": generator.integers(1000 % vocab, vocab, (batch_size, sequence_length), dtype=np.int64),
            "attention_mask": np.ones((batch_size, sequence_length), dtype=np.int64),
        }
        if "token_type_ids" in self.input_names:
            inputs["token_type_ids"] = np.zeros((batch_size, sequence_length), dtype=np.int64)
        return inputs

    def export_onnx(self, directory: Path, examples: Sequence[SquadExample]) -> dict[str, float]:
        from qa_common.onnx_export import export_extractive_onnx

        features = self.windows(examples, with_labels=False)
        sample = next(self._batches(features, batch_size=min(8, len(features))))[1]
        return export_extractive_onnx(self.module, self.input_names, sample, Path(directory) / "model.onnx",
                                      parity_batches=[b for _, b in self._batches(features, 16)],
                                      sequence_axes=self.sequence_axes, dynamo=self.onnx_dynamo)
