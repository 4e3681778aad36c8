"""The extractive reader shared by span-predicting architectures: features, batching, runtimes, decoding.

An architecture subclasses ``ExtractiveQAModel`` with its module, tokenizer and config; this class turns
examples into windows, batches them by length (padding is not paid for), runs the model on PyTorch or ONNX
Runtime, and decodes spans with the shared decoder. `InferenceOptions` choose the fast path (bf16 weights,
token-budget batches, span selection on the model's device, torch.compile, CUDA graphs) or the reference one.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from qa_common.adapter import QAModel, RawPrediction
from qa_common.data.examples import SquadExample
from qa_common.data.windows import NOT_CONTEXT, ExtractiveFeatures, make_windows
from qa_common.decoding.spans import (
    SpanScores,
    WindowSpans,
    merge_window_spans,
    top_window_spans,
    top_window_spans_torch,
    unpack_window_spans,
)


@dataclass(frozen=True)
class InferenceOptions:
    """How an extractive reader answers questions (predict, evaluate, serving, benchmark).

    - ``precision``: the weights' dtype on a GPU: "auto" is bf16 where the GPU has it (else fp16), "fp32" keeps
      fp32 (no autocast). On a CPU the weights stay fp32 whatever is asked (bf16 matmuls are slow there).
      A model never configured runs as before: fp32 weights under bf16 autocast on CUDA.
    - ``max_batch_tokens``: a batch holds as many windows as fit this many padded tokens (0: ``batch_size``
      windows per batch, as the caller asks).
    - ``sort_by_length``: windows are batched longest first, so each batch pads only to its own longest window;
      ``padding`` "max_length" pads every batch to the config's max_length instead (the plain baseline).
    - ``pad_to_multiple``: a batch's length is rounded up to this (tensor-core friendly shapes).
    - ``decode``: "device" selects each window's n-best spans with torch on the model's device and moves only
      those to the CPU; "reference" moves all logits and selects with numpy (`top_window_spans`).
    - ``compile``/``compile_mode``: torch.compile the module; a packed module compiles its repeated layers only
      (regional compilation: one graph for all layers, seconds of warm-up). ``compile_dynamic`` None (the
      default) lets dynamo make shapes dynamic after a recompile (one graph for all lengths); False compiles
      static shapes (``static_length_multiple`` buckets the lengths so few graphs are compiled). On the H200
      (2026-12-03) the layer compile of bert-base warmed up in about 4 s (a whole-model compile: 99 s) and ran
      b256 x 384 at 6,500 sequences/s against 5,905 eager, and real windows at 14,000/s against 12,678;
      "max-autotune-no-cudagraphs" added 0.5% for a minute of autotuning.
    - ``cuda_graphs``: replay a captured CUDA graph per batch shape for batches of at most
      ``cuda_graph_max_batch`` windows (batch-1 latency). Compile and graphs apply only on CUDA.
    - ``span_scores``: "logits" scores spans start + end logit (HF's run_qa postprocessing; the calibrated
      no-answer threshold is chosen on these scores); "window_probabilities" compares spans and the null answer
      by their probabilities within their window, as transformers' QA pipeline does (`qa_common.decoding.spans`).
    - ``packed``: on CUDA, an architecture with a packed module (bert_qa: `bert_qa.fused.PackedBertQA`, fused
      Q/K/V) runs it, and a batch with padding runs unpadded: its real tokens laid end to end, attention by
      varlen flash attention, so no projection pays for padding (`ExtractiveQAModel.packed_module`); in bf16/fp16
      only (varlen flash attention takes nothing else), so ``precision`` "fp32" runs the module padded.
    - ``approximate_gelu``: a packed module whose activation is exact (erf) GELU runs the feed-forward's first
      projection and GELU as one cuBLASLt GEMM with a GELU epilogue, the tanh approximation (a model trained
      with tanh GELU gets that epilogue anyway: it is its own activation). On the H200 it took b256 x 384 from
      5,884 to 6,422 sequences/s eager, with a start-logit change of 0.024 (bf16's own error: 0.027).
    - ``chunk_questions``: predict tokenises and queues this many questions at a time and merges the previous
      chunk's spans while the GPU runs the next, so tokenising and decoding can overlap the model (0: all at
      once). Off by default: each chunk is length-bucketed on its own, so batches pad more (1,426 validation
      questions in chunks of 512: 14% more padded tokens), and on a CPU, where nothing overlaps, predict was
      0.8 s slower (2.65 s against 1.9 s); on a GPU it is not measured yet (`scripts/bench_inference.py
      --configs chunk-256,chunk-512`).
    """

    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    max_batch_tokens: int = 0
    sort_by_length: bool = True
    padding: Literal["longest", "max_length"] = "longest"
    pad_to_multiple: int = 8
    decode: Literal["device", "reference"] = "device"
    compile: bool = False
    compile_mode: str = "default"
    compile_dynamic: bool | None = None
    cuda_graphs: bool = False
    cuda_graph_max_batch: int = 8
    static_length_multiple: int = 32
    span_scores: SpanScores = "logits"
    chunk_questions: int = 0
    packed: bool = True
    approximate_gelu: bool = False

    @property
    def static_shapes(self) -> bool:
        """Whether some batches get bucketed shapes: all under a static compile, small ones under CUDA graphs."""
        return self.cuda_graphs or (self.compile and self.compile_dynamic is False)

    def static_batch(self, rows: int) -> bool:
        """Whether a batch of ``rows`` windows runs at a bucketed (static) shape."""
        return (self.compile and self.compile_dynamic is False) or (self.cuda_graphs
                                                                     and rows <= self.cuda_graph_max_batch)


REFERENCE_OPTIONS = InferenceOptions(precision="fp32", decode="reference", pad_to_multiple=1, packed=False)


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
    """Start/end logits from a PyTorch module: bf16 autocast on CUDA for fp32 weights, none for bf16/fp16 ones.

    With ``compile`` the module runs through torch.compile: a module with ``compile_layers`` compiles its own
    repeated layers (regional compilation: seconds of warm-up), any other one whole; with ``cuda_graphs`` small
    batches replay a CUDA graph captured for their shape. A failure to compile or capture falls back to eager, once,
    with a note on stderr. With ``packed`` (a module with ``forward_packed``, e.g. `bert_qa.fused.PackedBertQA`)
    a batch with padding that is not replayed from a graph runs unpadded: only its real tokens, end to end.
    """

    def __init__(self, module: torch.nn.Module, *, autocast: bool = True, compile: bool = False,
                 compile_mode: str = "default", compile_dynamic: bool | None = None,
                 cuda_graphs: bool = False, cuda_graph_max_batch: int = 8, packed: bool = False):
        self.module = module
        self.autocast = autocast
        self.compiled = None
        self.packed = packed and hasattr(module, "forward_packed") and getattr(module, "can_pack", True)
        self.compiled_packed = None
        self.regional = compile and hasattr(module, "compile_layers")
        if self.regional:  # the module compiles its own repeated layers (bert_qa.fused.PackedBertQA)
            module.compile_layers(mode=compile_mode or None, dynamic=compile_dynamic)
            self.compiled = module
            self.compiled_packed = module.forward_packed if self.packed else None
        elif compile:
            import torch._dynamo

            # One graph per (batch, length) bucket: more than dynamo's default of 8.
            for name in ("recompile_limit", "cache_size_limit"):
                if hasattr(torch._dynamo.config, name):
                    setattr(torch._dynamo.config, name, max(getattr(torch._dynamo.config, name), 128))
            self.compiled = torch.compile(module, mode=compile_mode or None, dynamic=compile_dynamic)
            if self.packed:  # one graph for every token count
                self.compiled_packed = torch.compile(module.forward_packed, mode=compile_mode or None, dynamic=True)
        self.cuda_graphs = cuda_graphs
        self.cuda_graph_max_batch = cuda_graph_max_batch
        self._graphs: dict[tuple, tuple] = {}
        self._graph_pool = None

    def _compile_failed(self, error: Exception) -> None:
        print(f"torch.compile failed ({type(error).__name__}: {str(error)[:200]}); running eager", file=sys.stderr)
        self.compiled = self.compiled_packed = None
        if self.regional:
            self.module.uncompile_layers()

    def _forward(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        module = self.compiled if self.compiled is not None else self.module
        try:
            output = module(**inputs)
        except Exception as error:  # noqa: BLE001 - an inductor or capture failure must not stop answering
            if self.compiled is None:
                raise
            self._compile_failed(error)
            output = self.module(**inputs)
        return output.start_logits, output.end_logits

    def _packed(self, batch: PackedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L) start and end logits of a batch run unpadded (`PackedBatch.unpack`)."""
        compiled = self.compiled_packed
        try:
            logits = (compiled if compiled is not None else self.module.forward_packed)(**batch.inputs)
        except Exception as error:  # noqa: BLE001 - as _forward: an inductor failure falls back to eager
            if compiled is None:
                raise
            self._compile_failed(error)
            logits = self.module.forward_packed(**batch.inputs)
        return batch.unpack(logits)

    def prepare(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor] | PackedBatch:
        """``batch`` on the module's device in the form `logits_tensors` would run it (unpadded where it would
        pack it), so timing the model alone leaves the host's work and the copies out."""
        device = next(self.module.parameters()).device
        mask = batch.get("attention_mask")
        rows = batch["input_ids"].shape[0]
        graphed = self.cuda_graphs and device.type == "cuda" and rows <= self.cuda_graph_max_batch
        if self.packed and mask is not None and not mask.all() and not graphed:
            return PackedBatch.from_numpy(batch, device)
        tensors = {key: torch.from_numpy(np.asarray(value)).to(device) for key, value in batch.items()}
        if mask is not None and device.type == "cuda" and mask.all():
            del tensors["attention_mask"]
        return tensors

    def _graphed(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        key = tuple((name, tuple(value.shape)) for name, value in sorted(inputs.items()))
        if key not in self._graphs:
            static = {name: value.clone() for name, value in inputs.items()}
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):  # warm-up outside the capture, as torch.cuda.graph asks
                for _ in range(2):
                    self._forward(static)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._graph_pool):
                outputs = self._forward(static)
            self._graph_pool = graph.pool()
            self._graphs[key] = (graph, static, outputs)
        graph, static, outputs = self._graphs[key]
        for name, value in inputs.items():
            static[name].copy_(value)
        graph.replay()
        # The outputs are the graph's own buffers: read (decoded) on this stream before the next replay.
        return outputs

    def logits_tensors(self, batch: dict[str, Any] | PackedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L) start and end logits, left on the module's device in its dtype; ``batch`` holds numpy arrays
        or tensors (already on the device: not copied), or is what `prepare` made of one."""
        device = next(self.module.parameters()).device
        prepared = isinstance(batch, PackedBatch)
        mask = None if prepared else batch.get("attention_mask")
        inputs = {} if prepared else {key: torch.as_tensor(value).to(device, non_blocking=True)
                                      for key, value in batch.items()}
        if isinstance(mask, np.ndarray) and device.type == "cuda" and mask.all():
            # Without padding, transformers can skip the mask and SDPA use its flash kernel (qa_common.attention
            # makes that hold under torch.compile and CUDA graphs too).
            del inputs["attention_mask"]
        # A module fresh from build() or mid-training is in training mode: predictions must not use dropout.
        was_training = self.module.training
        self.module.eval()
        floating = next(self.module.parameters()).dtype
        try:
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16,
                                                        enabled=device.type == "cuda" and self.autocast
                                                        and floating == torch.float32):
                if prepared:
                    return self._packed(batch)
                use_graph = (self.cuda_graphs and device.type == "cuda"
                             and batch["input_ids"].shape[0] <= self.cuda_graph_max_batch)
                if use_graph:
                    try:
                        return self._graphed(inputs)
                    except Exception as error:  # noqa: BLE001 - fall back to eager rather than fail a request
                        print(f"CUDA graph capture failed ({type(error).__name__}: {str(error)[:200]}); "
                              "running without graphs", file=sys.stderr)
                        self.cuda_graphs = False
                if self.packed and isinstance(mask, np.ndarray) and not mask.all():
                    return self._packed(PackedBatch.from_numpy(batch, device))
                return self._forward(inputs)
        finally:
            self.module.train(was_training)

    def __call__(self, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        start, end = self.logits_tensors(batch)
        return start.float().cpu().numpy(), end.float().cpu().numpy()


@dataclass
class PackedBatch:
    """A padded batch's real tokens laid end to end, as a packed module's ``forward_packed`` takes them: its keyword
    ``inputs`` (real tokens first in each row), where each real token sat in the flattened B x L batch (``flat``),
    and (B, L)."""

    inputs: dict[str, Any]
    flat: torch.Tensor
    shape: tuple[int, int]

    @classmethod
    def from_numpy(cls, batch: dict[str, np.ndarray], device: torch.device) -> PackedBatch:
        """From a padded numpy batch, worked out on the host (predict's batches: no wait for the device)."""
        mask = np.asarray(batch["attention_mask"], dtype=bool)
        rows, length = mask.shape
        flat = np.flatnonzero(mask.reshape(-1))
        lengths = mask.sum(axis=1)
        cu_seqlens = np.zeros(rows + 1, dtype=np.int32)
        np.cumsum(lengths, out=cu_seqlens[1:])
        types = batch.get("token_type_ids")
        host = {"input_ids": np.asarray(batch["input_ids"]).reshape(-1)[flat],
                "token_type_ids": None if types is None else np.asarray(types).reshape(-1)[flat],
                "position_ids": flat % length, "cu_seqlens": cu_seqlens}
        inputs: dict[str, Any] = {name: None if value is None else torch.from_numpy(value).to(device, non_blocking=True)
                                  for name, value in host.items()}
        inputs["max_length"] = int(lengths.max())
        return cls(inputs, torch.from_numpy(flat).to(device, non_blocking=True), (rows, length))

    @classmethod
    def from_tensors(cls, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                     token_type_ids: torch.Tensor | None = None) -> PackedBatch:
        """From a padded batch of tensors, worked out on their device (a training batch; one wait for the device,
        for the longest window)."""
        rows, length = input_ids.shape
        real = attention_mask.bool() if attention_mask is not None else torch.ones_like(input_ids, dtype=torch.bool)
        lengths = real.sum(1)
        flat = real.reshape(-1).nonzero().squeeze(1)
        inputs = {"input_ids": input_ids.reshape(-1)[flat],
                  "token_type_ids": None if token_type_ids is None else token_type_ids.reshape(-1)[flat],
                  "position_ids": flat % length, "cu_seqlens": F.pad(lengths.cumsum(0), (1, 0)).to(torch.int32),
                  "max_length": int(lengths.max())}
        return cls(inputs, flat, (rows, length))

    def unpack(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L) start and end logits from ``forward_packed``'s (T, 2); padding positions get -10,000 (the
        decoders never read them: they mask by the attention mask)."""
        rows, length = self.shape
        filled = logits.new_full((2, rows * length), -1e4)
        filled[:, self.flat] = logits.t()
        return filled[0].view(rows, length), filled[1].view(rows, length)


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

    def logits_tensors(self, batch: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        start, end = self(batch)
        return torch.from_numpy(start), torch.from_numpy(end)


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
        self.inference = InferenceOptions()

    def configure_inference(self, options: InferenceOptions) -> dict[str, str]:
        """Prepare this model for answering as ``options`` say: cast the weights (on a GPU), compile, capture.

        For a model loaded to answer questions (evaluate, serve, benchmark): it changes the module in place, so a
        model still to be trained or saved keeps the defaults. Call after moving the model to its device.
        Returns what was applied (precision, compile, CUDA graphs), for logs and reports.
        """
        applied = {"precision": "onnxruntime" if self.module is None else "fp32"}
        cuda = self.module is not None and next(self.module.parameters()).device.type == "cuda"
        # Compile and CUDA graphs (and the static shapes they want) are for GPUs only.
        self.inference = options if cuda else replace(options, compile=False, cuda_graphs=False)
        if self.module is None or not isinstance(self.runner, TorchRunner):
            return applied
        dtype = torch.float32
        if cuda and options.precision != "fp32":
            if options.precision == "auto":
                dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            else:
                dtype = torch.bfloat16 if options.precision == "bf16" else torch.float16
        self.module.to(dtype).eval()
        if cuda:
            from qa_common.attention import use_unpadded_sdpa

            applied["attention"] = "sdpa, no mask without padding" if use_unpadded_sdpa(self.module) else \
                str(getattr(getattr(self.module, "config", None), "_attn_implementation", "module's own"))
        applied["precision"] = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
        # Varlen flash attention takes fp16/bf16 only: in fp32 the module runs padded batches as it is.
        half = dtype != torch.float32
        packed = self.packed_module(approximate_gelu=options.approximate_gelu) if cuda and options.packed and half \
            else None
        if cuda and options.packed and not half:
            applied["packed"] = "off: varlen flash attention takes fp16/bf16, not fp32"
        if packed is not None:
            applied["attention"] = "packed: fused QKV, varlen flash attention for batches with padding"
            if getattr(packed, "gelu_epilogue", False):
                applied["gelu"] = "cuBLASLt GELU epilogue (tanh)"
        self.runner = TorchRunner(packed if packed is not None else self.module, autocast=False,
                                  compile=options.compile and cuda, compile_mode=options.compile_mode,
                                  compile_dynamic=options.compile_dynamic, cuda_graphs=options.cuda_graphs and cuda,
                                  cuda_graph_max_batch=options.cuda_graph_max_batch, packed=packed is not None)
        applied["compile"] = options.compile_mode if options.compile and cuda else "off"
        applied["cuda_graphs"] = f"batches of <= {options.cuda_graph_max_batch}" if options.cuda_graphs and cuda \
            else "off"
        return applied

    def packed_module(self, approximate_gelu: bool = False) -> torch.nn.Module | None:
        """A module with the same weights that also runs unpadded batches (``forward_packed``, see
        `TorchRunner`), built for inference on the module's device and dtype; None where the architecture has
        none (the default). ``approximate_gelu``: see `InferenceOptions`."""
        return None

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

    def batch_plan(self, lengths: np.ndarray, batch_size: int,
                   options: InferenceOptions | None = None) -> list[tuple[np.ndarray, int, int]]:
        """(window indices, padded length, padded rows) of every batch, as ``options`` batch them.

        Sorted longest first, a batch pads to its first window's length rounded up to ``pad_to_multiple`` and
        holds ``batch_size`` windows, or as many as fit ``max_batch_tokens`` padded tokens. A batch that runs at a
        static shape (`InferenceOptions.static_batch`) pads to a multiple of ``static_length_multiple`` instead,
        its rows rounded up to a power of two with filler rows.
        """
        options = options or self.inference
        lengths = np.asarray(lengths, dtype=np.int64)
        order = np.argsort(-lengths, kind="stable") if options.sort_by_length else np.arange(len(lengths))
        plan = []
        begin = 0
        while begin < len(order):
            if options.padding == "max_length":
                longest = max(int(self.config.max_length), int(lengths[order[begin:begin + batch_size]].max()))
            else:
                longest = int(lengths[order[begin]]) if options.sort_by_length else \
                    int(lengths[order[begin:begin + batch_size]].max())
            rows = batch_size
            if options.max_batch_tokens:
                # Under a static compile every batch is bucketed: full batches hold a power of two of windows.
                every_static = options.compile and options.compile_dynamic is False
                multiple = options.static_length_multiple if every_static else options.pad_to_multiple
                rows = max(1, options.max_batch_tokens // (-(-longest // multiple) * multiple))
                if every_static:
                    rows = 2 ** int(math.log2(rows))
            indices = order[begin:begin + rows]
            if not options.sort_by_length and options.padding != "max_length":
                longest = int(lengths[indices].max())
            static = options.static_batch(len(indices))
            multiple = max(1, options.static_length_multiple if static else options.pad_to_multiple)
            padded = -(-longest // multiple) * multiple
            padded_rows = 2 ** math.ceil(math.log2(len(indices))) if static else len(indices)
            plan.append((indices, padded, padded_rows))
            begin += rows
        return plan

    def pack(self, features: ExtractiveFeatures, indices: np.ndarray, length: int,
             rows: int | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The model inputs of windows ``indices`` padded to ``length`` tokens (and ``rows`` rows), and their
        (rows, length) context mask. Extra inputs (their own axis) pad to their own longest."""
        rows = rows or len(indices)
        pad = self.tokenizer.pad_token_id
        input_ids = np.full((rows, length), pad if pad is not None else 0, dtype=np.int64)
        token_types = np.zeros((rows, length), dtype=np.int64)
        is_context = np.zeros((rows, length), dtype=bool)
        window_lengths = np.zeros(rows, dtype=np.int64)
        for row, index in enumerate(indices):
            ids = features.input_ids[index]
            input_ids[row, : len(ids)] = ids
            window_lengths[row] = len(ids)
            if features.token_type_ids is not None:
                token_types[row, : len(ids)] = features.token_type_ids[index]
            offsets = features.offsets[index]
            is_context[row, : len(offsets)] = offsets[:, 0] != NOT_CONTEXT
        window_lengths[len(indices):] = 1  # rows that only fill a static shape: one real token, never decoded
        batch = {"input_ids": input_ids,
                 "attention_mask": (np.arange(length)[None, :] < window_lengths[:, None]).astype(np.int64)}
        if "token_type_ids" in self.input_names and features.token_type_ids is not None:
            batch["token_type_ids"] = token_types
        elif "token_type_ids" in self.input_names:
            batch["token_type_ids"] = np.zeros_like(input_ids)
        for name, values in features.extra_inputs.items():
            if name in self.input_names:
                chosen = [values[int(i)] for i in indices] + [[0]] * (rows - len(indices))
                width = max(1, max(len(value) for value in chosen))
                extra = np.zeros((rows, width), dtype=np.int64)
                for row, value in enumerate(chosen):
                    extra[row, : len(value)] = value
                batch[name] = extra
        return batch, is_context

    def _batches(self, features: ExtractiveFeatures, batch_size: int) -> Iterator[tuple[np.ndarray, dict]]:
        """Batches of windows of similar length (sorted by length), with the feature indices they hold."""
        for indices, length, _ in self.batch_plan(features.lengths(), batch_size,
                                                  replace(self.inference, max_batch_tokens=0, compile=False,
                                                          cuda_graphs=False)):
            yield indices, self.pack(features, indices, length)[0]

    def logits(self, features: ExtractiveFeatures, batch_size: int, progress: bool = False):
        """(F, L) start and end logits for every window, padded with -inf to the longest window."""
        length = int(features.lengths().max())
        start = np.full((len(features), length), -np.inf, dtype=np.float32)
        end = np.full((len(features), length), -np.inf, dtype=np.float32)
        for indices, batch in self._batches(features, batch_size):
            batch_start, batch_end = self.runner(batch)
            width = min(batch_start.shape[1], length)
            start[indices, :width] = batch_start[:, :width]
            end[indices, :width] = batch_end[:, :width]
        # Positions past a window's own length are batch padding: not tokens of that window.
        padding = np.arange(length)[None, :] >= features.lengths()[:, None]
        start[padding] = -np.inf
        end[padding] = -np.inf
        return start, end

    def window_spans(self, features: ExtractiveFeatures, batch_size: int, progress: bool = False,
                     options: InferenceOptions | None = None) -> WindowSpans:
        """Every window's n-best spans and null score: batched, run and selected as ``options`` say."""
        return self._collect_spans(features, self._launch_spans(features, batch_size, progress, options))

    def _launch_spans(self, features: ExtractiveFeatures, batch_size: int, progress: bool = False,
                      options: InferenceOptions | None = None) -> list[tuple[np.ndarray, Any]]:
        """Run every batch and select its spans; with device decoding the results stay on the GPU (packed
        tensors, not yet waited for), so the caller can prepare the next questions meanwhile."""
        options = options or self.inference
        s = self.settings
        plan = self.batch_plan(features.lengths(), batch_size, options)
        if progress:
            from tqdm.auto import tqdm

            plan = tqdm(plan, desc="predict", unit="batch")
        launched = []
        for indices, length, rows in plan:
            batch, is_context = self.pack(features, indices, length, rows)
            if options.decode == "device":
                start, end = self.runner.logits_tensors(batch)
                found = top_window_spans_torch(start, end, torch.from_numpy(is_context),
                                               torch.from_numpy(batch["attention_mask"]),
                                               n_best=s.n_best, max_answer_length=s.max_answer_length,
                                               span_scores=options.span_scores, to_host=False)
            else:
                start, end = self.runner(batch)
                found = top_window_spans(start, end, is_context, batch["attention_mask"],
                                         n_best=s.n_best, max_answer_length=s.max_answer_length,
                                         span_scores=options.span_scores)
            launched.append((indices, found))
        return launched

    def _collect_spans(self, features: ExtractiveFeatures, launched: list[tuple[np.ndarray, Any]]) -> WindowSpans:
        """The `WindowSpans` of `_launch_spans`' batches (waiting for the GPU where they are still on it)."""
        keep = self.settings.n_best
        spans = WindowSpans(np.zeros((len(features), keep), np.int64), np.zeros((len(features), keep), np.int64),
                            np.full((len(features), keep), -np.inf, np.float32),
                            np.zeros((len(features), keep), np.float32), np.zeros(len(features), np.float32))
        for indices, found in launched:
            if isinstance(found, torch.Tensor):
                found = unpack_window_spans(found.cpu().numpy())
            count, width = len(indices), found.score.shape[1]
            spans.start_token[indices, :width] = found.start_token[:count]
            spans.end_token[indices, :width] = found.end_token[:count]
            spans.score[indices, :width] = found.score[:count]
            spans.probability[indices, :width] = found.probability[:count]
            spans.null_score[indices] = found.null_score[:count]
        return spans

    def predict(
        self, examples: Sequence[SquadExample], *, batch_size: int = 32, progress: bool = False,
        options: InferenceOptions | None = None,
    ) -> dict[str, RawPrediction]:
        if not examples:
            return {}
        options = options or self.inference
        size = options.chunk_questions or len(examples)
        chunks = [examples[begin:begin + size] for begin in range(0, len(examples), size)]
        decodings = []
        pending = None  # the previous chunk, its spans still being computed on the GPU
        for chunk in [*chunks, None]:
            # Tokenise this chunk and queue its batches on the GPU, then finish the previous one (its spans are
            # ready by now) while the GPU works on this one: host and device overlap.
            launched = None
            if chunk is not None:
                features = self.windows(chunk, with_labels=False)
                launched = (chunk, features, self._launch_spans(features, batch_size, progress, options))
            if pending is not None:
                done, done_features, done_spans = pending
                decodings += merge_window_spans(self._collect_spans(done_features, done_spans),
                                                done_features.offsets, done_features.example_index,
                                                [example.context for example in done], n_best=self.settings.n_best,
                                                span_scores=options.span_scores)
            pending = launched
        predictions: dict[str, RawPrediction] = {}
        for example, decoding in zip(examples, decodings, strict=True):
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
